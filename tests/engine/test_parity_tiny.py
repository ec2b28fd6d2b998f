"""Parity with Hugging Face transformers on tiny random checkpoints built here, offline.

Each checkpoint is a real `save_pretrained(..., safe_serialization=True)` folder with a real
tokenizer.json (trained on a few sentences with the `tokenizers` library), so the whole path is
exercised: config.json -> converter -> canonical tree -> weight store -> tokenizer -> forward. Each
is loaded twice: from its folder, and by Hugging Face id from a hub cache built around it
(`hf:tiny/NAME`, HF_HUB_OFFLINE=1: huggingface_hub resolves refs/main to the snapshot).
The weights are re-randomised with a large std so attention is sharply peaked (a test against
near-uniform attention would pass almost any bug), and the test checks that it is.
"""

import json

import numpy as np
import pytest
import torch
from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer, processors
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from app.engine import InputTooLongError, ModelLoadError, Registry, forward, load_model
from app.engine.registry import parse_model_paths
from tests.engine.hub_cache import add_to_hub_cache
from tests.engine.tolerances import ATOL_PATTERN, ATOL_RECOMPUTE, RTOL_TINY, global_rel_err, row_rel_err

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "a fluffy blue creature roamed the verdant forest",
    "Attention moves meaning between the tokens of a sentence.",
    "Numbers like 12345, 3.14159 and 2024 appear in text too.",
    "Hello world! Hello again, world. Café, naïve, résumé, 日本語, emoji 😀🚀.",
    "She said: \"it's fine\" -- and then she left; he stayed.",
    "def forward(x): return x @ W + b  # code is text as well",
]

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "a fluffy blue creature roamed the verdant forest",
    "Prices rose 12345% in 2024: 3.14159 vs 2.71828 (007)",
    "Hello 😀 world — café naïve 日本語 ünïcödé 🚀🔥",
    "spaces    and\ttabs\n\n  newlines   end   ",
    "x",
    "Hello world! Hello again, world. " * 9,  # long (~90-120 tokens): far-out positions
]


# --- building tiny checkpoints ---------------------------------------------------------------------

def _bpe_tokenizer(folder):
    tk = ByteLevelBPETokenizer()
    tk.train_from_iterator(CORPUS * 3, vocab_size=300, min_frequency=1, show_progress=False)
    tk.save(str(folder / "tokenizer.json"))
    return tk.get_vocab_size()


def _wordpiece_tokenizer(folder):
    tk = BertWordPieceTokenizer(lowercase=True)
    tk.train_from_iterator(CORPUS * 3, vocab_size=300, min_frequency=1, show_progress=False)
    inner = tk._tokenizer  # a trained-from-scratch BertWordPieceTokenizer has no post-processor yet
    inner.post_processor = processors.BertProcessing(("[SEP]", inner.token_to_id("[SEP]")),
                                                     ("[CLS]", inner.token_to_id("[CLS]")))
    inner.save(str(folder / "tokenizer.json"))
    return inner.get_vocab_size()


def _randomise(model, seed):
    """Large random weights: peaked attention, non-trivial norms and biases."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            else:  # norm gains
                p.copy_(1 + torch.randn(p.shape, generator=g) * 0.2)


def _save(model, folder):
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    return model


def build_gpt2(folder, **overrides):
    vocab = _bpe_tokenizer(folder)
    cfg = GPT2Config(vocab_size=vocab, n_layer=2, n_head=4, n_embd=64, n_positions=128, initializer_range=0.2,
                     bos_token_id=0, eos_token_id=0, attn_implementation="eager", **overrides)
    model = GPT2LMHeadModel(cfg)
    _randomise(model, 1)
    return _save(model, folder)


def build_bert(folder):
    vocab = _wordpiece_tokenizer(folder)
    cfg = BertConfig(vocab_size=vocab, num_hidden_layers=2, num_attention_heads=4, hidden_size=64,
                     intermediate_size=128, max_position_embeddings=128, hidden_act="gelu",
                     initializer_range=0.2, attn_implementation="eager")
    model = BertModel(cfg)
    _randomise(model, 2)
    return _save(model, folder)


def _build_decoder(folder, config_cls, model_cls, seed, after=None, **overrides):
    """A llama-family decoder: 2 layers, 4 query heads sharing 2 key/value heads (grouped-query attention);
    after(model) adjusts the random weights before saving."""
    vocab = _bpe_tokenizer(folder)
    kw = dict(vocab_size=vocab, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              hidden_size=64, intermediate_size=128, max_position_embeddings=128, rope_theta=10000.0,
              tie_word_embeddings=False, initializer_range=0.2, attn_implementation="eager")
    model = model_cls(config_cls(**{**kw, **overrides}))
    _randomise(model, seed)
    if after is not None:
        after(model)
    return _save(model, folder)


def build_llama(folder, **overrides):
    return _build_decoder(folder, LlamaConfig, LlamaForCausalLM, 3, **overrides)


def build_mistral(folder, **overrides):
    return _build_decoder(folder, MistralConfig, MistralForCausalLM, 4, **overrides)


def build_qwen2(folder, **overrides):  # q_proj, k_proj, v_proj carry biases (always, in Qwen2)
    return _build_decoder(folder, Qwen2Config, Qwen2ForCausalLM, 5, **overrides)


def _sharpen_qk_norms(model):
    """Normed q and k have RMS ~ their gains, so gains ~1 give scores ~ sqrt(d_head) and near-uniform
    attention; gains ~3 (real Qwen3 checkpoints learn large ones) give the peaked attention a parity test needs."""
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_norm.weight.mul_(3)
            layer.self_attn.k_norm.weight.mul_(3)


def build_qwen3(folder, **overrides):  # q_norm, k_norm: RMS norms over each head's d_head
    return _build_decoder(folder, Qwen3Config, Qwen3ForCausalLM, 6, after=_sharpen_qk_norms, **overrides)


VARIANTS = {
    "gpt2": (build_gpt2, {}),
    "gpt2-layer-scaled": (build_gpt2, {"scale_attn_by_inverse_layer_idx": True}),
    "bert": (build_bert, {}),
    "llama-untied": (build_llama, {}),
    "llama-tied-theta500": (build_llama, {"tie_word_embeddings": True, "rope_theta": 500.0}),
    "llama-bias": (build_llama, {"attention_bias": True, "rope_theta": 1e6}),
    # sliding_window 4096 > the 128 positions: the window never bites (test_sliding_window_caps_the_context)
    "mistral": (build_mistral, {"sliding_window": 4096}),
    "qwen2": (build_qwen2, {}),
    "qwen2-tied": (build_qwen2, {"tie_word_embeddings": True, "rope_theta": 1e6}),
    "qwen3": (build_qwen3, {"head_dim": 32}),  # d_head 32 != d_model / n_heads = 16, as in the real Qwen3s
    "qwen3-tied-bias": (build_qwen3, {"tie_word_embeddings": True, "attention_bias": True}),
}
LOADS = ("folder", "hub")  # from the folder, and by Hugging Face id through a hub cache


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny matmuls: torch's thread pool only adds wake-up latency (and fights numpy's BLAS)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def load_by_hub_id(name, folder, tmp_path_factory):
    """Our Model of folder, loaded as hf:tiny/NAME from a hub cache holding it (offline)."""
    home = tmp_path_factory.mktemp("hf_home")
    add_to_hub_cache(home / "hub", f"tiny/{name}", folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(home))
        mp.delenv("HF_HUB_CACHE", raising=False)
        mp.setenv("HF_HUB_OFFLINE", "1")
        reg = Registry(parse_model_paths(f"hf:tiny/{name}"), cache_dir=tmp_path_factory.mktemp("store"))
        reg.prepare()
    model = reg.get(name)
    assert model.source.is_relative_to(home / "hub" / f"models--tiny--{name}" / "snapshots")
    return model


@pytest.fixture(scope="module", params=[(v, how) for v in VARIANTS for how in LOADS], ids=lambda p: f"{p[0]}-{p[1]}")
def pair(request, tmp_path_factory):
    """(our Model, the HF model in eval mode, the HF tokenizer) for one tiny checkpoint."""
    name, how = request.param
    build, overrides = VARIANTS[name]
    folder = tmp_path_factory.mktemp(name)
    hf = build(folder, **overrides)
    if how == "hub":
        ours = load_by_hub_id(name, folder, tmp_path_factory)
    else:
        ours = load_model(folder, name, cache_dir=tmp_path_factory.mktemp("store"))
    tok = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    assert hf.config._attn_implementation == "eager"
    assert not hf.training
    return ours, hf, tok


# --- helpers ---------------------------------------------------------------------------------------

def reference(hf, ids):
    with torch.no_grad():
        return hf(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)


def recompute_pattern(run, cfg, L):
    """softmax(q . k / sqrt(d_head) [/ (L + 1)] + causal mask), from the captured q and k, in float64."""
    q = run[f"blocks.{L}.attn.hook_q"].astype(np.float64)  # [pos, head_index, d_head]
    k = run[f"blocks.{L}.attn.hook_k"].astype(np.float64)  # [pos, kv_head, d_head]
    G = cfg.n_heads // cfg.n_kv_heads
    k = k[:, np.arange(cfg.n_heads) // G]  # query head h reads kv head h // G
    scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(cfg.d_head)
    if cfg.attn_scale_by_layer:
        scores /= L + 1
    n = q.shape[0]
    if cfg.causal:
        scores = scores + np.triu(np.full((n, n), -np.inf), 1)
    scores -= scores.max(-1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(-1, keepdims=True)


# --- the tests -------------------------------------------------------------------------------------

def test_converted_config_matches_hf(pair):
    ours, hf, _ = pair
    c, h = ours.cfg, hf.config
    assert (c.n_layers, c.n_heads, c.d_model, c.d_vocab) == (
        h.num_hidden_layers, h.num_attention_heads, h.hidden_size, h.vocab_size)
    assert c.n_ctx == ours.max_tokens == 128  # min(n_positions, the default limit of 512)
    assert c.model_type == h.model_type
    if c.architecture == "llama":
        attn = hf.model.layers[0].self_attn
        assert c.n_kv_heads == 2 and c.n_kv_heads < c.n_heads
        assert c.d_head == attn.head_dim and attn.q_proj.out_features == c.n_heads * c.d_head
        assert c.rope_theta == pytest.approx(hf.config.rope_parameters["rope_theta"])
        assert c.tied_embeddings == bool(hf.config.tie_word_embeddings)
        assert ("unembed.W_U" in ours.weights) == (not c.tied_embeddings)
        assert ("blocks.0.attn.b_QKV" in ours.weights) == (attn.q_proj.bias is not None)
        assert c.qk_norm == hasattr(attn, "q_norm") == ("blocks.0.attn.q_norm.w" in ours.weights)
    if c.architecture == "gpt2":
        assert c.attn_scale_by_layer == bool(hf.config.scale_attn_by_inverse_layer_idx)
        assert c.tied_embeddings
    if c.architecture == "bert":
        assert c.act == "gelu" and not c.causal


@pytest.mark.parametrize("text", TEXTS)
def test_matches_transformers(pair, text):
    ours, hf, tok = pair
    cfg = ours.cfg
    run = ours.run(text)

    # tokens: the same ids as the reference tokenizer, every position inside the model's context
    assert run.ids == tok(text)["input_ids"], "token ids differ from the reference tokenizer"
    assert 1 <= len(run.ids) <= cfg.n_ctx
    out = reference(hf, run.ids)
    assert len(out.attentions) == cfg.n_layers
    assert len(out.hidden_states) == cfg.n_layers + 1

    # every captured tensor is float32
    bad = {k: v.dtype for k, v in run.cache.items() if v.dtype != np.float32}
    assert not bad, f"non-float32 captures: {bad}"

    n = len(run.ids)
    for L in range(cfg.n_layers):
        pattern = run[f"blocks.{L}.attn.hook_pattern"]
        assert pattern.shape == (cfg.n_heads, n, n)
        ref = out.attentions[L][0].numpy()
        np.testing.assert_allclose(pattern, ref, rtol=0, atol=ATOL_PATTERN, err_msg=f"pattern, layer {L}")
        # the pattern is what the captured q and k say it is
        np.testing.assert_allclose(pattern, recompute_pattern(run, cfg, L), rtol=0, atol=ATOL_RECOMPUTE,
                                   err_msg=f"softmax(q.k) != pattern, layer {L}")
        resid = run[f"blocks.{L}.hook_resid_pre"]
        assert resid.shape == (n, cfg.d_model)
        assert row_rel_err(resid, out.hidden_states[L][0].numpy()) <= RTOL_TINY, f"resid_pre, layer {L}"

    last = run[f"blocks.{cfg.n_layers - 1}.hook_resid_post"]
    if cfg.causal:
        # HF's last hidden state is after the final norm: compare via the logits instead
        logits = out.logits[0].numpy()
        assert run.logits is not None and run.logits.shape == logits.shape == (n, cfg.d_vocab)
        assert run.logits.dtype == np.float32
        assert global_rel_err(run.logits, logits) <= RTOL_TINY
        assert (run.logits.argmax(-1) == logits.argmax(-1)).all(), "top-1 next token differs"
        assert np.array_equal(ours.unembed(last), run.logits)
    else:
        assert run.logits is None
        assert row_rel_err(last, out.last_hidden_state[0].numpy()) <= RTOL_TINY


def test_attention_is_far_from_uniform(pair):
    """Guards the strength of the parity test: random init must give peaked, varied attention."""
    ours, _, _ = pair
    run = ours.run(TEXTS[-1])
    n = len(run.ids)
    for L in range(ours.cfg.n_layers):
        p = run[f"blocks.{L}.attn.hook_pattern"][:, n // 2:]  # rows that see at least n/2 keys
        assert p.max(-1).mean() > 4 * (2 / n), f"layer {L}: attention is close to uniform"
        assert p.std(axis=0).max() > 0.05, f"layer {L}: all heads attend alike"


def test_forward_on_ids_equals_run(pair):
    """`forward` on the ids directly gives the same captures and logits as `Model.run`."""
    ours, _, _ = pair
    run = ours.run(TEXTS[2])
    logits, cache = forward(ours.cfg, ours.weights, run.ids)
    assert set(cache) == set(run.cache)
    for k, v in cache.items():
        assert np.array_equal(v, run.cache[k]), k
    assert (logits is None) == (run.logits is None)
    if logits is not None:
        assert np.array_equal(logits, run.logits)


def test_sliding_window_caps_the_context(tmp_path):
    """Mistral's window (query i sees keys j with i - j < window) equals full causal attention for inputs
    of at most `window` tokens: the context is capped there, and parity holds right at the cap."""
    window = 8
    (tmp_path / "m").mkdir()
    hf = build_mistral(tmp_path / "m", sliding_window=window)
    ours = load_model(tmp_path / "m", "mistral-window", cache_dir=tmp_path / "store")
    assert ours.cfg.n_ctx == ours.max_tokens == window
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "m" / "tokenizer.json"))
    ids = tok(TEXTS[0])["input_ids"]
    assert len(ids) > window
    text = tok.decode(ids[:window])
    run = ours.run(text)
    assert len(run.ids) == window
    out = reference(hf, run.ids)
    for L in range(ours.cfg.n_layers):
        np.testing.assert_allclose(run[f"blocks.{L}.attn.hook_pattern"], out.attentions[L][0].numpy(), rtol=0, atol=ATOL_PATTERN)
    assert global_rel_err(run.logits, out.logits[0].numpy()) <= RTOL_TINY
    with pytest.raises(InputTooLongError, match=f"at most {window}"):
        ours.run(TEXTS[0])


def test_rope_scaling_is_refused_not_ignored(tmp_path):
    build_llama(tmp_path, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})
    with pytest.raises(ModelLoadError, match="rope_parameters .* is not supported"):
        load_model(tmp_path, "scaled", cache_dir=tmp_path / "store")
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "rope_parameters": None, "rope_scaling": "linear"}))
    with pytest.raises(ModelLoadError, match="rope_scaling linear is not supported"):
        load_model(tmp_path, "scaled", cache_dir=tmp_path / "store")
