"""The data behind each view, for .json and .csv export.

measure: "weight" (default), the attention weights; "moved" (heatmap, grid, arrows), what the head
carried from each key to each query, ‖weight · v[key] W_O[head]‖₂ (app/contributions.py), in the
residual stream's units: the numbers of /api/attention with "measure": "moved" (4 decimals).

CSV layouts (one header row, then one row per value):
  heatmap, grid, arrows: layer,head,query_index,query_token,key_index,key_token,weight,score
      one row per (query, key) pair the model computed: heatmap = one head, grid = every layer x head,
      arrows = one head and one query token. Pairs hidden by the causal mask (key after query) are
      left out. weight is the softmax attention weight, score the pre-softmax score (scaled q.k).
  the same with measure=moved: layer,head,query_index,query_token,key_index,key_token,moved,weight,v_out_norm
      moved = ‖weight · v W_O‖₂, v_out_norm = ‖v[key] W_O[head]‖₂ (what a weight of 1 would move,
      5 decimals as /api/head's), so moved = weight x v_out_norm up to rounding.
  embeddings: boundary,token_index,token,pc1,pc2
      boundary "embed" is the embedding, "L" the residual stream after layer L (no measure=moved); the PCA
      of unit vectors, as the /compare page draws it (/api/residual with "normalize": true).
  A token cell is the token's text, except a byte piece of a character (SmolLM2 cuts an emoji into 3): the
  character its pieces spell and its place, " 🦊 (1/3)", never its bytes as escapes.
  A text cell (a token) that starts with =, +, -, @, tab or CR gets a leading ' so that a spreadsheet
  shows it as text instead of running it as a formula (OWASP "CSV injection"); numbers stay numbers.
JSON: {"model", "text", "view", "measure", "tokens": [{"id", "text", "start", "end"}], ...} plus, by view (a token
  that is a byte piece of a character also has "char", "piece", "pieces", as in the API):
  heatmap: layer, head, pattern [query][key] (null where masked), scores [query][key] (null where masked)
  grid: n_layers, n_heads, patterns [layer][head][query][key] (null where masked)
  arrows: layer, head, query (index), weights [key] (null where masked), scores [key]
  with measure=moved, also: heatmap moved [query][key], v_out_norm [key], peak (the head's largest);
      grid moved [layer][head][query][key] and peaks [layer][head] in place of patterns;
      arrows moved [key], v_out_norm [key], peak (the head's largest over every query)
  embeddings: layers (boundary names), normalize (true), pca_2d [boundary][token][2], explained_variance_2d [2]
"""

import numpy as np

from . import analysis, figures
from .runview import check_measure

ATTENTION_COLUMNS = ["layer", "head", "query_index", "query_token", "key_index", "key_token", "weight", "score"]
MOVED_COLUMNS = ["layer", "head", "query_index", "query_token", "key_index", "key_token", "moved", "weight", "v_out_norm"]
EMBEDDING_COLUMNS = ["boundary", "token_index", "token", "pc1", "pc2"]
VIEWS = ("heatmap", "grid", "arrows", "embeddings")
HEAD_VIEWS = ("heatmap", "grid", "arrows")  # the views that have a measure


class NotApplicable(ValueError):
    """measure=moved for a view that shows no head (the embeddings)."""


def check_view(view: str, measure: str = "weight") -> None:
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; views: {', '.join(VIEWS)}")
    check_measure(measure)
    if measure == "moved" and view not in HEAD_VIEWS:
        raise NotApplicable(f"the {view} view shows the residual stream, not what a head moved: measure=moved applies to "
                            f"{', '.join(HEAD_VIEWS)} only")


def csv_token(t) -> str:
    """A token's text for a CSV cell: as it is, but a byte piece of a character (incomplete UTF-8 on its own)
    as the character its pieces spell and its place, ' 🦊 (1/3)' (the JSON says text, char, piece, pieces)."""
    return f"{t.char} ({t.piece}/{t.pieces})" if t.pieces else t.text


def _round(x: float) -> float:
    return float(np.round(np.float64(x), 7))


def v_out_norm(result, layer: int, head: int) -> list[float]:
    """‖v[key] W_O[head]‖₂ per key, 5 decimals as /api/head's detail."""
    return np.round(result.value_norms(layer, head).astype(np.float64), 5).tolist()


def json_data(result, view: str, layer: int, head: int, token=None, measure: str = "weight") -> dict:
    check_view(view, measure)
    base = {"model": result.model.id, "text": result.text, "view": view, "measure": measure,
            "causal": result.model.cfg.causal, "tokens": analysis.tokens_public(result.run)}
    moved = measure == "moved"
    if view == "heatmap":
        out = base | {"layer": layer, "head": head, "pattern": figures.masked_pattern(result, layer, head),
                      "scores": analysis.scores_public(result.scores(layer, head))}
        if moved:
            m = figures.masked_values(result, layer, head, "moved")
            out |= {"moved": m, "v_out_norm": v_out_norm(result, layer, head), "peak": figures.peak(m, "moved")}
        return out
    if view == "grid":
        cfg = result.model.cfg
        values = [[figures.masked_values(result, L, h, measure) for h in range(cfg.n_heads)] for L in range(cfg.n_layers)]
        out = base | {"n_layers": cfg.n_layers, "n_heads": cfg.n_heads}
        if moved:
            return out | {"moved": values, "peaks": [[figures.peak(m, "moved") for m in heads] for heads in values]}
        return out | {"patterns": values}
    if view == "arrows":
        q = figures.resolve_token(result, token)
        out = base | {"layer": layer, "head": head, "query": q,
                      "weights": figures.masked_pattern(result, layer, head)[q],
                      "scores": analysis.scores_public(result.scores(layer, head))[q]}
        if moved:
            m = figures.masked_values(result, layer, head, "moved")
            out |= {"moved": m[q], "v_out_norm": v_out_norm(result, layer, head), "peak": figures.peak(m, "moved")}
        return out
    g = result.geometry()
    return base | {"layers": g["layers"], "normalize": figures.EMBEDDINGS_NORMALIZE, "pca_2d": np.round(g["pca_2d"], 6).tolist(),
                   "explained_variance_2d": np.round(g["explained_variance_2d"], 6).tolist()}


def csv_rows(result, view: str, layer: int, head: int, token=None, measure: str = "weight") -> tuple[list[str], list[list]]:
    check_view(view, measure)
    texts, n = [csv_token(t) for t in result.tokens], len(result.tokens)
    if view == "embeddings":
        g = result.geometry()
        return EMBEDDING_COLUMNS, [[b, i, texts[i], _round(g["pca_2d"][bi, i, 0]), _round(g["pca_2d"][bi, i, 1])]
                                   for bi, b in enumerate(g["layers"]) for i in range(n)]
    if view == "heatmap":
        heads, queries = [(layer, head)], range(n)
    elif view == "grid":
        cfg = result.model.cfg
        heads, queries = [(L, h) for L in range(cfg.n_layers) for h in range(cfg.n_heads)], range(n)
    else:
        heads, queries = [(layer, head)], [figures.resolve_token(result, token)]
    causal, rows = result.model.cfg.causal, []
    for L, h in heads:
        p = result.pattern(L, h)
        if measure == "moved":
            m, norms = figures.api_rounded(result.moved(L, h)).tolist(), v_out_norm(result, L, h)
            for q in queries:
                for k in range(q + 1 if causal else n):
                    rows.append([L, h, q, texts[q], k, texts[k], m[q][k], _round(p[q, k]), norms[k]])
            continue
        s = result.scores(L, h)
        for q in queries:
            for k in range(q + 1 if causal else n):
                rows.append([L, h, q, texts[q], k, texts[k], _round(p[q, k]), _round(s[q, k])])
    return (MOVED_COLUMNS if measure == "moved" else ATTENTION_COLUMNS), rows
