"""What moved, rollout and direct logit attribution against Hugging Face transformers: each computed
again from HF's own tensors (its value projections, output weights, attentions and activations,
caught with forward hooks), for SmolLM2 and tiny random GPT-2 and Llama checkpoints.

Tolerances. Our float32 captures match HF's to ~1e-6 relative (tests/engine); the measures here
multiply or add a few such numbers per entry, so their error stays near 1e-5 of their scale:
- moved: |ours - HF| <= 1e-4 x the largest moved norm of the layer (a weight <= 1e-4 off times a
  norm ~1e-5 relative off);
- rollout: <= 1e-4 absolute (products of row-stochastic matrices whose entries are <= 1e-4 off
  keep the error at that size: every row sums to 1);
- attribution: each part <= 1e-3 x max(1, the largest part), the parts' sum within 1e-3 relative of
  HF's logit (the issue's contract): a part is a dot product of d_model float32 terms.
"""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from app import analysis, contributions
from app.engine import load_model
from tests.engine.test_parity_tiny import build_gpt2, build_llama

TEXTS = ["a fluffy blue creature roamed the verdant forest", "The capital of France is", "Hello world! Hello again, world."]


def capture_hf(hf, ids):
    """HF's run with its per-layer tensors: z (the o_proj / c_proj input), v, the MLP outputs and the
    final norm's input, as numpy float64."""
    got = {"z": {}, "v": {}, "mlp": {}}
    hooks = []
    llama = hasattr(hf, "model")
    layers = hf.model.layers if llama else hf.transformer.h
    for L, block in enumerate(layers):
        attn = block.self_attn if llama else block.attn
        out_proj = attn.o_proj if llama else attn.c_proj
        hooks.append(out_proj.register_forward_pre_hook(lambda m, a, L=L: got["z"].__setitem__(L, a[0][0].detach().double().numpy())))
        if llama:
            hooks.append(attn.v_proj.register_forward_hook(lambda m, a, o, L=L: got["v"].__setitem__(L, o[0].detach().double().numpy())))
        else:  # GPT-2's fused c_attn: q, k, v side by side
            d = hf.config.n_embd
            hooks.append(attn.c_attn.register_forward_hook(lambda m, a, o, L=L: got["v"].__setitem__(L, o[0, :, 2 * d:].detach().double().numpy())))
        hooks.append(block.mlp.register_forward_hook(lambda m, a, o, L=L: got["mlp"].__setitem__(L, o[0].detach().double().numpy())))
    final = hf.model.norm if llama else hf.transformer.ln_f
    hooks.append(final.register_forward_pre_hook(lambda m, a: got.__setitem__("resid", a[0][0].detach().double().numpy())))
    try:
        with torch.no_grad():
            out = hf(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    got["attentions"] = [a[0].detach().double().numpy() for a in out.attentions]
    got["embed"] = out.hidden_states[0][0].detach().double().numpy()
    got["logits"] = out.logits[0].detach().double().numpy()
    return got


def hf_weights(hf, L):
    """W_O as [head, d_head, d_model] and the MLP's output bias (None for Llama without one)."""
    cfg = hf.config
    H = cfg.num_attention_heads
    if hasattr(hf, "model"):
        W = hf.model.layers[L].self_attn.o_proj.weight.detach().double().numpy().T  # [H d_head, d_model]
        b = hf.model.layers[L].mlp.down_proj.bias
    else:
        W = hf.transformer.h[L].attn.c_proj.weight.detach().double().numpy()  # Conv1D: already [in, out]
        b = hf.transformer.h[L].mlp.c_proj.bias
    return W.reshape(H, -1, W.shape[1]), (None if b is None else b.detach().double().numpy())


def check_against_hf(ours, hf, ids, text):
    cfg = hf.config
    H = cfg.num_attention_heads
    KV = getattr(cfg, "num_key_value_heads", H)
    got = capture_hf(hf, ids)
    cr = analysis.full_run(ours, text)
    assert cr.run.ids == ids
    n = len(ids)
    for L in range(len(got["attentions"])):
        W_O, _ = hf_weights(hf, L)
        v = got["v"][L].reshape(n, KV, -1)[:, np.arange(H) // (H // KV)]  # [pos, head, d_head]
        norms = np.linalg.norm(np.einsum("phd,hdm->hpm", v, W_O), axis=-1)  # [head, key]
        ref = got["attentions"][L] * norms[:, None, :]
        mine = contributions.moved(cr, L)
        assert np.abs(mine - ref).max() <= 1e-4 * ref.max(), f"moved, layer {L}"
    A = [0.5 * a.mean(0) + 0.5 * np.eye(n) for a in got["attentions"]]
    R = [A[0] / A[0].sum(-1, keepdims=True)]
    for a in A[1:]:
        R.append((a / a.sum(-1, keepdims=True)) @ R[-1])
    assert np.abs(contributions.rollout(cr) - np.stack(R)).max() <= 1e-4
    # attribution of the top next token after the last position, against the runner-up
    pos = n - 1
    target, contrast = np.argsort(got["logits"][pos])[::-1][:2]
    a = contributions.logit_attribution(cr, pos, int(target), int(contrast))
    ref = attribution_from_hf(hf, got, pos, int(target), int(contrast))
    value = got["logits"][pos, target] - got["logits"][pos, contrast]
    total = a["embed"] + a["heads"].sum() + a["mlps"].sum() + a["bias"]
    assert abs(total - value) <= 1e-3 * max(1.0, abs(value)), (total, value)
    assert abs(a["value"] - value) <= 1e-3 * max(1.0, abs(value))
    big = max(1.0, np.abs(ref["heads"]).max(), np.abs(ref["mlps"]).max(), abs(ref["embed"]))
    assert np.abs(a["heads"] - ref["heads"]).max() <= 1e-3 * big
    assert np.abs(a["mlps"] - ref["mlps"]).max() <= 1e-3 * big
    assert abs(a["embed"] - ref["embed"]) <= 1e-3 * big and abs(a["bias"] - ref["bias"]) <= 1e-3 * big
    return a


def attribution_from_hf(hf, got, pos, target, contrast):
    """The same decomposition from HF's tensors: its final norm, its lm_head, its activations."""
    llama = hasattr(hf, "model")
    norm = hf.model.norm if llama else hf.transformer.ln_f
    g = norm.weight.detach().double().numpy()
    W_U = hf.lm_head.weight.detach().double().numpy()  # [vocab, d_model]
    direction = g * (W_U[target] - W_U[contrast])
    x = got["resid"][pos]
    if llama:
        scale, centre, bias = 1 / np.sqrt(np.mean(x * x) + hf.config.rms_norm_eps), (lambda p: p), 0.0
    else:
        scale, centre = 1 / np.sqrt(np.var(x) + hf.config.layer_norm_epsilon), (lambda p: p - p.mean(-1, keepdims=True))
        bias = float(norm.bias.detach().double().numpy() @ (W_U[target] - W_U[contrast]))
    dla = lambda p: scale * centre(p) @ direction  # noqa: E731
    heads, mlps, constant = [], [], 0.0
    for L in range(len(got["attentions"])):
        W_O, b_out = hf_weights(hf, L)
        z = got["z"][L][pos].reshape(W_O.shape[0], -1)
        heads.append(dla(np.einsum("hd,hdm->hm", z, W_O)))
        attn = hf.model.layers[L].self_attn.o_proj if llama else hf.transformer.h[L].attn.c_proj
        if attn.bias is not None:
            constant = constant + attn.bias.detach().double().numpy()
        mlp = got["mlp"][L][pos]
        if b_out is not None:
            mlp, constant = mlp - b_out, constant + b_out
        mlps.append(dla(mlp))
    return {"embed": dla(got["embed"][pos]), "heads": np.stack(heads), "mlps": np.array(mlps),
            "bias": bias + (dla(constant) if not np.isscalar(constant) else 0.0)}


@pytest.fixture(scope="module")
def hf_smol(smol):
    model = AutoModelForCausalLM.from_pretrained(smol.source.parent, gguf_file=smol.source.name, dtype=torch.float32,
                                                 attn_implementation="eager")
    return model.eval()


@pytest.mark.parametrize("text", TEXTS)
def test_smollm2_moved_rollout_and_attribution_match_transformers(smol, hf_smol, text):
    a = check_against_hf(smol, hf_smol, smol.run(text, logits=None).ids, text)
    assert a["bias"] == 0.0  # SmolLM2 has no biases at all


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def tiny(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    build = build_gpt2 if request.param == "gpt2" else build_llama
    hf = build(folder, **({"attention_bias": True} if request.param == "llama" else {}))
    ours = load_model(folder, request.param, cache_dir=tmp_path_factory.mktemp("store"))
    return ours, hf.eval(), PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))


@pytest.mark.parametrize("text", TEXTS)
def test_tiny_models_moved_rollout_and_attribution_match_transformers(tiny, text):
    ours, hf, tok = tiny
    a = check_against_hf(ours, hf, tok(text)["input_ids"], text)
    if ours.cfg.architecture == "gpt2":
        assert a["bias"] != 0.0  # GPT-2's biases and the final LayerNorm's shift are one constant part


def test_the_sink_writes_small_values_but_still_moves_much(smol):
    """The lesson's question, measured: SmolLM2's first token takes most of the attention from layer 2
    on. What a head writes for it, per unit of weight, is small (its value-write norm is a fraction of
    the typical token's), so it moves less than its weight says; but with 60-90% of the weight it
    still carries about half of what the heads move (measured on the lesson sentence: weight share
    0.66, moved share 0.52, mean over layers, heads and queries)."""
    cr = analysis.full_run(smol, "a fluffy blue creature roamed the verdant forest")
    weight, moved, ratio = [], [], []
    for L in range(smol.cfg.n_layers):
        P, M = cr.run.cache[f"blocks.{L}.attn.hook_pattern"], contributions.moved(cr, L)
        norms = contributions.value_norms(cr, L)  # [head, key]
        weight.append(P[:, 1:, 0].mean())
        moved.append((M[:, 1:, 0] / M[:, 1:].sum(-1)).mean())
        ratio.append(np.median(norms[:, 0] / np.median(norms[:, 1:], axis=1)))
    assert np.mean(weight) > 0.5 and np.mean(moved) < np.mean(weight)
    assert sum(r < 0.5 for r in ratio) >= 20, ratio  # small writes in most layers
    assert 0.3 < np.mean(moved) < 0.8  # and still a large share of what moves


def test_an_encoder_has_no_logit_to_attribute(minilm):
    cr = analysis.full_run(minilm, "a fluffy blue creature")
    with pytest.raises(contributions.NotCausal):
        contributions.logit_attribution(cr, 0, 1)
    n = len(cr.run.tokens)
    assert contributions.moved(cr, 0).shape == (12, n, n)  # moved applies to an encoder as well
