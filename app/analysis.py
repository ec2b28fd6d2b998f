"""What the views show, computed from one run: attention, one head in full, next-token
predictions, residual-stream geometry. Plain functions of (model, run) returning plain data,
shared by the HTTP API, notebooks and the CLI. Every number comes from the run's captures.
"""

import re
import sys
from collections.abc import Callable, Iterable, Sequence
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


def full_run(model: Model, text: str, then: Sequence[int] = ()) -> CachedRun:
    return CachedRun(model, model.run(text, then=then, names=capture_names(model), logits=None))


def token_public(t) -> dict:
    """A token as the API sends it; a byte piece of a character (an emoji, a CJK character: incomplete
    UTF-8 on its own) also says the character its pieces spell and its place among them."""
    d = {"id": t.id, "text": t.text, "start": t.start, "end": t.end}
    if t.pieces:
        d |= {"char": t.char, "piece": t.piece, "pieces": t.pieces}
    return d


def tokens_public(run: Run) -> list[dict]:
    return [token_public(t) for t in run.tokens]


def read_next(model: Model, tokens: list, rows: list[list[dict]]) -> list[list[dict]]:
    """rows[i]: tokens predicted after position i (dicts with an "id"). Each predicted byte piece gets
    how it reads there (TextTokenizer.read_next): the character it completes when the text up to i
    stops inside one, else its bytes. Whole tokens are left as they are. Changes rows in place."""
    tk = model.tokenizer
    for i, row in enumerate(rows):
        pending, so_far = tk.next_piece(tokens, i)
        for p in row:
            p.update(tk.read_next(p["id"], pending, so_far))
    return rows


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
    if cfg.rotary:
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
        occ.append({"sentence": s, "token_index": t, "n_pieces": t - first + 1}
                   | {k: v for k, v in token_public(cr.run.tokens[t]).items() if k not in ("start", "end")})
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
    out = [rows[b * n:(b + 1) * n] for b in range(B)] + [top_k(cr.model, cr.logits(), k)]
    return [read_next(cr.model, cr.run.tokens, row) for row in out]


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


def ablated_run(model: Model, text: str, heads: list[tuple[int, int]], mode: str, then: Sequence[int] = ()) -> CachedRun:
    names = {"hook_embed"} | {f"blocks.{L}.hook_resid_post" for L in range(model.cfg.n_layers)}
    run = model.run(text, then=then, names=names, logits=None, hooks=ablation_hooks(heads, mode))
    return CachedRun(model, run)


# --- what heads do: simple, documented scores -------------------------------------------------------
#
# Each pattern is scored four ways: on the weights (where the head looks) or on what it moved (the same
# formula on contributions.moved normalised per query row), with key 0 kept or left out. Most heads park
# most of their weight on the first token, a sink that moves little: leaving key 0 out and renormalising
# each row over the other keys, as Neuronpedia's head dashboards do, scores what a head does with the
# rest, and its first-token share says how much that rest is.

HEAD_PATTERNS = ("previous", "first", "self", "broad", "induction")
MEASURES = ("weight", "moved")
SINK = ("kept", "left out")  # key 0


def score_name(pattern: str, measure: str = "weight", sink: str = "kept") -> str:
    return pattern + ("_moved" if measure == "moved" else "") + ("_no_sink" if sink == "left out" else "")


# name -> what it scores; "first" with key 0 left out would be 0 by definition
HEAD_VARIANTS = {score_name(p, m, s): {"pattern": p, "measure": m, "sink": s}
                 for m in MEASURES for s in SINK for p in HEAD_PATTERNS if not (p == "first" and s == "left out")}

_TITLE = {"previous": "previous token", "first": "first token (attention sink)", "self": "self", "broad": "broad",
          "induction": "induction"}
_EXPR = {  # X: a matrix whose rows sum to 1; s: the first query with a choice (two keys to pick from)
    "previous": "mean over positions i >= {s} of {X}[i, i-1]",
    "first": "mean over positions i >= 1 of {X}[i, 0]",
    "self": "mean over positions i{s_self} of {X}[i, i]",
    "broad": "mean over positions i >= {s} of the entropy of row i of {X} divided by the log of the number of keys it "
             "can see{aside} (1 = uniform attention, 0 = all on one token)",
    "induction": "on a sequence of k random tokens repeated twice, mean over positions i >= k of {X}[i, i-k+1], the "
                 "token that followed the previous occurrence of the current one",
}
_MATRIX = {
    ("weight", "kept"): ("pattern", ""),
    ("moved", "kept"): ("M", "; M[i, j] = moved[i, j] / Σ_k moved[i, k], moved[i, j] = ‖pattern[i, j] · (v_j W_O)‖: "
                             "what the head carries from key j into query i, as a share of all it carries into i"),
    ("weight", "left out"): ("P̃", "; P̃[i, j] = pattern[i, j] / Σ_{k >= 1} pattern[i, k] for keys j >= 1 (over the "
                                  "keys row i sees): key 0 left out, each row renormalised over the others"),
    ("moved", "left out"): ("M̃", "; M̃[i, j] = moved[i, j] / Σ_{k >= 1} moved[i, k] for keys j >= 1 (over the keys "
                                 "row i sees), moved[i, j] = ‖pattern[i, j] · (v_j W_O)‖: what the head carries from "
                                 "each key but key 0, as a share of their sum"),
}


def _formula(pattern: str, measure: str, sink: str) -> str:
    X, where = _MATRIX[(measure, sink)]
    kept = sink == "kept"
    title = _TITLE[pattern] + (", what moved" if measure == "moved" else "") + ("" if kept else ", key 0 left out")
    expr = _EXPR[pattern].format(X=X, s=1 if kept else 2, s_self="" if kept else " >= 2", aside="" if kept else " but key 0")
    return f"{title}: {expr}{where}"


HEAD_SCORES = {name: _formula(**v) for name, v in HEAD_VARIANTS.items()}


def pattern_stack(cr_or_cache, n_layers: int) -> np.ndarray:  # -> [layer, head, query, key]
    cache = cr_or_cache.run.cache if isinstance(cr_or_cache, CachedRun) else cr_or_cache
    return np.stack([cache[f"blocks.{L}.attn.hook_pattern"] for L in range(n_layers)])


def per_row(X: np.ndarray) -> np.ndarray:  # [..., query, key] >= 0 -> each row divided by its sum (a 0 row stays 0)
    s = X.sum(-1, keepdims=True)
    return np.divide(X, s, out=np.zeros_like(X), where=s > 0)


def without_first(X: np.ndarray) -> np.ndarray:  # [..., query, key] -> key 0 set to 0, each row renormalised over the rest
    X = X.copy()
    X[..., 0] = 0
    return per_row(X)


def text_head_scores(A: np.ndarray, causal: bool, sink: str = "kept") -> dict[str, np.ndarray]:
    """previous / first / self / broad scores of every head from A [..., n, n] whose rows sum to 1 (the
    weights, or what moved per_row): as HEAD_SCORES says, with key 0 kept or left out (A renormalised
    over keys 1.. first; then a query needs two keys besides key 0 to have a choice: i >= 2)."""
    n, kept = A.shape[-1], sink == "kept"
    X = A if kept else without_first(A)
    s = 1 if kept else 2
    zero = np.zeros(A.shape[:-2], dtype=np.float64)
    i = np.arange(s, n)
    mean = lambda x: x.mean(-1) if len(i) else zero  # noqa: E731  (too few tokens: 0)
    out = {"previous": mean(X[..., i, i - 1])}
    if kept:
        out["first"] = mean(X[..., i, 0])
    out["self"] = np.diagonal(X, axis1=-2, axis2=-1).mean(-1) if kept else mean(X[..., i, i])
    ent = -(X * np.log(np.where(X > 0, X, 1))).sum(-1)  # [..., query]
    seen = (np.arange(n) + 1) if causal else np.full(n, n)  # keys row i can see
    norm = np.log(np.maximum(seen - (0 if kept else 1), 2))
    out["broad"] = mean(ent[..., i] / norm[i])
    return out


def all_head_scores(A: np.ndarray, M: np.ndarray, causal: bool, score) -> dict[str, np.ndarray]:
    """score(X, sink) -> {pattern: [...]} for the weights A and what moved M [..., n, n], every variant, by name."""
    out = {}
    for measure, X in (("weight", A), ("moved", per_row(M))):
        for sink in SINK:
            out |= {score_name(p, measure, sink): v for p, v in score(X, sink).items()}
    return out


def induction_ids(model: Model, k: int = 24, seed: int = 0) -> list[int]:
    """k random ordinary tokens repeated twice (deterministic), the classic induction probe."""
    rng = np.random.default_rng(seed)
    special = model.tokenizer.special
    first = min(1000, model.cfg.d_vocab // 4)  # past the byte and special tokens (a tiny vocabulary has no id 1000)
    pool = [i for i in range(first, min(model.cfg.d_vocab, 20000)) if model.tokenizer.tk.id_to_token(i) not in special]
    seq = [int(x) for x in rng.choice(pool, size=k, replace=False)]
    if model.cfg.architecture == "bert":  # framed as the tokenizer frames any text: [CLS] ... [SEP], RoBERTa's <s> ... </s>
        cls_, sep = model.tokenizer.tk.encode("").ids
        return [cls_] + seq + seq + [sep]
    return seq + seq


Moved = Callable[[CachedRun, int], np.ndarray]  # (run, layer) -> [head, query, key]: contributions.moved


INDUCTION = [name for name, v in HEAD_VARIANTS.items() if v["pattern"] == "induction"]


def induction_scores(model: Model, moved: Moved, k: int = 24) -> np.ndarray:  # -> [INDUCTION's variant, layer, head]
    """The induction scores, every variant (in INDUCTION's order), on the probe (induction_ids). One array,
    so that a cache that counts its values' nbytes can keep it."""
    ids = induction_ids(model, k)
    names = {f"blocks.{L}.attn.{n}" for L in range(model.cfg.n_layers) for n in ("hook_pattern", "hook_v")}
    _, cache = forward(model.cfg, model.weights, ids, names=names, logits=None)
    probe = CachedRun(model, Run(model.id, [], cache))
    i = np.arange(k, 2 * k) + (1 if model.cfg.architecture == "bert" else 0)  # BERT's [CLS] comes first

    def score(X, sink):
        return {"induction": (X if sink == "kept" else without_first(X))[..., i, i - k + 1].mean(-1)}

    layers = [all_head_scores(cache[f"blocks.{L}.attn.hook_pattern"], moved(probe, L), model.cfg.causal, score)
              for L in range(model.cfg.n_layers)]
    return np.stack([np.stack([s[name] for s in layers]) for name in INDUCTION])


def head_scores(cr: CachedRun, induction: np.ndarray, moved: Moved) -> dict[str, np.ndarray]:
    """Every HEAD_SCORES score of every head ([layer, head]), the text's and the probe's (induction), in
    HEAD_VARIANTS' order. One layer at a time: the layer's weights and what moved, [head, n, n] each."""
    causal = cr.model.cfg.causal
    score = lambda X, sink: text_head_scores(X, causal, sink)  # noqa: E731
    layers = [all_head_scores(cr.run.cache[f"blocks.{L}.attn.hook_pattern"], moved(cr, L), causal, score)
              for L in range(cr.model.cfg.n_layers)]
    probe = dict(zip(INDUCTION, induction))
    return {name: probe[name] if name in probe else np.stack([s[name] for s in layers]) for name in HEAD_VARIANTS}


# --- the guided lesson --------------------------------------------------------------------------------

def query_rows(cr: CachedRun, query: int, moved: Moved) -> tuple[np.ndarray, np.ndarray]:
    """The query token's row in every head: its weights and what moved as shares (per_row), [layer, head, key] each."""
    n_layers = cr.model.cfg.n_layers
    P = np.stack([cr.run.cache[f"blocks.{L}.attn.hook_pattern"][:, query] for L in range(n_layers)])
    M = per_row(np.stack([moved(cr, L)[:, query] for L in range(n_layers)]))
    return P, M


def heads_linking(cr: CachedRun, query: int, keys: list[int], moved: Moved, top: int = 5, by: str = "moved") -> list[dict]:
    """Heads ranked by how much of the query token's row comes from the given key tokens: its weights'
    share ("weight"), or the share of what the head moved into it from them ("moved", per_row of
    contributions.moved), the one ranked by `by`; "first" is the head's first-token weight for this query."""
    P, M = query_rows(cr, query, moved)
    weight, share = P[..., keys].sum(-1), M[..., keys].sum(-1)  # [layer, head]
    order = np.argsort(-(share if by == "moved" else weight), axis=None, kind="stable")[:top]
    H = weight.shape[1]
    r = lambda x: round(float(x), 4)  # noqa: E731
    return [{"layer": int(i // H), "head": int(i % H), "weight": r(weight.flat[i]), "moved": r(share.flat[i]),
             "first": r(P[i // H, i % H, 0]), "row": np.round(P[i // H, i % H], 4), "moved_row": np.round(M[i // H, i % H], 4)}
            for i in order]


def first_token_summary(cr: CachedRun, query: int, scores: dict[str, np.ndarray], moved: Moved,
                        value_norms: Callable[[CachedRun, int], np.ndarray]) -> dict:
    """How much the first token takes and how much it moves: over every head (the head finder's "first"
    and "first_moved" scores, averaged), for one query (the median head), and per unit of weight
    (‖v_0 W_O‖ over the median ‖v_j W_O‖ of the other keys, the median over heads)."""
    P, M = query_rows(cr, query, moved)
    V = np.stack([value_norms(cr, L) for L in range(cr.model.cfg.n_layers)])  # [layer, head, key]
    r = lambda x: round(float(x), 4)  # noqa: E731
    return {"weight": r(scores["first"].mean()), "moved": r(scores["first_moved"].mean()),
            "value_ratio": r(np.median(V[..., 0] / np.median(V[..., 1:], -1))),
            "query_weight": r(np.median(P[..., 0])), "query_moved": r(np.median(M[..., 0]))}


def shared_head(rows: list[tuple[np.ndarray, np.ndarray]], keys: list[int]) -> dict:
    """The head that moves the most from keys[s] in every sentence s: the largest smallest share.
    rows: per sentence, query_rows' (weights, moved shares), [layer, head, key] each."""
    moved = np.stack([M[..., k] for (_, M), k in zip(rows, keys)])  # [sentence, layer, head]
    worst = moved.min(0)
    i = int(np.argmax(worst))
    L, h = divmod(i, worst.shape[1])
    return {"layer": L, "head": h, "moved": [round(float(m[L, h]), 4) for m in moved],
            "weight": [round(float(P[L, h, k]), 4) for (P, _), k in zip(rows, keys)]}
