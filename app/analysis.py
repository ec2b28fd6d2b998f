"""What the views show, computed from one run: attention, one head in full, next-token
predictions, residual-stream geometry. Plain functions of (model, run) returning plain data,
shared by the HTTP API, notebooks and the CLI. Every number comes from the run's captures.
"""

from dataclasses import dataclass, field

import numpy as np

from .engine import Model, Run
from .engine.forward import causal_mask

F32 = np.float32

# Everything any view needs, kept from one forward pass. hook_attn_scores is left out: it is as
# large as the patterns and is recomputed exactly, per head, from the captured q and k.
RUN_CAPTURES = ("hook_embed", "hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out",
                "hook_mlp_out", "hook_q", "hook_k", "hook_v", "hook_pattern", "hook_z")


def capture_names(model: Model) -> set[str]:
    names = {"hook_embed"}
    for L in range(model.cfg.n_layers):
        names |= {f"blocks.{L}.{n}" for n in RUN_CAPTURES[1:6]}
        names |= {f"blocks.{L}.attn.{n}" for n in RUN_CAPTURES[6:]}
    return names


@dataclass
class CachedRun:
    """A run plus what is derived from it on demand (logits are computed once, when first asked)."""

    model: Model
    run: Run
    _logits: np.ndarray | None = field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.run.cache.values()) + (0 if self._logits is None else self._logits.nbytes)

    def logits(self) -> np.ndarray:  # [pos, d_vocab], final norm + unembedding of the last residual
        if self._logits is None:
            last = self.run.cache[f"blocks.{self.model.cfg.n_layers - 1}.hook_resid_post"]
            self._logits = self.model.unembed(last)
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


def scores_public(scores: np.ndarray) -> list[list[float | None]]:
    """Scores as nested lists with None where masked (-inf is not JSON)."""
    rows = np.round(scores.astype(np.float64), 5).tolist()
    return [[None if x == -np.inf else x for x in row] for row in rows]


# --- next-token predictions -----------------------------------------------------------------------

def softmax_rows(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z -= z.max(-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(-1, keepdims=True)


def top_k(model: Model, logits: np.ndarray, k: int, temperature: float = 1.0) -> list[list[dict]]:
    """For each position, the k most likely next tokens, most likely first."""
    probs = softmax_rows(logits, temperature)
    k = min(k, probs.shape[-1])
    idx = np.argpartition(-probs, k - 1, axis=-1)[:, :k]
    out = []
    for row, cand in zip(probs, idx):
        cand = cand[np.argsort(-row[cand], kind="stable")]
        out.append([{"id": int(i), "text": model.tokenizer.id_text(int(i)), "prob": round(float(row[i]), 6)} for i in cand])
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
    cov = x.T @ x / max(1, len(x) - 1)
    vals, vecs = np.linalg.eigh(cov)
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
