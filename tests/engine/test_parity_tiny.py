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
    DistilBertConfig,
    DistilBertModel,
    GemmaConfig,
    GemmaForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
    RobertaConfig,
    RobertaModel,
)

from app.engine import InputTooLongError, ModelLoadError, Registry, forward, load_model
from app.engine.config import ModelConfig
from app.engine.loaders import sinusoidal_positions
from app.engine.registry import parse_model_paths
from tests.engine.gguf_writer import qwen2_tokenizer, write_gguf
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
    "cafe\u0301 and na\u0308ive, decomposed",  # e + combining accent: Qwen2's tokenizer composes it first (NFC)
    "Hello world! Hello again, world. " * 9,  # long (~90-120 tokens): far-out positions (last: see test_attention_is_far_from_uniform)
]


# --- building tiny checkpoints ---------------------------------------------------------------------

def _bpe_tokenizer(folder):
    tk = ByteLevelBPETokenizer()
    tk.train_from_iterator(CORPUS * 3, vocab_size=300, min_frequency=1, show_progress=False)
    tk.save(str(folder / "tokenizer.json"))
    return tk.get_vocab_size()


ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0-4: RoBERTa's own order (pad_token_id 1)


def _roberta_tokenizer(folder):
    """Byte-level BPE (pieces spell a space as Ġ) with RoBERTa's specials: <s> text </s>."""
    tk = ByteLevelBPETokenizer()
    # 5 more merges than _bpe_tokenizer's 300, for the 5 specials: the long text stays inside 128 positions
    tk.train_from_iterator(CORPUS * 3, vocab_size=305, min_frequency=1, show_progress=False, special_tokens=ROBERTA_SPECIALS)
    inner = tk._tokenizer
    inner.post_processor = processors.RobertaProcessing(("</s>", inner.token_to_id("</s>")), ("<s>", inner.token_to_id("<s>")))
    inner.save(str(folder / "tokenizer.json"))
    return inner.get_vocab_size()


def _wordpiece_tokenizer(folder):
    tk = BertWordPieceTokenizer(lowercase=True)
    tk.train_from_iterator(CORPUS * 3, vocab_size=300, min_frequency=1, show_progress=False)
    inner = tk._tokenizer  # a trained-from-scratch BertWordPieceTokenizer has no post-processor yet
    inner.post_processor = processors.BertProcessing(("[SEP]", inner.token_to_id("[SEP]")),
                                                     ("[CLS]", inner.token_to_id("[CLS]")))
    inner.save(str(folder / "tokenizer.json"))
    return inner.get_vocab_size()


def _randomise(model, seed, keep=()):
    """Large random weights: peaked attention, non-trivial norms and biases (parameters named in keep stay)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in keep:
                continue
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


def build_roberta(folder, seed=3):  # seeds 1, 7 give layer 1 near-uniform attention (test_attention_is_far_from_uniform)  # BERT whose position ids start at padding_idx + 1 = 2: a table of 128 + 2 rows
    vocab = _roberta_tokenizer(folder)
    cfg = RobertaConfig(vocab_size=vocab, num_hidden_layers=2, num_attention_heads=4, hidden_size=64,
                        intermediate_size=128, max_position_embeddings=130, type_vocab_size=1, pad_token_id=1,
                        hidden_act="gelu", initializer_range=0.2, attn_implementation="eager")
    model = RobertaModel(cfg)
    _randomise(model, seed)
    return _save(model, folder)


def build_distilbert(folder, seed=8, **overrides):
    """DistilBERT; with sinusoidal_pos_embds the fixed sine/cosine table HF makes is kept (not randomised)."""
    vocab = _wordpiece_tokenizer(folder)
    cfg = DistilBertConfig(vocab_size=vocab, n_layers=2, n_heads=4, dim=64, hidden_dim=128, max_position_embeddings=128,
                           activation="gelu", initializer_range=0.2, attn_implementation="eager", **overrides)
    model = DistilBertModel(cfg)
    sinusoidal = cfg.sinusoidal_pos_embds
    _randomise(model, seed, keep=("embeddings.position_embeddings.weight",) if sinusoidal else ())
    if sinusoidal:  # the table HF filled is the formula's (so our converter's fallback computes the same)
        np.testing.assert_allclose(model.embeddings.position_embeddings.weight.detach().numpy(),
                                   sinusoidal_positions(128, 64), rtol=0, atol=1e-7)
    return _save(model, folder)


def build_gpt_neox(folder, **overrides):
    """Pythia's shape: 4 heads of 16 dimensions, rotary on the first rotary_pct of them, parallel residual."""
    vocab = _bpe_tokenizer(folder)
    kw = dict(vocab_size=vocab, num_hidden_layers=2, num_attention_heads=4, hidden_size=64, intermediate_size=128,
              max_position_embeddings=128, rotary_pct=0.25, rotary_emb_base=10000, hidden_act="gelu",
              use_parallel_residual=True, tie_word_embeddings=False, initializer_range=0.2, attn_implementation="eager")
    model = GPTNeoXForCausalLM(GPTNeoXConfig(**{**kw, **overrides}))
    _randomise(model, 9)
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


def _gemma_gains(model):
    """Gemma stores a norm's gain as w - 1: _randomise's gains ~1 would be multipliers ~2, doubling q and k
    (scores x4, saturated softmaxes); stored gains ~0 make multipliers ~1 like the other families'."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.sub_(1)


def build_gemma(folder, **overrides):  # gains stored as w - 1, embeddings times sqrt(64) = 8, GeGLU (tanh GELU)
    kw = dict(head_dim=32, hidden_act="gelu_pytorch_tanh", pad_token_id=0, bos_token_id=2, eos_token_id=1)
    return _build_decoder(folder, GemmaConfig, GemmaForCausalLM, 10, after=_gemma_gains, **{**kw, **overrides})


def build_phi3(folder, **overrides):  # fused qkv_proj [(4 + 2 + 2) 16, 64] and gate_up_proj [2 128, 64]
    return _build_decoder(folder, Phi3Config, Phi3ForCausalLM, 11, **{"pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0, **overrides})


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
    "gemma": (build_gemma, {"tie_word_embeddings": True}),  # d_head 32 != 64 / 4, as in the real Gemmas (256)
    "gemma-untied-theta500": (build_gemma, {"rope_theta": 500.0}),
    "phi3": (build_phi3, {"sliding_window": 4096}),  # Phi-3-mini's window (2047) is longer than the 128 positions too
    "phi3-partial-rotary-tied": (build_phi3, {"partial_rotary_factor": 0.5, "tie_word_embeddings": True}),  # Phi-4-mini's 0.75 kind
    "gpt-neox": (build_gpt_neox, {}),  # Pythia: rotary_pct 0.25 (4 of 16 dimensions), parallel residual
    "gpt-neox-sequential-half-rotary-tied": (build_gpt_neox, {"use_parallel_residual": False, "rotary_pct": 0.5,
                                                              "tie_word_embeddings": True, "rotary_emb_base": 500}),
    "roberta": (build_roberta, {}),
    "distilbert": (build_distilbert, {}),
    "distilbert-sinusoidal": (build_distilbert, {"sinusoidal_pos_embds": True, "seed": 1}),  # seed 8: layer 1 near-uniform
}
LOADS = ("folder", "hub")  # from the folder, and by Hugging Face id through a hub cache
# and these from a GGUF file written from the folder (float32 tensors: the same weights), as llama.cpp lays it out
GGUF_VARIANTS = ("llama-untied", "llama-tied-theta500", "qwen2", "qwen2-tied", "qwen3")


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


def load_by_gguf(name, folder, tmp_path_factory):
    """Our Model of folder's weights from a GGUF file. A qwen2 / qwen3 GGUF says pre-tokenizer "qwen2" (NFC,
    digits one by one), so the folder's tokenizer is first replaced by one of that shape (the reference
    tokenizer is then that one too); a llama's keeps the tiny byte-level BPE ("gpt2")."""
    hf_cfg = json.loads((folder / "config.json").read_text())
    pre = "gpt2"
    if hf_cfg["model_type"] in ("qwen2", "qwen3"):
        assert qwen2_tokenizer(folder, CORPUS * 3, 300) <= hf_cfg["vocab_size"]
        pre = "qwen2"
    path = write_gguf(folder, tmp_path_factory.mktemp("gguf") / f"{name}.gguf", pre)
    ours = load_model(path, name, cache_dir=tmp_path_factory.mktemp("store"))
    # float32 tensors, q/k rows un-interleaved for llama: the very canonical tree the folder converts to
    same = load_model(folder, name, cache_dir=tmp_path_factory.mktemp("store"))
    gguf_eps = float(np.float32(same.cfg.eps))  # GGUF metadata holds float32; the forward pass rounds eps to it anyway
    assert ours.cfg == ModelConfig(**{**same.cfg.to_dict(), "eps": gguf_eps}) and set(ours.weights) == set(same.weights)
    for k, v in same.weights.items():
        assert np.array_equal(ours.weights[k], v), k
    return ours


@pytest.fixture(scope="module", params=[(v, how) for v in VARIANTS for how in LOADS] + [(v, "gguf") for v in GGUF_VARIANTS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def pair(request, tmp_path_factory):
    """(our Model, the HF model in eval mode, the HF tokenizer) for one tiny checkpoint."""
    name, how = request.param
    build, overrides = VARIANTS[name]
    folder = tmp_path_factory.mktemp(name)
    hf = build(folder, **overrides)
    if how == "hub":
        ours = load_by_hub_id(name, folder, tmp_path_factory)
    elif how == "gguf":
        ours = load_by_gguf(name, folder, tmp_path_factory)
        assert ours.source.suffix == ".gguf"
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
    if c.rotary:  # the rotary dimensions HF turns: two per inverse frequency
        assert c.rope_theta == pytest.approx(hf.config.rope_parameters["rope_theta"])
        assert c.tied_embeddings == bool(hf.config.tie_word_embeddings)
        assert ("unembed.W_U" in ours.weights) == (not c.tied_embeddings)
        assert 2 * len(hf.base_model.rotary_emb.inv_freq) == (c.d_rotary or c.d_head)
        assert (c.d_rotary > 0) == (hf.config.rope_parameters.get("partial_rotary_factor", 1.0) < 1)
    if c.architecture == "llama":
        attn = hf.model.layers[0].self_attn
        assert c.n_kv_heads == 2 and c.n_kv_heads < c.n_heads
        fused = hasattr(attn, "qkv_proj")  # Phi-3
        assert fused == (c.model_type == "phi3")
        q_proj = attn.qkv_proj if fused else attn.q_proj
        q_rows = q_proj.out_features - (2 * c.n_kv_heads * c.d_head if fused else 0)
        assert c.d_head == attn.head_dim and q_rows == c.n_heads * c.d_head
        assert ("blocks.0.attn.b_QKV" in ours.weights) == (q_proj.bias is not None)
        assert c.qk_norm == hasattr(attn, "q_norm") == ("blocks.0.attn.q_norm.w" in ours.weights)
        gemma = c.model_type == "gemma"
        assert c.act == ("gelu_new" if gemma else "silu")
        assert c.embed_scale == (pytest.approx(8.0) if gemma else 1.0)
        if gemma:  # the stored gain is w - 1; ours is the multiplier
            np.testing.assert_array_equal(ours.weights["blocks.0.ln1.w"], 1 + hf.model.layers[0].input_layernorm.weight.detach().numpy())
    if c.architecture == "gpt_neox":
        attn = hf.gpt_neox.layers[0].attention
        assert c.n_kv_heads == c.n_heads and 0 < c.d_rotary == attn.rotary_ndims < c.d_head
        assert c.parallel_residual == hf.config.use_parallel_residual
        assert ("blocks.0.attn.b_QKV" in ours.weights) and c.act == "gelu"
    if c.architecture == "gpt2":
        assert c.attn_scale_by_layer == bool(hf.config.scale_attn_by_inverse_layer_idx)
        assert c.tied_embeddings
    if c.architecture == "bert":
        assert c.act == "gelu" and not c.causal
        emb = hf.embeddings
        assert c.n_token_types == (0 if c.model_type == "distilbert" else hf.config.type_vocab_size)
        roberta = c.model_type == "roberta"  # its positions start past padding_idx
        assert c.position_pad_id == (hf.config.pad_token_id if roberta else -1)
        assert emb.position_embeddings.num_embeddings == 128 + (c.position_pad_id + 1 if roberta else 0)
        np.testing.assert_array_equal(ours.weights["pos_embed.W_pos"], emb.position_embeddings.weight.detach().numpy())


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


@pytest.mark.parametrize("build", [build_mistral, build_phi3], ids=["mistral", "phi3"])
def test_sliding_window_caps_the_context(tmp_path, build):
    """Mistral's and Phi-3's window (query i sees keys j with i - j < window) equals full causal attention
    for inputs of at most `window` tokens: the context is capped there, and parity holds right at the cap."""
    window = 8
    (tmp_path / "m").mkdir()
    hf = build(tmp_path / "m", sliding_window=window)
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


def _rewrite(folder, config=None, rename=None, drop=()):
    """Edit a saved checkpoint: config.json keys (None deletes one), tensors renamed or dropped."""
    from safetensors.numpy import load_file, save_file

    if config:
        cfg = json.loads((folder / "config.json").read_text())
        for k, v in config.items():
            cfg.pop(k, None) if v is None else cfg.__setitem__(k, v)
        (folder / "config.json").write_text(json.dumps(cfg))
    sd = load_file(folder / "model.safetensors")
    sd = {(rename or {}).get(k, k): v for k, v in sd.items() if k not in drop}
    save_file(sd, folder / "model.safetensors", metadata={"format": "pt"})


def test_pythia_spelling_of_the_config_and_unembedding(tmp_path):
    """Real Pythia folders say rotary_pct, rotary_emb_base and embed_out.weight (what transformers 4.x
    wrote); transformers 5 writes rope_parameters and lm_head.weight. Both convert to the same model."""
    (tmp_path / "new").mkdir()
    build_gpt_neox(tmp_path / "new", rotary_pct=0.5, rotary_emb_base=500)
    new = load_model(tmp_path / "new", "new", cache_dir=tmp_path / "s1")
    import shutil
    shutil.copytree(tmp_path / "new", tmp_path / "old")
    _rewrite(tmp_path / "old", config={"rope_parameters": None, "rotary_pct": 0.5, "rotary_emb_base": 500},
             rename={"lm_head.weight": "embed_out.weight"})
    cfg = json.loads((tmp_path / "old" / "config.json").read_text())
    assert "rope_parameters" not in cfg and "partial_rotary_factor" not in json.dumps(cfg)
    old = load_model(tmp_path / "old", "old", cache_dir=tmp_path / "s2")
    assert old.cfg == new.cfg and old.cfg.d_rotary == 8 and old.cfg.rope_theta == 500
    assert set(old.weights) == set(new.weights)
    for k in new.weights:
        assert np.array_equal(old.weights[k], new.weights[k]), k


def test_distilbert_sinusoidal_table_computed_when_absent(tmp_path):
    """A sinusoidal DistilBERT whose file lacks the fixed table: the converter computes it (HF's formula),
    and the model still matches the reference, which has the table HF made at init."""
    hf = build_distilbert(tmp_path, sinusoidal_pos_embds=True, seed=1)
    _rewrite(tmp_path, drop=("embeddings.position_embeddings.weight",))
    ours = load_model(tmp_path, "sinusoidal", cache_dir=tmp_path / "store")
    np.testing.assert_array_equal(ours.weights["pos_embed.W_pos"], sinusoidal_positions(128, 64))
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    run = ours.run(TEXTS[0])
    assert run.ids == tok(TEXTS[0])["input_ids"]
    out = reference(hf, run.ids)
    for L in range(ours.cfg.n_layers):
        np.testing.assert_allclose(run[f"blocks.{L}.attn.hook_pattern"], out.attentions[L][0].numpy(), rtol=0, atol=ATOL_PATTERN)
    assert row_rel_err(run[f"blocks.{ours.cfg.n_layers - 1}.hook_resid_post"], out.last_hidden_state[0].numpy()) <= RTOL_TINY


@pytest.mark.parametrize("build, config, message", [
    (build_gemma, {"hidden_act": "silu"}, "hidden_act 'silu' is not supported for gemma"),
    (build_phi3, {"rope_parameters": {"rope_type": "longrope", "rope_theta": 10000.0}}, "rope_parameters .* is not supported"),
    (build_gpt_neox, {"rope_parameters": None, "rotary_pct": 0.1}, "partial rotary factor of 0.1 gives 1 of 16 dimensions"),
    (build_gpt_neox, {"hidden_act": "relu"}, "hidden_act 'relu' is not supported for gpt_neox"),
    (build_distilbert, {"activation": "relu"}, "activation 'relu' is not supported for DistilBERT"),
], ids=["gemma-act", "phi3-longrope", "neox-odd-rotary", "neox-act", "distilbert-act"])
def test_what_the_new_families_refuse(tmp_path, build, config, message):
    """A setting these converters do not compute is refused with its name, never run approximately."""
    build(tmp_path)
    _rewrite(tmp_path, config=config)
    with pytest.raises(ModelLoadError, match=message):
        load_model(tmp_path, "refused", cache_dir=tmp_path / "store")


def test_roberta_pad_tokens_in_the_text(tmp_path):
    """A text that spells RoBERTa's <pad> gets the pad id from both tokenizers; HF's position ids then skip
    it (it sits at padding_idx, the tokens after it count on without it), and so do ours."""
    hf = build_roberta(tmp_path)
    ours = load_model(tmp_path, "roberta", cache_dir=tmp_path / "store")
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    text = "The quick <pad> brown fox<pad><pad> jumps"
    run = ours.run(text)
    assert run.ids == tok(text)["input_ids"] and run.ids.count(1) == 3
    out = reference(hf, run.ids)
    for L in range(ours.cfg.n_layers):
        np.testing.assert_allclose(run[f"blocks.{L}.attn.hook_pattern"], out.attentions[L][0].numpy(), rtol=0, atol=ATOL_PATTERN)
        assert row_rel_err(run[f"blocks.{L}.hook_resid_pre"], out.hidden_states[L][0].numpy()) <= RTOL_TINY
    assert row_rel_err(run["blocks.1.hook_resid_post"], out.last_hidden_state[0].numpy()) <= RTOL_TINY
