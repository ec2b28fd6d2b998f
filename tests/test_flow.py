"""Information flow routes (Ferrando & Voita 2024) against Hugging Face transformers: every edge
importance computed again, in float64 and by the paper's formula, from HF's own tensors (its hidden
states, attention weights, value projections, o_proj / c_proj weights and the attention and MLP
outputs, caught with forward hooks); for SmolLM2, tiny random GPT-2 and Llama checkpoints, and the
MiniLM encoder (post-LN BERT: each block's sum before its LayerNorm). Then the top-down extraction.

Tolerance. An importance is prox_k / Σ_m prox_m with prox_k = max(0, ‖y‖₁ − ‖y − z_k‖₁). max(0, ·)
and the triangle inequality make prox 1-Lipschitz in each L1 norm, |Δprox_k| <= 2‖Δy‖₁ + ‖Δz_k‖₁, so
if every vector is within ρ of its own L1 norm (ours against HF's), to first order
    |Δimportance_k| <= ρ (a_k + importance_k Σ_m a_m) / Σ_m prox_m,   a_k = 2‖y‖₁ + ‖z_k‖₁,
which bound() computes per entry from HF's tensors. ρ is the parity suite's stream tolerance
(tests/engine/tolerances.py: rtol_resid for the real models, RTOL_TINY for the tiny ones), and the
test checks its premise on the block outputs y (measured: 2.6e-6 to 5.5e-6 for SmolLM2, against a
limit of 7e-5). Measured: the largest difference is 2.6e-6 for SmolLM2, at most 5% of its entry's
bound with the measured ρ. A wrong part (a bias left out, the residual missing, heads summed with
the wrong kv head, L2 for L1) moves importances by 1e-2 or more.
"""

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, PreTrainedTokenizerFast

from app import analysis, contributions
from app.engine import load_model
from tests.engine.test_parity_tiny import build_gpt2, build_llama
from tests.engine.tolerances import RTOL_TINY, rtol_resid

TEXTS = ["a fluffy blue creature roamed the verdant forest", "The capital of France is", "Hello world! Hello again, world."]


def hf_parts(hf):
    """Per architecture: the layers, and per layer the modules whose outputs are the attention
    output (bias included), the values, the post-attention stream (BERT) and the MLP output."""
    if hasattr(hf, "model"):  # Llama
        return [(b.self_attn.o_proj, b.self_attn.v_proj, None, b.mlp, b.self_attn.o_proj.weight.T) for b in hf.model.layers]
    if hasattr(hf, "transformer"):  # GPT-2: c_attn's output is q, k, v side by side; Conv1D weights are [in, out]
        return [(b.attn.c_proj, b.attn.c_attn, None, b.mlp, b.attn.c_proj.weight) for b in hf.transformer.h]
    return [(b.attention.output.dense, b.attention.self.value, b.attention, b.output.dense, b.attention.output.dense.weight.T)
            for b in hf.encoder.layer]  # BERT: the dense outputs are taken before dropout and LayerNorm


def capture_hf(hf, ids):
    """HF's run, float64: per layer its input, attention output, values, weights, MLP output (and BERT's LN1 output)."""
    got = {k: {} for k in ("attn_out", "v", "mid", "mlp")}
    keep = lambda k, L: lambda m, a, o: got[k].__setitem__(L, (o[0] if isinstance(o, tuple) else o)[0].detach().double().numpy())  # noqa: E731
    hooks = []
    for L, (attn_out, v, mid, mlp, _) in enumerate(hf_parts(hf)):
        hooks += [attn_out.register_forward_hook(keep("attn_out", L)), v.register_forward_hook(keep("v", L)),
                  mlp.register_forward_hook(keep("mlp", L))]
        if mid is not None:
            hooks.append(mid.register_forward_hook(keep("mid", L)))
    try:
        with torch.no_grad():
            out = hf(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    got["attentions"] = [a[0].detach().double().numpy() for a in out.attentions]
    got["resid_pre"] = [h[0].detach().double().numpy() for h in out.hidden_states[:len(got["attentions"])]]  # layer L's input
    return got


def importances(y, parts):
    """y [q, d], parts [k, q, d] -> importance [k, q], prox [k, q], ‖parts‖₁ [k, q]: the paper's formula."""
    l1 = lambda a: np.abs(a).sum(-1)  # noqa: E731
    prox = np.maximum(l1(y) - l1(y - parts), 0)
    return prox / prox.sum(0), prox, l1(parts)


def bound(y, imp, prox, parts_l1, rho):  # -> [k, q]: the docstring's first-order bound
    a = 2 * np.abs(y).sum(-1) + parts_l1
    return rho * (a + imp * a.sum(0)) / prox.sum(0)


def hf_flow(hf, got, rho):
    """Every importance from HF's tensors, with its bound: {name: (importance, bound)}, attention
    [layer, query, key], the others [layer, pos]; and the block outputs y for the premise check."""
    cfg = hf.config
    H = cfg.num_attention_heads
    KV = getattr(cfg, "num_key_value_heads", None) or H
    out = {k: ([], []) for k in ("attention", "attention_residual", "mlp", "mlp_residual")}
    ys = []
    for L, (_, _, _, _, W) in enumerate(hf_parts(hf)):
        A, x = got["attentions"][L], got["resid_pre"][L]
        n, d = x.shape
        y = x + got["attn_out"][L]  # the attention block's output (BERT: before LN1)
        v = got["v"][L][:, -KV * (d // H):].reshape(n, KV, -1)  # GPT-2: the last third of c_attn
        v = v[:, np.arange(H) // (H // KV)]  # [key, head, d_head]: query head h reads kv head h // G
        W_O = W.detach().double().numpy().reshape(H, -1, d)  # [head, d_head, d_model]
        z = np.einsum("hqk,khe,hem->kqm", A, v, W_O)  # [key, query, d_model]: Σ_h A^h[q, k] · v_k W_O^h
        imp, prox, l1 = importances(y, np.concatenate([x[None], z]))
        b = bound(y, imp, prox, l1, rho)
        out["attention_residual"][0].append(imp[0]), out["attention_residual"][1].append(b[0])
        out["attention"][0].append(imp[1:].T), out["attention"][1].append(b[1:].T)
        mid = got["mid"][L] if L in got["mid"] else y
        y2 = mid + got["mlp"][L]
        imp, prox, l1 = importances(y2, np.stack([got["mlp"][L], mid]))
        b = bound(y2, imp, prox, l1, rho)
        out["mlp"][0].append(imp[0]), out["mlp"][1].append(b[0])
        out["mlp_residual"][0].append(imp[1]), out["mlp_residual"][1].append(b[1])
        ys += [y, y2]
    return {k: (np.stack(i), np.stack(b)) for k, (i, b) in out.items()}, ys


def our_block_outputs(cr):
    """Our forward's block outputs, from its captures (the premise of the tolerance)."""
    c, cfg, w = cr.run.cache, cr.model.cfg, cr.model.weights
    ys = []
    for L in range(cfg.n_layers):
        y = c[f"blocks.{L}.hook_resid_pre"].astype(np.float64) + c[f"blocks.{L}.hook_attn_out"]
        if cfg.post_ln:
            mid = y - y.mean(-1, keepdims=True)
            mid = mid / np.sqrt(mid.var(-1, keepdims=True) + cfg.eps) * w[f"blocks.{L}.ln1.w"] + w[f"blocks.{L}.ln1.b"]
        else:
            mid = y
        ys += [y, mid + c[f"blocks.{L}.hook_mlp_out"]]
    return ys


def check_against_hf(ours, hf, ids, text, rho):
    cr = analysis.full_run(ours, text)
    assert cr.run.ids == ids
    got = capture_hf(hf, ids)
    ref, ys = hf_flow(hf, got, rho)
    for mine, theirs in zip(our_block_outputs(cr), ys):  # the premise: every y within rho of its L1 norm
        assert (np.abs(mine - theirs).sum(-1) / np.abs(theirs).sum(-1)).max() <= rho
    f = contributions.flow(cr)
    for name, (want, tol) in ref.items():
        got_ = getattr(f, name)
        assert got_.shape == want.shape and got_.dtype == np.float32
        assert np.all(np.abs(got_ - want) <= tol), (name, np.abs(got_ - want).max(), tol.min())
    # what a block's parts add to: 1 (within float32 rounding)
    assert np.allclose(f.attention.sum(-1) + f.attention_residual, 1, atol=1e-5)
    assert np.allclose(f.mlp + f.mlp_residual, 1, atol=1e-5)
    if ours.cfg.causal:
        assert np.all(np.triu(f.attention, 1) == 0)  # nothing from later tokens
    return f


@pytest.fixture(scope="module")
def hf_smol(smol):
    model = AutoModelForCausalLM.from_pretrained(smol.source.parent, gguf_file=smol.source.name, dtype=torch.float32,
                                                 attn_implementation="eager")
    return model.eval()


@pytest.mark.parametrize("text", TEXTS)
def test_smollm2_flow_matches_transformers(smol, hf_smol, text):
    f = check_against_hf(smol, hf_smol, smol.run(text, logits=None).ids, text, rtol_resid(smol.cfg))
    assert f.attention.shape[0] == 30


@pytest.fixture(scope="module")
def hf_minilm(minilm):
    return AutoModel.from_pretrained(minilm.source, dtype=torch.float32, attn_implementation="eager").eval()


@pytest.mark.parametrize("text", TEXTS[:2])
def test_the_encoder_flow_matches_transformers(minilm, hf_minilm, text):
    """post-LN BERT: each block's parts against the sum its LayerNorm normalises; keys on both sides."""
    f = check_against_hf(minilm, hf_minilm, minilm.run(text, logits=None).ids, text, rtol_resid(minilm.cfg))
    assert np.any(np.triu(f.attention, 1) > 0.01)  # an encoder reads later tokens too


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def tiny(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    build = build_gpt2 if request.param == "gpt2" else build_llama
    hf = build(folder, **({"attention_bias": True} if request.param == "llama" else {}))  # biases in y, in no part
    ours = load_model(folder, request.param, cache_dir=tmp_path_factory.mktemp("store"))
    return ours, hf.eval(), PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))


@pytest.mark.parametrize("text", TEXTS)
def test_tiny_models_flow_matches_transformers(tiny, text):
    ours, hf, tok = tiny
    f = check_against_hf(ours, hf, tok(text)["input_ids"], text, RTOL_TINY)
    assert f.attention.max() > 0.2  # peaked random attention: some tokens carry much


def test_a_block_is_split_by_the_formula():
    """A hand-made block: y = x + z1 + z2 with z2 = 0 and z1 = y: only z1 is close to y."""
    y = np.array([[1.0, -2.0, 3.0]])
    x, z1 = np.array([[0.5, -1.0, 0.0]]), np.array([[0.5, -1.0, 3.0]])
    prox = np.maximum(contributions.proximity(y, np.abs(y).sum(-1), np.stack([x, z1, np.zeros_like(x)])), 0)
    assert prox[:, 0].tolist() == [6 - 4.5, 6 - 1.5, 0.0]  # ‖y‖₁ = 6; ‖y − x‖₁ = 4.5; ‖y − z1‖₁ = 1.5; z = 0: 0


def random_flow(rng, n_layers=4, n=6, causal=True):
    att = rng.random((n_layers, n, n)) ** 4
    if causal:
        att = np.tril(att)
    res = rng.random((n_layers, n))
    total = att.sum(-1) + res
    mlp = rng.random((n_layers, n))
    return contributions.Flow(att / total[..., None], res / total, mlp, 1 - mlp)


def routes_by_definition(f, position, tau):
    """The routes as a set, by the definition: an edge is in the graph iff its importance >= tau and
    its target node is in the graph; the top node is; nodes are (level, pos), level 2L = x^L,
    2L + 1 = x^{L,mid}, 2 n_layers = the top. Found by sweeping down until nothing changes."""
    n_layers, n = f.mlp.shape
    nodes = {(2 * n_layers, position)}
    edges = set()
    for _ in range(2 * n_layers):
        for L in range(n_layers):
            for i in range(n):
                if (2 * L + 2, i) in nodes:
                    for kind, imp in (("mlp", f.mlp[L, i]), ("mlp_residual", f.mlp_residual[L, i])):
                        if imp >= tau:
                            edges.add((kind, L, i, i)), nodes.add((2 * L + 1, i))
                if (2 * L + 1, i) in nodes:
                    if f.attention_residual[L, i] >= tau:
                        edges.add(("attention_residual", L, i, i)), nodes.add((2 * L, i))
                    for j in range(n):
                        if f.attention[L, i, j] >= tau:
                            edges.add(("attention", L, j, i)), nodes.add((2 * L, j))
    return edges


@pytest.mark.parametrize("seed", range(5))
def test_routes_are_the_edges_above_the_threshold_that_reach_the_top(seed):
    rng = np.random.default_rng(seed)
    f = random_flow(rng)
    for position in (0, 3, 5):
        for tau in (0.01, 0.1, 0.3, 0.6):
            routes = contributions.flow_routes(f, position, tau)
            assert {e[:4] for e in routes} == routes_by_definition(f, position, tau)
            assert len({e[:4] for e in routes}) == len(routes)  # each edge once
            assert all(e[4] >= tau for e in routes)
    # a higher threshold keeps a subset
    low, high = ({e[:4] for e in contributions.flow_routes(f, 5, t)} for t in (0.05, 0.2))
    assert high <= low and len(high) < len(low)


def test_smollm2_routes_reach_the_input(smol):
    cr = analysis.full_run(smol, "The capital of France is")
    f = contributions.flow(cr)
    n = len(cr.run.tokens)
    routes = contributions.flow_routes(f, n - 1, 0.04)
    bottom = {e[2] for e in routes if e[1] == 0 and e[0].startswith("attention")}
    assert routes[0][1] == 29 and bottom  # from the top layer down to layer 0's inputs
    assert {e[3] for e in routes if e[1] == 29} == {n - 1}  # the top block's edges all end at the chosen token
