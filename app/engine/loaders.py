"""Readers for GGUF files and Hugging Face folders, each converting to one canonical weight tree.

Canonical tree (float32, matmuls are ``x @ W`` so every W is [d_in, d_out]):

    embed.W_E [d_vocab, d_model]            pos_embed.W_pos [n_ctx, d_model]   (gpt2, bert; RoBERTa: see position_pad_id)
    token_type_embed.W_token_type (bert, roberta), embed_ln.w/.b                (bert)
    blocks.L.ln1.w/.b, blocks.L.ln2.w/.b    (.b absent for RMS norm)
    blocks.L.attn.W_QKV [d_model, (n_heads + 2 n_kv_heads) d_head], .b_QKV     q, k, v fused
    blocks.L.attn.W_O [n_heads d_head, d_model], .b_O
    blocks.L.attn.q_norm.w, .k_norm.w [d_head]                                  (qwen3: cfg.qk_norm)
    blocks.L.mlp.W_in [d_model, d_mlp] (llama: [d_model, 2 d_mlp], gate then up), .b_in
    blocks.L.mlp.W_out [d_mlp, d_model], .b_out
    ln_final.w/.b, unembed.W_U [d_model, d_vocab] (absent when tied to embed.W_E)

Norm gains are the multipliers themselves (Gemma's stored w becomes 1 + w), q/k/v and gate/up are always
separate blocks in that order (Phi-3's and GPT-NeoX's fused projections are split here).

``weight_store`` writes a converted tree to one flat file and maps it back read-only, so a
second start skips dequantisation and several server workers share one copy in the page cache.
"""

import hashlib
import json
import mmap
import os
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .errors import ModelLoadError

F32 = np.float32
STORE_VERSION = 4  # bump when the canonical tree, a converter or the stored metadata changes (2: "generation", 3: qk_norm, model_type, 4: embed_scale, d_rotary, parallel_residual, position_pad_id)


# --- one flat file of float32 tensors, mapped back read-only ------------------------------------

def save_store(directory: Path, cfg: ModelConfig, weights: dict[str, np.ndarray], extra: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    index, offset = {}, 0
    for name, t in weights.items():
        offset = (offset + 63) // 64 * 64  # 64-byte alignment for SIMD loads
        index[name] = {"offset": offset, "shape": list(t.shape)}
        offset += t.size * 4
    tmp = directory / f"weights.bin.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        for name, t in weights.items():
            f.seek(index[name]["offset"])
            f.write(np.ascontiguousarray(t, dtype=F32).tobytes())
        f.truncate(offset)
    meta = {"version": STORE_VERSION, "config": cfg.to_dict(), "index": index, **extra}
    (directory / f"meta.json.{os.getpid()}.tmp").write_text(json.dumps(meta))
    os.replace(tmp, directory / "weights.bin")  # rename last: a reader never sees half a store
    os.replace(directory / f"meta.json.{os.getpid()}.tmp", directory / "meta.json")


def open_store(directory: Path) -> tuple[ModelConfig, dict[str, np.ndarray], dict] | None:
    """The stored tree as read-only arrays over one shared mapping, or None if absent or stale."""
    try:
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("version") != STORE_VERSION:
            return None
        with open(directory / "weights.bin", "rb") as f:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    try:  # a damaged or foreign store is rebuilt, never trusted
        cfg = ModelConfig(**meta["config"])
        if not isinstance(meta["generation"]["eos_ids"], list):
            return None
        weights = {}
        for name, e in meta["index"].items():
            count = int(np.prod(e["shape"], dtype=np.int64))
            if e["offset"] + 4 * count > len(buf):
                return None
            weights[name] = np.frombuffer(buf, F32, count, e["offset"]).reshape(e["shape"])
        check_shapes(cfg, weights, str(directory))
    except (TypeError, KeyError, ValueError, ModelLoadError):
        return None
    return cfg, weights, meta


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The canonical tree's shapes for a config: what every converter must produce."""
    d, H, KV, dh = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.d_head
    d_in = 2 * cfg.d_mlp if cfg.architecture == "llama" else cfg.d_mlp
    shapes = {"embed.W_E": (cfg.d_vocab, d)}
    for L in range(cfg.n_layers):
        b = f"blocks.{L}."
        shapes |= {b + "attn.W_QKV": (d, (H + 2 * KV) * dh), b + "attn.W_O": (H * dh, d),
                   b + "mlp.W_in": (d, d_in), b + "mlp.W_out": (cfg.d_mlp, d), b + "ln1.w": (d,), b + "ln2.w": (d,)}
        if cfg.qk_norm:
            shapes |= {b + "attn.q_norm.w": (dh,), b + "attn.k_norm.w": (dh,)}
    if cfg.architecture != "bert":
        shapes["ln_final.w"] = (d,)
    return shapes


def check_shapes(cfg: ModelConfig, weights: dict[str, np.ndarray], where: str) -> None:
    """Refuse a checkpoint whose tensors disagree with its config, naming the first that does."""
    if cfg.n_kv_heads <= 0 or cfg.n_heads % cfg.n_kv_heads:
        raise ModelLoadError(f"{where}: {cfg.n_heads} query heads cannot share {cfg.n_kv_heads} key/value heads evenly")
    for name, shape in expected_shapes(cfg).items():
        got = weights.get(name)
        if got is None:
            raise ModelLoadError(f"{where}: missing weight {name}")
        if tuple(got.shape) != shape:
            raise ModelLoadError(f"{where}: {name} has shape {tuple(got.shape)}, the config implies {shape}")
    if "pos_embed.W_pos" in weights and weights["pos_embed.W_pos"].shape[0] < cfg.n_ctx:
        raise ModelLoadError(f"{where}: {weights['pos_embed.W_pos'].shape[0]} position embeddings for a context of {cfg.n_ctx}")


def source_key(path: Path) -> str:
    """Changes whenever the source file(s) change, so a stale store is never used."""
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    h = hashlib.sha256(f"v{STORE_VERSION}:{path.resolve()}".encode())
    for p in files:
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


# --- GGUF (llama.cpp) ----------------------------------------------------------------------------

def unpermute_rope_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's per-head row interleaving of attn_q/attn_k ([out, in]) back to HF order."""
    out, d_in = w.shape
    return w.reshape(n_heads, out // n_heads // 2, 2, d_in).swapaxes(1, 2).reshape(out, d_in)


GGUF_ARCHITECTURES = ("llama", "qwen2", "qwen3")  # llama.cpp's names; all the "llama" math family


def read_gguf(path: Path):
    """-> (config, canonical weights, tokenizer metadata) for a GGUF file of the llama family: llama,
    qwen2 (q/k/v biases) or qwen3 (q/k norms). llama.cpp interleaves a llama's q/k rows per head for
    its rotary layout (undone here); it stores qwen2's and qwen3's as HF does (their rope is "neox")."""
    try:
        import gguf
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # the reader raises many kinds of errors on corrupt files
        raise ModelLoadError(f"cannot read GGUF file {path.name}: {e}") from e

    def field(key, default=None):
        f = reader.fields.get(key)
        if f is None:
            if default is None:
                raise ModelLoadError(f"GGUF file {path.name} lacks metadata {key!r}")
            return default
        return f.contents()

    arch = field("general.architecture")
    if arch not in GGUF_ARCHITECTURES:
        raise ModelLoadError(f"GGUF architecture {arch!r} is not supported (supported: {', '.join(GGUF_ARCHITECTURES)})")
    n_heads = int(field(f"{arch}.attention.head_count"))
    n_kv = int(field(f"{arch}.attention.head_count_kv", n_heads))
    d_model = int(field(f"{arch}.embedding_length"))
    tensors = {t.name: t for t in reader.tensors}

    def get(name):
        t = tensors.get(name)
        if t is None:
            raise ModelLoadError(f"GGUF file {path.name} lacks tensor {name!r}")
        try:
            a = gguf.quants.dequantize(t.data, t.tensor_type)
        except Exception as e:
            raise ModelLoadError(f"cannot dequantize {name} ({t.tensor_type.name}) in {path.name}: {e}") from e
        return np.asarray(a, dtype=F32)  # [out, in] for matrices (HF's Linear layout)

    vocab = tensors["token_embd.weight"].shape[1] if "token_embd.weight" in tensors else 0
    cfg = ModelConfig(
        architecture="llama", n_layers=int(field(f"{arch}.block_count")), n_heads=n_heads, n_kv_heads=n_kv,
        d_model=d_model, d_head=int(field(f"{arch}.attention.key_length", d_model // n_heads)),
        d_mlp=int(field(f"{arch}.feed_forward_length")), d_vocab=int(vocab),
        n_ctx=int(field(f"{arch}.context_length")), eps=float(field(f"{arch}.attention.layer_norm_rms_epsilon")),
        act="silu", causal=True, tied_embeddings="output.weight" not in tensors,
        rope_theta=float(field(f"{arch}.rope.freq_base", 10000.0)), qk_norm=arch == "qwen3", model_type=arch,
    )
    try:
        w = _gguf_tree(cfg, get, lambda name: get(name) if name in tensors else None)
    except ValueError as e:  # reshaping or concatenating tensors of the wrong shapes
        raise ModelLoadError(f"{path.name}: tensors do not fit the metadata: {e}") from e
    check_shapes(cfg, w, path.name)
    tok = {
        "model": field("tokenizer.ggml.model"),
        "pre": field("tokenizer.ggml.pre", "default"),
        "tokens": list(field("tokenizer.ggml.tokens")),
        "token_type": [int(t) for t in field("tokenizer.ggml.token_type")],
        "merges": list(field("tokenizer.ggml.merges", [])),
        "add_bos": bool(field("tokenizer.ggml.add_bos_token", False)),
        "bos_id": int(field("tokenizer.ggml.bos_token_id", -1)),
        "name": str(field("general.name", path.stem)),
    }
    eos_id = int(field("tokenizer.ggml.eos_token_id", -1))
    tok["generation"] = generation_meta(
        [eos_id] if eos_id >= 0 else [], field("tokenizer.chat_template", ""),
        _token_at(tok["tokens"], tok["bos_id"]), _token_at(tok["tokens"], eos_id))
    return cfg, w, tok


def _token_at(tokens: list[str], i: int) -> str | None:
    return tokens[i] if 0 <= i < len(tokens) else None


# --- what generation needs: the end-of-sequence ids and the chat template --------------------------

def generation_meta(eos_ids, chat_template, bos_token, eos_token) -> dict:
    """One shape for both sources; stored beside the weights (JSON), read back by the Model."""
    ids = [eos_ids] if isinstance(eos_ids, int) else list(eos_ids or [])
    return {"eos_ids": [int(i) for i in ids], "chat_template": chat_template or None,
            "bos_token": bos_token, "eos_token": eos_token}


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise ModelLoadError(f"{path} is not valid JSON: {e}") from e


def _token_content(t) -> str | None:  # tokenizer_config.json spells a token as a string or an AddedToken dict
    return t.get("content") if isinstance(t, dict) else t


def read_generation_meta(folder: Path) -> dict:
    """A Hugging Face folder's EOS ids (generation_config.json, else config.json) and chat template
    (chat_template.jinja, else tokenizer_config.json's chat_template: a string or named templates)."""
    tok_cfg = _json(folder / "tokenizer_config.json")
    gen = _json(folder / "generation_config.json")
    eos = gen["eos_token_id"] if gen.get("eos_token_id") is not None else _json(folder / "config.json").get("eos_token_id")
    template = tok_cfg.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
        template = next((t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"), None)
    if (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text()
    if template is not None and not isinstance(template, str):
        raise ModelLoadError(f"{folder}/tokenizer_config.json: chat_template is not a string")
    try:
        return generation_meta(eos, template, _token_content(tok_cfg.get("bos_token")), _token_content(tok_cfg.get("eos_token")))
    except (TypeError, ValueError) as e:
        raise ModelLoadError(f"{folder}: eos_token_id {eos!r} is not a token id or a list of them") from e


def _gguf_tree(cfg: ModelConfig, get, opt) -> dict[str, np.ndarray]:
    w = {"embed.W_E": get("token_embd.weight")}
    permuted = cfg.model_type == "llama"  # llama.cpp's rotary layout for llama's q and k rows
    for L in range(cfg.n_layers):
        b, o = f"blk.{L}.", f"blocks.{L}."
        q, k = get(b + "attn_q.weight"), get(b + "attn_k.weight")
        if permuted:
            q, k = unpermute_rope_rows(q, cfg.n_heads), unpermute_rope_rows(k, cfg.n_kv_heads)
        w[o + "ln1.w"] = get(b + "attn_norm.weight")
        w[o + "attn.W_QKV"] = np.concatenate([q, k, get(b + "attn_v.weight")]).T
        if (qb := opt(b + "attn_q.bias")) is not None:  # qwen2's q/k/v biases
            if permuted:
                qb = unpermute_rope_rows(qb[:, None], cfg.n_heads)[:, 0]
            kb = get(b + "attn_k.bias")
            kb = unpermute_rope_rows(kb[:, None], cfg.n_kv_heads)[:, 0] if permuted else kb
            w[o + "attn.b_QKV"] = np.concatenate([qb, kb, get(b + "attn_v.bias")])
        if cfg.qk_norm:  # qwen3
            w[o + "attn.q_norm.w"], w[o + "attn.k_norm.w"] = get(b + "attn_q_norm.weight"), get(b + "attn_k_norm.weight")
        w[o + "attn.W_O"] = get(b + "attn_output.weight").T
        w[o + "ln2.w"] = get(b + "ffn_norm.weight")
        w[o + "mlp.W_in"] = np.concatenate([get(b + "ffn_gate.weight"), get(b + "ffn_up.weight")]).T
        w[o + "mlp.W_out"] = get(b + "ffn_down.weight").T
    w["ln_final.w"] = get("output_norm.weight")
    if not cfg.tied_embeddings:
        w["unembed.W_U"] = get("output.weight").T
    return w


# --- Hugging Face folders (safetensors) ----------------------------------------------------------

def read_safetensors(folder: Path) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    if not (folder / files[0]).exists():
        found = ", ".join(p.name for p in folder.glob("*.bin")) or "none"
        raise ModelLoadError(f"{folder} has no model.safetensors (only safetensors weights are read; .bin files found: {found})")
    out = {}
    for name in files:
        try:
            with safe_open(folder / name, "np") as f:
                for k in f.keys():
                    out[k] = f.get_tensor(k)
        except Exception as e:
            raise ModelLoadError(f"cannot read {folder / name}: {e}") from e
    return out


def _strip(sd: dict, prefixes: tuple[str, ...]) -> dict:
    for p in prefixes:
        if any(k.startswith(p) for k in sd):
            return {k[len(p):] if k.startswith(p) else k: v for k, v in sd.items()}
    return sd


class _Tensors:
    """Dict access that turns a missing key into a ModelLoadError naming it."""

    def __init__(self, sd: dict, where: str):
        self.sd, self.where = sd, where

    def __call__(self, key: str, *alts: str) -> np.ndarray:
        for k in (key, *alts):
            if k in self.sd:
                return np.asarray(self.sd[k], dtype=F32)
        raise ModelLoadError(f"{self.where} lacks weight {key!r}")

    def opt(self, key: str):
        return np.asarray(self.sd[key], dtype=F32) if key in self.sd else None


def _sliding_window(hf: dict) -> int | None:
    """The attention window a Mistral / Qwen2 / Qwen3 config sets, if any layer uses one: query i sees
    keys j with i - j < window. Capping the context at the window makes that every earlier key, which
    is what the forward pass computes, so no window mask is needed."""
    window = hf.get("sliding_window")
    if not window:
        return None
    if hf.get("model_type") in ("mistral", "phi3"):  # every layer (these configs have no layer_types)
        return int(window)
    sliding = "sliding_attention" in (hf.get("layer_types") or []) or (hf.get("layer_types") is None and hf.get("use_sliding_window"))
    return int(window) if sliding else None


def _plain_rope(hf: dict, where: str) -> dict:
    """The config's rope parameters (a dict), refusing any scaling we do not compute."""
    for key in ("rope_scaling", "rope_parameters"):
        rs = hf.get(key) or {}
        if not isinstance(rs, dict) or (rs.get("rope_type") or rs.get("type") or "default") != "default":
            raise ModelLoadError(f"{where}: {key} {hf[key]} is not supported (plain rotary positions only)")
    return hf.get("rope_parameters") or {}


def _rotary_dims(d_head: int, factor: float, where: str) -> int:
    """HF's int(d_head * partial_rotary_factor) -> ModelConfig.d_rotary (0: every dimension turns)."""
    r = int(d_head * float(factor))
    if not 0 < r <= d_head or r % 2:
        raise ModelLoadError(f"{where}: a partial rotary factor of {factor} gives {r} of {d_head} dimensions per head (an even number >= 2 is needed)")
    return 0 if r == d_head else r


GEMMA_ACTS = ("gelu_pytorch_tanh", "gelu_new", "gelu")  # HF reads Gemma's legacy "gelu" as the tanh approximation


def convert_llama(hf: dict, sd: dict, where: str):
    """Llama and the families that differ from it only in their weights and a config field: Mistral (a
    sliding window, see _sliding_window), Qwen2 (q/k/v biases), Qwen3 (per-head q/k RMS norms), Gemma
    (gains stored as w - 1, embeddings scaled by sqrt(d_model), GeGLU), Phi-3 (fused qkv_proj and
    gate_up_proj, a sliding window, optionally partial rotary)."""
    kind = hf.get("model_type", "llama")
    gemma, phi3 = kind == "gemma", kind == "phi3"
    rope = _plain_rope(hf, where)
    n_heads = hf["num_attention_heads"]
    d_head = hf.get("head_dim") or hf["hidden_size"] // n_heads
    tied = bool(hf.get("tie_word_embeddings", gemma))  # Gemma's default is tied
    act = (hf.get("hidden_activation") or hf.get("hidden_act") or "silu") if gemma else hf.get("hidden_act", "silu")
    if act not in (GEMMA_ACTS if gemma else ("silu",)):
        raise ModelLoadError(f"{where}: hidden_act {act!r} is not supported for {kind}")
    d_rotary = _rotary_dims(d_head, rope.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0)), where) if phi3 else 0
    n_ctx = hf.get("max_position_embeddings", 2048)
    if (window := _sliding_window(hf)) is not None:
        n_ctx = min(n_ctx, window)
    cfg = ModelConfig(
        architecture="llama", n_layers=hf["num_hidden_layers"], n_heads=n_heads,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads, d_model=hf["hidden_size"], d_head=d_head,
        d_mlp=hf["intermediate_size"], d_vocab=hf["vocab_size"], n_ctx=n_ctx,
        eps=hf.get("rms_norm_eps", 1e-6), causal=True, tied_embeddings=tied,
        rope_theta=float(hf.get("rope_theta") or rope.get("rope_theta", 10000.0)),
        qk_norm=kind == "qwen3", model_type=kind, act="gelu_new" if gemma else "silu",
        embed_scale=hf["hidden_size"] ** 0.5 if gemma else 1.0, d_rotary=d_rotary,
    )
    t = _Tensors(_strip(sd, ("model.",)), where)
    gain = (lambda k: 1 + t(k)) if gemma else t  # Gemma's RMS norm multiplies by 1 + w (in float32, as HF)
    w = {"embed.W_E": t("embed_tokens.weight")}
    for L in range(cfg.n_layers):
        b, o = f"layers.{L}.", f"blocks.{L}."
        a = b + "self_attn."
        w[o + "ln1.w"] = gain(b + "input_layernorm.weight")
        if phi3:  # one [(H + 2 KV) d_head, d_model] projection, rows q then k then v: the canonical order already
            w[o + "attn.W_QKV"] = t(a + "qkv_proj.weight").T
        else:
            w[o + "attn.W_QKV"] = np.concatenate([t(a + "q_proj.weight"), t(a + "k_proj.weight"), t(a + "v_proj.weight")]).T
        if (qb := t.opt(a + "q_proj.bias")) is not None:
            w[o + "attn.b_QKV"] = np.concatenate([qb, t(a + "k_proj.bias"), t(a + "v_proj.bias")])
        w[o + "attn.W_O"] = t(a + "o_proj.weight").T
        if (ob := t.opt(a + "o_proj.bias")) is not None:
            w[o + "attn.b_O"] = ob
        if cfg.qk_norm:
            w[o + "attn.q_norm.w"], w[o + "attn.k_norm.w"] = t(a + "q_norm.weight"), t(a + "k_norm.weight")
        w[o + "ln2.w"] = gain(b + "post_attention_layernorm.weight")
        if phi3:  # gate_up_proj: [2 d_mlp, d_model], gate rows then up rows (HF chunks it in two)
            w[o + "mlp.W_in"] = t(b + "mlp.gate_up_proj.weight").T
        else:
            w[o + "mlp.W_in"] = np.concatenate([t(b + "mlp.gate_proj.weight"), t(b + "mlp.up_proj.weight")]).T
        w[o + "mlp.W_out"] = t(b + "mlp.down_proj.weight").T
        if (gb := t.opt(b + "mlp.gate_proj.bias")) is not None:
            w[o + "mlp.b_in"] = np.concatenate([gb, t(b + "mlp.up_proj.bias")])
            w[o + "mlp.b_out"] = t(b + "mlp.down_proj.bias")
    w["ln_final.w"] = gain("norm.weight")
    if not tied:
        w["unembed.W_U"] = t("lm_head.weight").T
    return cfg, w


def convert_gpt_neox(hf: dict, sd: dict, where: str):
    """GPT-NeoX (Pythia): layer norms with biases, rotary positions on the first rotary_pct of each head,
    the attention and the MLP both reading the layer's input (use_parallel_residual), one fused
    query_key_value projection whose rows are interleaved per head: [head, (q, k, v), d_head]."""
    rope = _plain_rope(hf, where)
    act = hf.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_new"):
        raise ModelLoadError(f"{where}: hidden_act {act!r} is not supported for gpt_neox")
    H, d = hf["num_attention_heads"], hf["hidden_size"]
    dh = d // H
    tied = bool(hf.get("tie_word_embeddings", False))
    cfg = ModelConfig(
        architecture="gpt_neox", n_layers=hf["num_hidden_layers"], n_heads=H, n_kv_heads=H, d_model=d, d_head=dh,
        d_mlp=hf["intermediate_size"], d_vocab=hf["vocab_size"], n_ctx=hf.get("max_position_embeddings", 2048),
        eps=hf.get("layer_norm_eps", 1e-5), act=act, causal=True, tied_embeddings=tied,
        rope_theta=float(rope.get("rope_theta", hf.get("rotary_emb_base", 10000.0))),
        d_rotary=_rotary_dims(dh, rope.get("partial_rotary_factor", hf.get("rotary_pct", 0.25)), where),
        parallel_residual=bool(hf.get("use_parallel_residual", True)), model_type="gpt_neox",
    )
    t = _Tensors(_strip(sd, ("gpt_neox.",)), where)
    w = {"embed.W_E": t("embed_in.weight")}
    for L in range(cfg.n_layers):
        b, o = f"layers.{L}.", f"blocks.{L}."
        w[o + "ln1.w"], w[o + "ln1.b"] = t(b + "input_layernorm.weight"), t(b + "input_layernorm.bias")
        qkv = t(b + "attention.query_key_value.weight")  # [H 3 d_head, d_model]
        w[o + "attn.W_QKV"] = qkv.reshape(H, 3, dh, d).transpose(1, 0, 2, 3).reshape(3 * d, d).T  # [d_model, (q, k, v) H d_head]
        if (qb := t.opt(b + "attention.query_key_value.bias")) is not None:
            w[o + "attn.b_QKV"] = qb.reshape(H, 3, dh).transpose(1, 0, 2).reshape(3 * d)
        w[o + "attn.W_O"] = t(b + "attention.dense.weight").T
        if (ob := t.opt(b + "attention.dense.bias")) is not None:
            w[o + "attn.b_O"] = ob
        w[o + "ln2.w"], w[o + "ln2.b"] = t(b + "post_attention_layernorm.weight"), t(b + "post_attention_layernorm.bias")
        w[o + "mlp.W_in"], w[o + "mlp.b_in"] = t(b + "mlp.dense_h_to_4h.weight").T, t(b + "mlp.dense_h_to_4h.bias")
        w[o + "mlp.W_out"], w[o + "mlp.b_out"] = t(b + "mlp.dense_4h_to_h.weight").T, t(b + "mlp.dense_4h_to_h.bias")
    w["ln_final.w"], w["ln_final.b"] = t("final_layer_norm.weight"), t("final_layer_norm.bias")
    if not tied:
        w["unembed.W_U"] = t("embed_out.weight", "lm_head.weight").T
    return cfg, w


def convert_bert(hf: dict, sd: dict, where: str):
    """BERT, and RoBERTa: the same encoder, whose position ids start at padding_idx + 1 (HF counts the
    tokens that are not padding from there; ModelConfig.position_pad_id), so it has padding_idx + 1 fewer
    positions than table rows."""
    kind = hf.get("model_type", "bert")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ModelLoadError(f"{where}: position_embedding_type {hf['position_embedding_type']!r} is not supported")
    act = hf.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_new"):
        raise ModelLoadError(f"{where}: hidden_act {act!r} is not supported for BERT")
    n_heads, d_model = hf["num_attention_heads"], hf["hidden_size"]
    cfg = ModelConfig(
        architecture="bert", n_layers=hf["num_hidden_layers"], n_heads=n_heads, n_kv_heads=n_heads,
        d_model=d_model, d_head=d_model // n_heads, d_mlp=hf["intermediate_size"], d_vocab=hf["vocab_size"],
        n_ctx=hf.get("max_position_embeddings", 512), eps=hf.get("layer_norm_eps", 1e-12), act=act,
        causal=False, n_token_types=hf.get("type_vocab_size", 2), model_type=kind,
    )
    if kind == "roberta":
        pad = int(hf.get("pad_token_id", 1))
        cfg = ModelConfig(**{**cfg.to_dict(), "n_ctx": cfg.n_ctx - pad - 1, "position_pad_id": pad})
    t = _Tensors(_strip(sd, ("bert.", "roberta.")), where)
    ln = lambda p: (t(p + ".weight", p + ".gamma"), t(p + ".bias", p + ".beta"))  # noqa: E731 (old checkpoints say gamma/beta)
    w = {
        "embed.W_E": t("embeddings.word_embeddings.weight"),
        "pos_embed.W_pos": t("embeddings.position_embeddings.weight"),
        "token_type_embed.W_token_type": t("embeddings.token_type_embeddings.weight"),
    }
    w["embed_ln.w"], w["embed_ln.b"] = ln("embeddings.LayerNorm")
    for L in range(cfg.n_layers):
        b, o = f"encoder.layer.{L}.", f"blocks.{L}."
        s = b + "attention.self."
        w[o + "attn.W_QKV"] = np.concatenate([t(s + "query.weight"), t(s + "key.weight"), t(s + "value.weight")]).T
        w[o + "attn.b_QKV"] = np.concatenate([t(s + "query.bias"), t(s + "key.bias"), t(s + "value.bias")])
        w[o + "attn.W_O"] = t(b + "attention.output.dense.weight").T
        w[o + "attn.b_O"] = t(b + "attention.output.dense.bias")
        w[o + "ln1.w"], w[o + "ln1.b"] = ln(b + "attention.output.LayerNorm")
        w[o + "mlp.W_in"] = t(b + "intermediate.dense.weight").T
        w[o + "mlp.b_in"] = t(b + "intermediate.dense.bias")
        w[o + "mlp.W_out"] = t(b + "output.dense.weight").T
        w[o + "mlp.b_out"] = t(b + "output.dense.bias")
        w[o + "ln2.w"], w[o + "ln2.b"] = ln(b + "output.LayerNorm")
    return cfg, w


def sinusoidal_positions(n_pos: int, d: int) -> np.ndarray:  # [n_pos, d]: sin on even dims, cos on odd
    angles = np.arange(n_pos)[:, None] / np.power(10000, 2 * (np.arange(d) // 2) / d)  # float64, then float32
    return np.where(np.arange(d) % 2 == 0, np.sin(angles), np.cos(angles)).astype(F32)


def convert_distilbert(hf: dict, sd: dict, where: str):
    """DistilBERT: BERT's post-LN encoder under its own names, no segment embeddings, layer norms with
    eps 1e-12 fixed. Its position table is in the checkpoint whether learned or sinusoidal
    (sinusoidal_pos_embds: HF fills it at init and saves it); a sinusoidal one missing is computed."""
    act = hf.get("activation", "gelu")
    if act not in ("gelu", "gelu_new"):
        raise ModelLoadError(f"{where}: activation {act!r} is not supported for DistilBERT")
    H, d = hf["n_heads"], hf["dim"]
    cfg = ModelConfig(
        architecture="bert", n_layers=hf["n_layers"], n_heads=H, n_kv_heads=H, d_model=d, d_head=d // H,
        d_mlp=hf["hidden_dim"], d_vocab=hf["vocab_size"], n_ctx=hf.get("max_position_embeddings", 512),
        eps=1e-12, act=act, causal=False, n_token_types=0, model_type="distilbert",
    )
    t = _Tensors(_strip(sd, ("distilbert.",)), where)
    pos = t.opt("embeddings.position_embeddings.weight")
    if pos is None and hf.get("sinusoidal_pos_embds"):
        pos = sinusoidal_positions(cfg.n_ctx, d)
    w = {"embed.W_E": t("embeddings.word_embeddings.weight"),
         "pos_embed.W_pos": pos if pos is not None else t("embeddings.position_embeddings.weight"),
         "embed_ln.w": t("embeddings.LayerNorm.weight"), "embed_ln.b": t("embeddings.LayerNorm.bias")}
    for L in range(cfg.n_layers):
        b, o = f"transformer.layer.{L}.", f"blocks.{L}."
        a = b + "attention."
        w[o + "attn.W_QKV"] = np.concatenate([t(a + "q_lin.weight"), t(a + "k_lin.weight"), t(a + "v_lin.weight")]).T
        w[o + "attn.b_QKV"] = np.concatenate([t(a + "q_lin.bias"), t(a + "k_lin.bias"), t(a + "v_lin.bias")])
        w[o + "attn.W_O"], w[o + "attn.b_O"] = t(a + "out_lin.weight").T, t(a + "out_lin.bias")
        w[o + "ln1.w"], w[o + "ln1.b"] = t(b + "sa_layer_norm.weight"), t(b + "sa_layer_norm.bias")
        w[o + "mlp.W_in"], w[o + "mlp.b_in"] = t(b + "ffn.lin1.weight").T, t(b + "ffn.lin1.bias")
        w[o + "mlp.W_out"], w[o + "mlp.b_out"] = t(b + "ffn.lin2.weight").T, t(b + "ffn.lin2.bias")
        w[o + "ln2.w"], w[o + "ln2.b"] = t(b + "output_layer_norm.weight"), t(b + "output_layer_norm.bias")
    return cfg, w


def convert_gpt2(hf: dict, sd: dict, where: str):
    if hf.get("reorder_and_upcast_attn"):
        raise ModelLoadError(f"{where}: reorder_and_upcast_attn is not supported")
    act = hf.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu"):
        raise ModelLoadError(f"{where}: activation_function {act!r} is not supported for GPT-2")
    n_heads, d_model = hf["n_head"], hf["n_embd"]
    cfg = ModelConfig(
        architecture="gpt2", n_layers=hf["n_layer"], n_heads=n_heads, n_kv_heads=n_heads, d_model=d_model,
        d_head=d_model // n_heads, d_mlp=hf.get("n_inner") or 4 * d_model, d_vocab=hf["vocab_size"],
        n_ctx=hf.get("n_positions", 1024), eps=hf.get("layer_norm_epsilon", 1e-5), act=act, causal=True,
        tied_embeddings=True, attn_scale_by_layer=bool(hf.get("scale_attn_by_inverse_layer_idx", False)), model_type="gpt2",
    )
    if not hf.get("scale_attn_weights", True):
        raise ModelLoadError(f"{where}: scale_attn_weights=False is not supported")
    t = _Tensors(_strip(sd, ("transformer.",)), where)
    w = {"embed.W_E": t("wte.weight"), "pos_embed.W_pos": t("wpe.weight")}
    for L in range(cfg.n_layers):  # GPT-2's Conv1D already stores W as [d_in, d_out]
        b, o = f"h.{L}.", f"blocks.{L}."
        w[o + "ln1.w"], w[o + "ln1.b"] = t(b + "ln_1.weight"), t(b + "ln_1.bias")
        w[o + "attn.W_QKV"], w[o + "attn.b_QKV"] = t(b + "attn.c_attn.weight"), t(b + "attn.c_attn.bias")
        w[o + "attn.W_O"], w[o + "attn.b_O"] = t(b + "attn.c_proj.weight"), t(b + "attn.c_proj.bias")
        w[o + "ln2.w"], w[o + "ln2.b"] = t(b + "ln_2.weight"), t(b + "ln_2.bias")
        w[o + "mlp.W_in"], w[o + "mlp.b_in"] = t(b + "mlp.c_fc.weight"), t(b + "mlp.c_fc.bias")
        w[o + "mlp.W_out"], w[o + "mlp.b_out"] = t(b + "mlp.c_proj.weight"), t(b + "mlp.c_proj.bias")
    w["ln_final.w"], w["ln_final.b"] = t("ln_f.weight"), t("ln_f.bias")
    if (lm := sd.get("lm_head.weight")) is not None and not np.array_equal(lm, w["embed.W_E"]):
        w["unembed.W_U"] = np.asarray(lm, dtype=F32).T
        cfg = ModelConfig(**{**cfg.to_dict(), "tied_embeddings": False})
    return cfg, w


CONVERTERS = {"llama": convert_llama, "mistral": convert_llama, "qwen2": convert_llama, "qwen3": convert_llama,
              "gemma": convert_llama, "phi3": convert_llama, "gpt_neox": convert_gpt_neox,
              "bert": convert_bert, "roberta": convert_bert, "distilbert": convert_distilbert, "gpt2": convert_gpt2}


def _hf_config(folder: Path) -> dict:
    try:
        hf = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{folder} has no config.json: not a Hugging Face model folder") from None
    except ValueError as e:
        raise ModelLoadError(f"{folder}/config.json is not valid JSON: {e}") from e
    if not isinstance(hf, dict):
        raise ModelLoadError(f"{folder}/config.json is not a JSON object")
    return hf


def hf_model_type(folder: Path) -> str | None:
    return _hf_config(folder).get("model_type")


def check_supported(folder: Path, hf: dict | None = None) -> str:
    """The folder's model_type, if a converter reads it; else a ModelLoadError naming the ones that do."""
    kind = (hf if hf is not None else _hf_config(folder)).get("model_type")
    if kind not in CONVERTERS:
        raise ModelLoadError(f"{folder}: model_type {kind!r} is not supported (supported: {', '.join(CONVERTERS)})")
    return kind


def read_hf_folder(folder: Path):
    """-> (config, canonical weights) for a local Hugging Face model folder."""
    hf = _hf_config(folder)
    kind = check_supported(folder, hf)
    try:
        cfg, weights = CONVERTERS[kind](hf, read_safetensors(folder), str(folder))
    except KeyError as e:
        raise ModelLoadError(f"{folder}/config.json lacks {e}") from e
    except ValueError as e:  # concatenating q/k/v of mismatched shapes, and the like
        raise ModelLoadError(f"{folder}: weights do not fit together: {e}") from e
    check_shapes(cfg, weights, str(folder))
    return cfg, weights


# --- how much memory a source will take, read from headers only (the memory budget) ----------------

def _safetensors_elements(path: Path) -> int:
    """Elements in one safetensors file, from its header (8 bytes of length, then JSON)."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 2 <= n <= min(path.stat().st_size - 8, 100 << 20):
                raise ValueError(f"a header of {n} bytes")
            header = json.loads(f.read(n))
        tensors = [e for k, e in header.items() if k != "__metadata__"]
        end = max((int(e["data_offsets"][1]) for e in tensors), default=0)
        if 8 + n + end > path.stat().st_size:  # a download cut short
            raise ValueError(f"its header promises {8 + n + end} bytes, the file has {path.stat().st_size}")
        return sum(int(np.prod(e["shape"], dtype=np.int64)) for e in tensors)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"cannot read {path}: not a safetensors file ({e})") from e


def source_nbytes(path: Path) -> int:
    """Bytes of float32 weights a GGUF file or Hugging Face folder converts to (what loading it holds)."""
    if path.is_file():
        try:
            import gguf
            return 4 * sum(int(t.n_elements) for t in gguf.GGUFReader(str(path)).tensors)
        except Exception as e:  # the reader raises many kinds of errors on corrupt files
            raise ModelLoadError(f"cannot read GGUF file {path.name}: {e}") from e
    index = path / "model.safetensors.index.json"
    try:
        files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    except (ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{index} is not a safetensors index: {e}") from e
    if not (path / files[0]).exists():
        raise ModelLoadError(f"{path} has no {files[0]} (only safetensors weights are read)")
    return 4 * sum(_safetensors_elements(path / f) for f in files)
