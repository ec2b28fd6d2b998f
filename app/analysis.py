"""What the views show, computed from one run: attention, one head in full, next-token
predictions, residual-stream geometry. Plain functions of (model, run) returning plain data,
shared by the HTTP API, notebooks and the CLI. Every number comes from the run's captures.
"""

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .engine import Model, Run
from .engine.forward import causal_mask, forward

F32 = np.float32

# Everything any view needs, kept from one forward pass. hook_attn_scores is left out: it is as
# large as the patterns and is recomputed exactly, per head, from the captured q and k;
# hook_resid_mid too: no view reads it (6% of a run).
RESID_CAPTURES = ("hook_resid_pre", "hook_resid_post", "hook_attn_out", "hook_mlp_out", "ln1.hook_normalized")
ATTN_CAPTURES = ("hook_q", "hook_k", "hook_v", "hook_pattern", "hook_z", "hook_q_pre_rope", "hook_k_pre_rope")


def capture_names(model: Model) -> set[str]:
    names = {"hook_embed"}
    for L in range(model.cfg.n_layers):
        names |= {f"blocks.{L}.{n}" for n in RESID_CAPTURES}
        names |= {f"blocks.{L}.attn.{n}" for n in ATTN_CAPTURES}
    return names


def retained_nbytes(arrays: Iterable[np.ndarray]) -> int:
    """The memory these arrays keep alive: every buffer they own or view, once and in full. A view
    keeps its whole base alive (hook_v is a slice of the fused qkv product), and one array may be
    kept under two names (blocks.L.hook_resid_pre is blocks.{L-1}.hook_resid_post). Buffers that
    numpy does not own (views of the memory-mapped weights) are the weights' pages, not ours."""
    roots = {}
    for a in arrays:
        while isinstance(a.base, np.ndarray):
            a = a.base
        if a.base is None:
            roots[id(a)] = a.nbytes
    return sum(roots.values())


def tokens_nbytes(tokens: list) -> int:
    """The token objects and their display strings (~0.2 kB a token)."""
    return sys.getsizeof(tokens) + sum(sys.getsizeof(t) + sys.getsizeof(t.text) for t in tokens)


@dataclass
class CachedRun:
    """A run plus what is derived from it on demand (logits are computed once, when first asked).

    nbytes is what the run holds now; computing the logits adds [pos, d_vocab] float32 (100 MB for
    512 SmolLM2 tokens) and then calls on_grow, which a cache holding this run sets to re-measure it."""

    model: Model
    run: Run
    _logits: np.ndarray | None = field(default=None, repr=False)
    on_grow: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    @property
    def nbytes(self) -> int:
        arrays = [*self.run.cache.values(), *([] if self._logits is None else [self._logits])]
        return retained_nbytes(arrays) + tokens_nbytes(self.run.tokens)

    def logits(self) -> np.ndarray:  # [pos, d_vocab], final norm + unembedding of the last residual
        if self._logits is None:
            last = self.run.cache[f"blocks.{self.model.cfg.n_layers - 1}.hook_resid_post"]
            self._logits = self.model.unembed(last)
            if self.on_grow is not None:
                self.on_grow()
        return self._logits


def full_run(model: Model, text: str) -> CachedRun:
    return CachedRun(model, model.run(text, names=capture_names(model), logits=None))


def tokens_public(run: Run) -> list[dict]:
    return [{"id": t.id, "text": t.text, "start": t.start, "end": t.end} for t in run.tokens]


# --- attention ------------------------------------------------------------------------------------

def patterns(cr: CachedRun, layers: list[int]) -> dict[str, np.ndarray]:
    return {str(L): cr.run.cache[f"blocks.{L}.attn.hook_pattern"] for L in layers}


def quantize_uint8(p: np.ndarray) -> np.ndarray:
    """Weights in [0, 1] as bytes: value = byte / 255 (error at most 1/510)."""
    return np.rint(p * F32(255)).astype(np.uint8)


# --- one head ---------------------------------------------------------------------------------------

def head_detail(cr: CachedRun, layer: int, head: int) -> dict:
    """The numbers behind Q = W_q e, K = W_k e, V = W_v e for one head of one layer."""
    cfg, c = cr.model.cfg, cr.run.cache
    kv = head // (cfg.n_heads // cfg.n_kv_heads)  # grouped-query attention: the kv head it reads
    pre = f"blocks.{layer}.attn."
    q, k, v = c[pre + "hook_q"][:, head], c[pre + "hook_k"][:, kv], c[pre + "hook_v"][:, kv]  # [pos, d_head]
    scale = F32(1 / np.sqrt(cfg.d_head) / (layer + 1 if cfg.attn_scale_by_layer else 1))
    scores = (q @ k.T) * scale  # [query_pos, key_pos], the forward pass's own formula
    if cfg.causal:
        scores = scores + causal_mask(len(q))
    return {"kv_head": kv, "scale": float(scale), "q": q, "k": k, "v": v, "scores": scores,
            "pattern": c[pre + "hook_pattern"][head], "z": c[pre + "hook_z"][:, head]}


def head_inputs_outputs(cr: CachedRun, layer: int, head: int) -> dict:
    """For the lesson's steps: what the head reads (e), q and k before RoPE (Llama), and the head's
    share of the update added back to the residual stream: z_h W_O[h] (the b_O bias is shared)."""
    cfg, c, w = cr.model.cfg, cr.run.cache, cr.model.weights
    b, dh = f"blocks.{layer}.", cfg.d_head
    kv = head // (cfg.n_heads // cfg.n_kv_heads)
    e = c[b + "hook_resid_pre"] if cfg.post_ln else c[b + "ln1.hook_normalized"]  # [pos, d_model]
    z = c[b + "attn.hook_z"][:, head]  # [pos, d_head]
    out = z @ w[b + "attn.W_O"][head * dh:(head + 1) * dh]  # [pos, d_model]
    d = {"e": e, "out": out, "resid_pre": c[b + "hook_resid_pre"], "attn_out": c[b + "hook_attn_out"]}
    if cfg.architecture == "llama":
        d["q_pre_rope"] = c[b + "attn.hook_q_pre_rope"][:, head]
        d["k_pre_rope"] = c[b + "attn.hook_k_pre_rope"][:, kv]
    return d


def scores_public(scores: np.ndarray) -> list[list[float | None]]:
    """Scores as nested lists with None where masked (-inf is not JSON)."""
    rows = np.round(scores.astype(np.float64), 5).tolist()
    return [[None if x == -np.inf else x for x in row] for row in rows]


# --- next-token predictions -----------------------------------------------------------------------

def top_k(model: Model, logits: np.ndarray, k: int, temperature: float = 1.0, chunk: int = 64) -> list[list[dict]]:
    """For each position, the k most likely next tokens (softmax of logits / temperature), most
    likely first. The exponentials are float32 with a float64 sum: the logit lens runs this on
    ~1,000 rows of 49,152 logits, where float64 exponentials cost 4x more for no visible digit.
    Rows go `chunk` at a time: every step is per row, and the working copies (float32 values,
    negated, int64 indices: 16 bytes a logit) of 512 rows x 49,152 would be 400 MB at once."""
    out = []
    for start in range(0, len(logits), chunk):
        out += _top_k_rows(model, logits[start:start + chunk], k, temperature)
    return out


def _top_k_rows(model: Model, logits: np.ndarray, k: int, temperature: float) -> list[list[dict]]:
    z = np.array(logits, dtype=np.float32)  # [rows, vocab], a copy we may overwrite
    k = min(k, z.shape[-1])
    z -= z.max(-1, keepdims=True)  # before dividing: a tiny temperature must not make inf - inf
    with np.errstate(over="ignore"):  # -inf for the non-maximal tokens is the right limit
        z /= np.float32(max(temperature, 1e-30))  # a float32 0 would make 0 / 0 for the maximum
    idx = np.argpartition(-z, k - 1, axis=-1)[:, :k]  # the order of z is the order of the probabilities
    np.exp(z, out=z)
    total = z.sum(-1, dtype=np.float64)
    out = []
    for row, cand, s in zip(z, idx, total):
        cand = cand[np.argsort(-row[cand], kind="stable")]
        out.append([{"id": int(i), "text": model.tokenizer.id_text(int(i)), "prob": round(float(row[i]) / s, 6)} for i in cand])
    return out


# --- residual stream geometry ---------------------------------------------------------------------

def boundaries(model: Model) -> list[str]:
    return ["embed"] + [str(L) for L in range(model.cfg.n_layers)]


def boundary_vectors(cr: CachedRun) -> np.ndarray:  # [boundary, pos, d_model]
    c, n_layers = cr.run.cache, cr.model.cfg.n_layers
    return np.stack([c["hook_embed"]] + [c[f"blocks.{L}.hook_resid_post"] for L in range(n_layers)])


def pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of x [N, d] on their top-k principal axes -> (coords [N, k], explained variance ratio [k])."""
    x = x.astype(np.float64)
    x = x - x.mean(0)
    if len(x) < x.shape[1]:  # few vectors: the SVD of x itself is cheaper than the d x d covariance
        _, sv, vt = np.linalg.svd(x, full_matrices=False)
        vals, vecs = sv ** 2, vt.T
    else:
        vals, vecs = np.linalg.eigh(x.T @ x)
    order = np.argsort(vals)[::-1][:k]
    vecs = vecs[:, order]
    vecs *= np.where(vecs[np.abs(vecs).argmax(0), range(vecs.shape[1])] < 0, -1, 1)  # deterministic signs
    total = vals.sum()
    return x @ vecs, (vals[order] / total if total > 0 else np.zeros(len(order)))


def residual_geometry(cr: CachedRun, normalize: bool = False) -> dict:
    vecs = boundary_vectors(cr)  # [boundary, pos, d_model]
    norms = np.linalg.norm(vecs.astype(np.float64), axis=-1)  # [boundary, pos]
    unit = vecs / np.maximum(norms, 1e-12)[..., None]
    cos_prev = np.einsum("bpd,bpd->bp", unit[1:], unit[:-1])  # [boundary - 1, pos]
    B, n, d = vecs.shape
    flat = (unit if normalize else vecs).reshape(B * n, d)
    c3, var3 = pca(flat, 3)
    return {
        "layers": boundaries(cr.model),
        "pca_2d": c3[:, :2].reshape(B, n, 2), "pca_3d": c3.reshape(B, n, 3),
        "explained_variance_2d": var3[:2], "explained_variance_3d": var3,
        "norms": norms, "cosine_to_previous": cos_prev,
    }


# --- the same word in different contexts ------------------------------------------------------------

class WordNotFound(ValueError):
    def __init__(self, sentence: int, word: str):
        self.sentence, self.word = sentence, word
        # counted from 1 in words, as the pages' legends count (the field `sentence` stays a 0-based index)
        super().__init__(f"sentence {sentence + 1} does not contain the word {word!r}")


def word_token(tokens: list, text: str, word: str, sentence: int = 0, first: bool = False) -> int:
    """Index of the last (or first) token of the first whole-word occurrence of word (case-insensitive)."""
    m = re.search(rf"(?<!\w){re.escape(word.strip())}(?!\w)", text, re.IGNORECASE)
    if not word.strip() or m is None:
        raise WordNotFound(sentence, word)
    inside = [i for i, t in enumerate(tokens) if t.end > t.start and t.start < m.end() and t.end > m.start()]
    if not inside:
        raise WordNotFound(sentence, word)
    return inside[0] if first else inside[-1]


def cosine_matrix(x: np.ndarray) -> np.ndarray:  # [..., N, d] -> [..., N, N]
    x = x.astype(np.float64)
    u = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return np.clip(u @ np.swapaxes(u, -1, -2), -1.0, 1.0)


def compare(runs: list[CachedRun], texts: list[str], word: str) -> dict:
    """The word's vector in each sentence at every layer boundary: cosine similarities and a shared 2-D PCA."""
    occ = []
    for s, (cr, text) in enumerate(zip(runs, texts)):
        t = word_token(cr.run.tokens, text, word, s)
        first = word_token(cr.run.tokens, text, word, s, first=True)
        occ.append({"sentence": s, "token_index": t, "text": cr.run.tokens[t].text, "id": cr.run.tokens[t].id,
                    "n_pieces": t - first + 1})
    vecs = np.stack([boundary_vectors(cr)[:, o["token_index"]] for cr, o in zip(runs, occ)], axis=1)  # [boundary, occurrence, d]
    B, N, d = vecs.shape
    coords, var = pca(vecs.reshape(B * N, d), 2)
    return {"layers": boundaries(runs[0].model), "occurrences": occ, "similarity": cosine_matrix(vecs),
            "pca_2d": coords.reshape(B, N, 2), "explained_variance_2d": var}


# --- the logit lens ---------------------------------------------------------------------------------

def lens(cr: CachedRun, k: int, chunk: int = 256) -> list[list[list[dict]]]:
    """At every boundary, what the final norm + unembedding would predict from each position's residual.
    The last boundary is exactly the model's own prediction (the same function on the same vector).
    Rows of all boundaries go through the unembedding together, in chunks: one pass over W_U per
    chunk instead of one per boundary (W_U is the largest matrix; reading it is the cost)."""
    vecs = boundary_vectors(cr)[:-1]  # [boundary - 1, pos, d_model]
    B, n, d = vecs.shape
    flat = vecs.reshape(B * n, d)
    rows: list[list[dict]] = []
    for start in range(0, len(flat), chunk):
        rows += top_k(cr.model, cr.model.unembed(flat[start:start + chunk]), k)
    return [rows[b * n:(b + 1) * n] for b in range(B)] + [top_k(cr.model, cr.logits(), k)]


# --- switching heads off ----------------------------------------------------------------------------

def ablation_hooks(heads: list[tuple[int, int]], mode: str) -> dict:
    """hook_z replacements: each listed head's z set to zero, or to its mean over the positions."""
    by_layer: dict[int, list[int]] = {}
    for L, h in heads:
        by_layer.setdefault(L, []).append(h)

    def make(hs):
        def hook(z, name):  # z: [pos, head_index, d_head]
            z = z.copy()
            for h in hs:
                z[:, h] = 0 if mode == "zero" else z[:, h].mean(0)
            return z
        return hook

    return {f"blocks.{L}.attn.hook_z": make(hs) for L, hs in by_layer.items()}


def ablated_run(model: Model, text: str, heads: list[tuple[int, int]], mode: str) -> CachedRun:
    names = {"hook_embed"} | {f"blocks.{L}.hook_resid_post" for L in range(model.cfg.n_layers)}
    run = model.run(text, names=names, logits=None, hooks=ablation_hooks(heads, mode))
    return CachedRun(model, run)


# --- what heads do: simple, documented scores -------------------------------------------------------

HEAD_SCORES = {
    "previous": "previous token: mean over positions i >= 1 of pattern[i, i-1]",
    "first": "first token (attention sink): mean over positions i >= 1 of pattern[i, 0]",
    "self": "self: mean over positions i of pattern[i, i]",
    "broad": "broad: mean over positions i >= 1 of the entropy of row i divided by the log of the number of keys "
             "it can see (1 = uniform attention, 0 = all on one token)",
    "induction": "induction: on a sequence of k random tokens repeated twice, mean over positions i >= k of "
                 "pattern[i, i-k+1], the token that followed the previous occurrence of the current one",
}


def pattern_stack(cr_or_cache, n_layers: int) -> np.ndarray:  # -> [layer, head, query, key]
    cache = cr_or_cache.run.cache if isinstance(cr_or_cache, CachedRun) else cr_or_cache
    return np.stack([cache[f"blocks.{L}.attn.hook_pattern"] for L in range(n_layers)])


def text_head_scores(P: np.ndarray, causal: bool) -> dict[str, np.ndarray]:
    """previous / first / self / broad scores of every head from patterns [layer, head, n, n]."""
    n = P.shape[-1]
    i = np.arange(1, n)
    out = {"previous": P[..., i, i - 1].mean(-1) if n > 1 else np.zeros(P.shape[:2]),
           "first": P[..., i, 0].mean(-1) if n > 1 else np.zeros(P.shape[:2]),
           "self": np.diagonal(P, axis1=-2, axis2=-1).mean(-1)}
    ent = -(P * np.log(np.where(P > 0, P, 1))).sum(-1)  # [layer, head, query]
    visible = (np.arange(n) + 1) if causal else np.full(n, n)
    norm = np.log(np.maximum(visible, 2))
    out["broad"] = (ent[..., 1:] / norm[1:]).mean(-1) if n > 1 else np.zeros(P.shape[:2])
    return out


def induction_ids(model: Model, k: int = 24, seed: int = 0) -> list[int]:
    """k random ordinary tokens repeated twice (deterministic), the classic induction probe."""
    rng = np.random.default_rng(seed)
    special = model.tokenizer.special
    pool = [i for i in range(1000, min(model.cfg.d_vocab, 20000)) if model.tokenizer.tk.id_to_token(i) not in special]
    seq = [int(x) for x in rng.choice(pool, size=k, replace=False)]
    if model.cfg.architecture == "bert":
        cls_, sep = model.tokenizer.tk.token_to_id("[CLS]"), model.tokenizer.tk.token_to_id("[SEP]")
        return [cls_] + seq + seq + [sep]
    return seq + seq


def induction_scores(model: Model, k: int = 24) -> np.ndarray:  # [layer, head]
    ids = induction_ids(model, k)
    names = {f"blocks.{L}.attn.hook_pattern" for L in range(model.cfg.n_layers)}
    _, cache = forward(model.cfg, model.weights, ids, names=names, logits=None)
    P = pattern_stack(cache, model.cfg.n_layers)
    pos_offset = 1 if model.cfg.architecture == "bert" else 0  # BERT's [CLS] comes first
    i = np.arange(pos_offset + k, pos_offset + 2 * k)
    return P[..., i, i - k + 1].mean(-1)


def head_scores(cr: CachedRun, induction: np.ndarray) -> dict[str, np.ndarray]:
    P = pattern_stack(cr, cr.model.cfg.n_layers)
    return text_head_scores(P, cr.model.cfg.causal) | {"induction": induction}


# --- the guided lesson --------------------------------------------------------------------------------

def heads_linking(cr: CachedRun, query: int, keys: list[int], top: int = 5) -> list[dict]:
    """Heads ranked by how much of the query token's attention goes to the given key tokens."""
    P = pattern_stack(cr, cr.model.cfg.n_layers)  # [layer, head, q, k]
    share = P[:, :, query, keys].sum(-1)  # [layer, head]
    order = np.argsort(-share, axis=None, kind="stable")[:top]
    H = share.shape[1]
    sink = float(np.median(P[:, :, query, 0]))
    return [{"layer": int(i // H), "head": int(i % H), "share": round(float(share.flat[i]), 4),
             "row": np.round(P[i // H, i % H, query], 4), "median_first_token": round(sink, 4)} for i in order]
