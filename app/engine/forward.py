"""The forward pass: plain float32 numpy, one function per idea, every intermediate capturable.

Shapes use TransformerLens's names: pos (tokens), d_model, head_index, d_head, query_pos, key_pos.
Weights are one canonical tree (see ``loaders.py``) whatever file they came from, so nothing
here branches on file format; it branches only on the four architecture families and a few config fields
(Qwen3's q/k norms, Gemma's embedding scale, partial rotary, GPT-NeoX's parallel residual).

Every array stays float32: numpy 2 promotes ``float32 / np.float64`` to float64, which would
knock every later matmul off the float32 BLAS path, so scalars are made float32 on purpose.
"""

import ctypes
import os
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import numpy as np

from .config import ModelConfig

Weights = Mapping[str, np.ndarray]
Cache = dict[str, np.ndarray]
# A hook sees a captured tensor and may return a replacement (used to switch heads off).
Hook = Callable[[np.ndarray, str], np.ndarray | None]

F32 = np.float32


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks for reuse instead of handing them back to the kernel.

    A forward pass allocates hundreds of temporaries of 0.1-30 MB. By default glibc serves each
    from a fresh mmap and unmaps it on free, so every one is page-faulted in again: measured
    here, that was a third of SmolLM2's forward time at 32 tokens. torch avoids the same cost
    with its caching allocator. Set ATTNSCOPE_MALLOC_DEFAULTS=1 to leave glibc's defaults.
    """
    if os.environ.get("ATTNSCOPE_MALLOC_DEFAULTS") or sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(None)
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 31))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False


MALLOC_TUNED = keep_freed_memory()


# --- elementwise pieces ---------------------------------------------------------------------------

def layer_norm(x, w, b, eps):  # [pos, d_model] -> [pos, d_model]
    mean = x.mean(-1, keepdims=True)
    x = x - mean
    var = np.einsum("pd,pd->p", x, x)[:, None] / F32(x.shape[-1])
    x *= 1 / np.sqrt(var + F32(eps))
    x *= w
    x += b
    return x


def rms_norm(x, w, eps):  # [pos, d_model] -> [pos, d_model]
    ms = np.einsum("pd,pd->p", x, x)[:, None] / F32(x.shape[-1])
    return x * (1 / np.sqrt(ms + F32(eps))) * w


def silu_(x):  # in place: x * sigmoid(x)
    s = np.negative(x)
    np.exp(s, out=s)
    s += F32(1)
    x /= s
    return x


def erf(x):  # float32-accurate erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7)
    return np.copysign(F32(1) - _erfc_abs(np.abs(x)), x)


def _erfc_abs(a):  # erfc(a) for a >= 0, computed in place in a (which it consumes) and one buffer
    t = np.multiply(a, F32(0.3275911))
    t += F32(1)
    np.reciprocal(t, out=t)
    p = t * F32(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        p += F32(c)
        p *= t
    a *= a
    np.negative(a, out=a)
    np.exp(a, out=a)
    p *= a
    return p


def gelu_(x):  # exact (erf) GELU, as BERT uses: x * Φ(x), Φ(x) = (1 + erf(x / √2)) / 2
    e = _erfc_abs(np.abs(x) * F32(1 / np.sqrt(2)))  # 1 - erf(|x| / √2)
    np.subtract(F32(1), e, out=e)
    np.copysign(e, x, out=e)  # erf(x / √2)
    e += F32(1)
    e *= F32(0.5)
    x *= e
    return x


def gelu_new_(x):  # GPT-2's tanh approximation
    inner = np.tanh(F32(np.sqrt(2 / np.pi)) * (x + F32(0.044715) * x * x * x))
    return np.multiply(x, F32(0.5) * (F32(1) + inner), out=x)


ACTIVATIONS = {"gelu": gelu_, "gelu_new": gelu_new_, "silu": silu_}


def softmax_(x):  # in place, over the last axis; rows of -inf entries stay finite (the diagonal is never masked)
    x -= x.max(-1, keepdims=True)
    np.exp(x, out=x)
    # each row's sum >= 1 (its maximum gives exp(0)); einsum's row sums and one reciprocal per row measured
    # 3x and 1.2x faster than x.sum and x / sum on [12 x 512, 512] (its sums run in SIMD lanes, not pairwise:
    # a 512-term sum of numbers in [0, 1] rounds within ~u sqrt(512) of its value either way)
    x *= (1 / np.einsum("...k->...", x))[..., None]
    return x


# --- rotary positions (HF's rotate-half layout) ---------------------------------------------------

def rope_tables(n_pos, d_head, theta, offset=0):  # positions offset .. offset + n_pos - 1 -> cos, sin: [pos, 1, d_head]
    inv_freq = 1.0 / (theta ** (np.arange(0, d_head, 2, dtype=np.int64).astype(F32) / F32(d_head)))
    angles = np.outer(np.arange(offset, offset + n_pos, dtype=F32), inv_freq.astype(F32))  # [pos, d_head/2]
    angles = np.concatenate([angles, angles], -1)  # [pos, d_head]
    return np.cos(angles)[:, None, :].astype(F32), np.sin(angles)[:, None, :].astype(F32)


def apply_rope(x, cos, sin):  # [pos, heads, d_head] -> [pos, heads, d_head]
    """x cos + rotate_half(x) sin, rotate_half(x) = [-x2, x1], without building rotate_half(x): each
    entry is the same two products and one sum (a - b is a + (-b) exactly), so the same float32."""
    if (r := cos.shape[-1]) < x.shape[-1]:  # partial rotary: only each head's first r dimensions turn
        return np.concatenate([apply_rope(x[..., :r], cos, sin), x[..., r:]], -1)
    half = x.shape[-1] // 2
    out = x * cos
    out[..., :half] -= x[..., half:] * sin[..., :half]
    out[..., half:] += x[..., :half] * sin[..., half:]
    return out


def causal_mask(n_pos, offset=0):  # [query_pos, offset + key_pos]: query i (at offset + i) sees keys <= offset + i
    return np.triu(np.full((n_pos, offset + n_pos), -np.inf, dtype=F32), offset + 1)


# --- the key/value cache (generation) -------------------------------------------------------------

@dataclass
class KVCache:
    """The keys and values of every position fed so far, so a new token costs one incremental step.

    Buffers are allocated once at their full length and written in place: a step copies only its
    own new rows, never the cache. [kv_head, key_pos, d_head] keeps each head's keys contiguous,
    the layout the score and value matmuls read.
    """

    k: list[np.ndarray]  # per layer [kv_head, max_pos, d_head]
    v: list[np.ndarray]  # per layer [kv_head, max_pos, d_head]
    n_pos: int = 0  # positions filled

    @classmethod
    def empty(cls, cfg: ModelConfig, max_pos: int) -> "KVCache":
        shape = (cfg.n_kv_heads, max_pos, cfg.d_head)
        return cls([np.empty(shape, F32) for _ in range(cfg.n_layers)], [np.empty(shape, F32) for _ in range(cfg.n_layers)])

    @property
    def max_pos(self) -> int:
        return self.k[0].shape[1]


# --- the forward pass -----------------------------------------------------------------------------

# What a layer computes up to its attention pattern, in order: a run that asks for nothing later (no logits,
# no later capture or hook) stops at its last layer's pattern instead of running every layer to the end.
UP_TO_PATTERN = ("hook_resid_pre", "ln1.hook_normalized", "attn.hook_q_pre_rope", "attn.hook_k_pre_rope",
                 "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_attn_scores", "attn.hook_pattern")


def last_needed(names: Collection[str], hooks: Mapping[str, Hook]) -> tuple[int, bool] | None:
    """(layers to run, whether the last of them can stop at its pattern) for a run that asks only for these
    captures and hooks, or None when one of them lies past the blocks (or is not a block's: every layer runs)."""
    layer, pattern_only = 0, True
    for name in (*names, *hooks):
        if name in ("hook_embed", "hook_pos_embed"):
            continue
        head, _, rest = name.partition(".")
        index, _, hook = rest.partition(".")
        if head != "blocks" or not index.isdigit():
            return None
        if (k := int(index) + 1) > layer:
            layer, pattern_only = k, True
        if k == layer and hook not in UP_TO_PATTERN:
            pattern_only = False
    return layer, pattern_only


class _Capture:
    """Decides what is kept in the cache, and runs hooks. Keeping a tensor never changes it."""

    def __init__(self, names: Collection[str] | None, hooks: Mapping[str, Hook] | None):
        self.names, self.hooks, self.cache = names, hooks or {}, {}

    def wants(self, name: str) -> bool:
        return self.names is None or name in self.names

    def __call__(self, name: str, x: np.ndarray, copy: bool = False) -> np.ndarray:
        hook = self.hooks.get(name)
        if hook is not None:
            y = hook(x, name)
            x = x if y is None else np.asarray(y, dtype=F32)
        if self.wants(name):
            self.cache[name] = x.copy() if copy else x
        return x


def attention(x, cfg: ModelConfig, w: Weights, L: int, cap: _Capture, rope, mask, kv: KVCache | None = None,
              pattern_only: bool = False):
    """One attention layer: the lesson's Q = W_q e, K = W_k e, V = W_v e, softmax, weighted sum.

    With kv, x holds only the new positions: their keys and values are written into the cache and
    their queries attend over every cached position (the rows of the pattern for the new tokens).
    pattern_only: stop once the pattern is captured (nothing after it is asked for); returns None.
    """
    n, H, KV, dh = x.shape[0], cfg.n_heads, cfg.n_kv_heads, cfg.d_head
    pre = f"blocks.{L}.attn."
    qkv = x @ w[pre + "W_QKV"]  # [pos, d_model] -> [pos, (H + 2 KV) d_head]
    if (b := w.get(pre + "b_QKV")) is not None:
        qkv += b
    q = qkv[:, : H * dh].reshape(n, H, dh)  # [pos, head_index, d_head]
    k = qkv[:, H * dh : (H + KV) * dh].reshape(n, KV, dh)  # [pos, kv_head, d_head]
    v = qkv[:, (H + KV) * dh :].reshape(n, KV, dh)  # [pos, kv_head, d_head]
    if cfg.qk_norm:  # Qwen3: every head's q and k RMS-normed over d_head (one gain vector shared by the heads)
        q = rms_norm(q.reshape(n * H, dh), w[pre + "q_norm.w"], cfg.eps).reshape(n, H, dh)
        k = rms_norm(k.reshape(n * KV, dh), w[pre + "k_norm.w"], cfg.eps).reshape(n, KV, dh)
    if rope is not None:  # keep the unrotated vectors too, for the lessons' "before RoPE" step
        cap(pre + "hook_q_pre_rope", q), cap(pre + "hook_k_pre_rope", k)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    q, k, v = cap(pre + "hook_q", q), cap(pre + "hook_k", k), cap(pre + "hook_v", v)
    k_all, v_all = k.transpose(1, 0, 2), v.transpose(1, 0, 2)  # [kv_head, key_pos, d_head]
    if kv is not None:
        t0 = kv.n_pos
        kv.k[L][:, t0 : t0 + n], kv.v[L][:, t0 : t0 + n] = k_all, v_all
        k_all, v_all = kv.k[L][:, : t0 + n], kv.v[L][:, : t0 + n]
    T = k_all.shape[1]

    # grouped-query attention by reshaping, not copying: query head h reads kv head h // G
    G = H // KV
    qg = q.reshape(n, KV, G, dh).transpose(1, 2, 0, 3).reshape(KV, G * n, dh)  # [kv, G pos, d_head]
    scale = F32(1 / np.sqrt(dh) / (L + 1 if cfg.attn_scale_by_layer else 1))
    scores = np.matmul(qg, k_all.transpose(0, 2, 1)).reshape(H, n, T)  # [head_index, query_pos, key_pos]
    scores *= scale
    if mask is not None:
        scores += mask
    scores = cap(pre + "hook_attn_scores", scores, copy=True)
    pattern = cap(pre + "hook_pattern", softmax_(scores))  # [head_index, query_pos, key_pos]
    if pattern_only:
        return None

    z = np.matmul(pattern.reshape(KV, G * n, T), v_all)  # [kv, G pos, d_head]
    z = z.reshape(H, n, dh).transpose(1, 0, 2)  # [pos, head_index, d_head]
    z = cap(pre + "hook_z", z)
    out = z.reshape(n, H * dh) @ w[pre + "W_O"]  # [pos, d_model]
    if (b := w.get(pre + "b_O")) is not None:
        out += b
    return out


def mlp(x, cfg: ModelConfig, w: Weights, L: int):  # [pos, d_model] -> [pos, d_model]
    pre = f"blocks.{L}.mlp."
    h = x @ w[pre + "W_in"]  # [pos, d_mlp] (gated: [pos, 2 d_mlp], gate then up)
    if (b := w.get(pre + "b_in")) is not None:
        h += b
    if cfg.architecture == "llama":  # gated, written over the gate half: act(gate) * up, [pos, d_mlp] (SwiGLU: silu, Gemma's GeGLU: gelu_new)
        gate, up = h[:, : cfg.d_mlp], h[:, cfg.d_mlp :]
        h = ACTIVATIONS[cfg.act](gate).__imul__(up)
    else:
        h = ACTIVATIONS[cfg.act](h)
    out = h @ w[pre + "W_out"]
    if (b := w.get(pre + "b_out")) is not None:
        out += b
    return out


def norm(x, w: Weights, name: str, cfg: ModelConfig):
    if cfg.norm == "rms":
        return rms_norm(x, w[name + ".w"], cfg.eps)
    return layer_norm(x, w[name + ".w"], w[name + ".b"], cfg.eps)


def embed(ids, cfg: ModelConfig, w: Weights, cap: _Capture, token_type_ids=None, offset=0):  # -> [pos, d_model]
    x = np.asarray(w["embed.W_E"][ids], dtype=F32)
    if cfg.embed_scale != 1:  # Gemma: what enters the stream is the scaled embedding
        x = x * F32(cfg.embed_scale)
    x = cap("hook_embed", x)
    if cfg.rotary:
        return x  # nothing writes the residual stream in place, so hook_embed stays as captured
    pos_ids = np.arange(offset, offset + len(ids))
    if cfg.position_pad_id >= 0:  # RoBERTa: the non-pad tokens count from pad + 1, a pad token sits at pad (as HF's)
        keep = ids != cfg.position_pad_id
        pos_ids = np.cumsum(keep) * keep + cfg.position_pad_id
    pos = cap("hook_pos_embed", np.asarray(w["pos_embed.W_pos"][pos_ids], dtype=F32))
    x = x + pos
    if cfg.n_token_types:  # BERT, RoBERTa (DistilBERT has no segments)
        tt = np.zeros(len(ids), dtype=np.int64) if token_type_ids is None else token_type_ids
        x += w["token_type_embed.W_token_type"][tt]
    if cfg.architecture == "bert":
        x = layer_norm(x, w["embed_ln.w"], w["embed_ln.b"], cfg.eps)
    return x


def forward(
    cfg: ModelConfig,
    w: Weights,
    ids,
    *,
    names: Collection[str] | None = None,
    hooks: Mapping[str, Hook] | None = None,
    logits: str | slice | np.ndarray | None = "all",
    token_type_ids=None,
    stop_at_layer: int | None = None,
    kv: KVCache | None = None,
) -> tuple[np.ndarray | None, Cache]:
    """Run one sequence of token ids through the model.

    names: which tensors to keep (TransformerLens names); None keeps every one.
    hooks: name -> fn(tensor, name) returning a replacement or None (unchanged).
    logits: "all", "last", None, or an index/slice of the positions whose logits to compute
        (the unembedding is the largest single matmul; the attention views do not need it).
    kv: a causal model's key/value cache: ids are the tokens after its kv.n_pos positions, every
        captured tensor covers only them (patterns: [head_index, new query_pos, every key_pos]),
        and the cache is extended by them. An empty cache makes this the ordinary forward (prefill).
    Returns (logits [positions, d_vocab] or None, cache).
    """
    ids = np.asarray(ids, dtype=np.int64)
    n, offset = len(ids), 0 if kv is None else kv.n_pos
    if kv is not None:
        if not cfg.causal or stop_at_layer is not None:
            raise ValueError("a key/value cache is for a causal model's every layer")
        if offset + n > kv.max_pos:
            raise ValueError(f"a key/value cache of {kv.max_pos} positions cannot take {n} more after {offset}")
    cap = _Capture(names, hooks)
    x = embed(ids, cfg, w, cap, token_type_ids, offset)  # [pos, d_model]
    rope = rope_tables(n, cfg.d_rotary or cfg.d_head, cfg.rope_theta, offset) if cfg.rotary else None
    mask = causal_mask(n, offset) if cfg.causal and n > 1 else None  # one new row sees every key: nothing to mask
    n_layers = cfg.n_layers if stop_at_layer is None else stop_at_layer
    stop_at_pattern = False  # nothing asked after the last layer's pattern: the run ends there
    if names is not None and kv is None and (logits is None or not cfg.causal) and (need := last_needed(names, cap.hooks)):
        n_layers, stop_at_pattern = min(n_layers, need[0]), need[1] and need[0] <= n_layers
    for L in range(n_layers):
        b = f"blocks.{L}."
        x = cap(b + "hook_resid_pre", x)
        e = x if cfg.post_ln else cap(b + "ln1.hook_normalized", norm(x, w, b + "ln1", cfg))  # what the heads read
        attn_out = attention(e, cfg, w, L, cap, rope, mask, kv, pattern_only=stop_at_pattern and L == n_layers - 1)
        if attn_out is None:  # stopped at the pattern: nothing after it was asked for
            return None, cap.cache
        attn_out = cap(b + "hook_attn_out", attn_out)
        if cfg.post_ln:  # BERT: x = LN(x + attn(x)); x = LN(x + mlp(x))
            x = cap(b + "hook_resid_mid", layer_norm(x + attn_out, w[b + "ln1.w"], w[b + "ln1.b"], cfg.eps))
            mlp_out = cap(b + "hook_mlp_out", mlp(x, cfg, w, L))
            x = layer_norm(x + mlp_out, w[b + "ln2.w"], w[b + "ln2.b"], cfg.eps)
        else:  # pre-LN: x += attn(norm(x)); x += mlp(norm(x))
            x_in, x = x, cap(b + "hook_resid_mid", x + attn_out)
            # GPT-NeoX's parallel residual: the MLP reads the layer's input, not resid_mid
            mlp_out = cap(b + "hook_mlp_out", mlp(norm(x_in if cfg.parallel_residual else x, w, b + "ln2", cfg), cfg, w, L))
            x = x + mlp_out
        x = cap(b + "hook_resid_post", x)
    if kv is not None:
        kv.n_pos += n
    if logits is None or stop_at_layer is not None or not cfg.causal:
        return None, cap.cache
    sel = {"all": slice(None), "last": slice(-1, None)}.get(logits, logits) if isinstance(logits, str) else logits
    return unembed(x[sel], cfg, w), cap.cache


def unembed(resid, cfg: ModelConfig, w: Weights):  # [pos, d_model] -> [pos, d_vocab]
    """Final norm, then the unembedding (the logit lens applies this to any layer's residual)."""
    x = norm(np.array(resid, dtype=F32, ndmin=2), w, "ln_final", cfg)
    W_U = w["unembed.W_U"] if "unembed.W_U" in w else w["embed.W_E"].T  # tied: [d_model, d_vocab]
    out = x @ W_U
    if (b := w.get("unembed.b_U")) is not None:
        out += b
    return out
