"""The data behind each view, for .json and .csv export.

CSV layouts (one header row, then one row per value):
  heatmap, grid, arrows: layer,head,query_index,query_token,key_index,key_token,weight,score
      one row per (query, key) pair the model computed: heatmap = one head, grid = every layer x head,
      arrows = one head and one query token. Pairs hidden by the causal mask (key after query) are
      left out. weight is the softmax attention weight, score the pre-softmax score (scaled q.k).
  embeddings: boundary,token_index,token,pc1,pc2
      boundary "embed" is the embedding, "L" the residual stream after layer L.
  A text cell (a token) that starts with =, +, -, @, tab or CR gets a leading ' so that a spreadsheet
  shows it as text instead of running it as a formula (OWASP "CSV injection"); numbers stay numbers.
JSON: {"model", "text", "view", "tokens": [{"id", "text", "start", "end"}], ...} plus, by view:
  heatmap: layer, head, pattern [query][key] (null where masked), scores [query][key] (null where masked)
  grid: n_layers, n_heads, patterns [layer][head][query][key] (null where masked)
  arrows: layer, head, query (index), weights [key] (null where masked), scores [key]
  embeddings: layers (boundary names), pca_2d [boundary][token][2], explained_variance_2d [2]
"""

import numpy as np

from . import analysis, figures

ATTENTION_COLUMNS = ["layer", "head", "query_index", "query_token", "key_index", "key_token", "weight", "score"]
EMBEDDING_COLUMNS = ["boundary", "token_index", "token", "pc1", "pc2"]
VIEWS = ("heatmap", "grid", "arrows", "embeddings")


def _round(x: float) -> float:
    return float(np.round(np.float64(x), 7))


def json_data(result, view: str, layer: int, head: int, token=None) -> dict:
    base = {"model": result.model.id, "text": result.text, "view": view, "causal": result.model.cfg.causal,
            "tokens": analysis.tokens_public(result.run)}
    if view == "heatmap":
        return base | {"layer": layer, "head": head, "pattern": figures.masked_pattern(result, layer, head),
                       "scores": analysis.scores_public(result.scores(layer, head))}
    if view == "grid":
        cfg = result.model.cfg
        return base | {"n_layers": cfg.n_layers, "n_heads": cfg.n_heads,
                       "patterns": [[figures.masked_pattern(result, L, h) for h in range(cfg.n_heads)]
                                    for L in range(cfg.n_layers)]}
    if view == "arrows":
        q = figures.resolve_token(result, token)
        return base | {"layer": layer, "head": head, "query": q,
                       "weights": figures.masked_pattern(result, layer, head)[q],
                       "scores": analysis.scores_public(result.scores(layer, head))[q]}
    if view == "embeddings":
        g = result.geometry()
        return base | {"layers": g["layers"], "pca_2d": np.round(g["pca_2d"], 6).tolist(),
                       "explained_variance_2d": np.round(g["explained_variance_2d"], 6).tolist()}
    raise ValueError(f"unknown view {view!r}; views: {', '.join(VIEWS)}")


def csv_rows(result, view: str, layer: int, head: int, token=None) -> tuple[list[str], list[list]]:
    texts, n = result.token_texts, len(result.tokens)
    if view == "embeddings":
        g = result.geometry()
        return EMBEDDING_COLUMNS, [[b, i, texts[i], _round(g["pca_2d"][bi, i, 0]), _round(g["pca_2d"][bi, i, 1])]
                                   for bi, b in enumerate(g["layers"]) for i in range(n)]
    if view == "heatmap":
        heads, queries = [(layer, head)], range(n)
    elif view == "grid":
        cfg = result.model.cfg
        heads, queries = [(L, h) for L in range(cfg.n_layers) for h in range(cfg.n_heads)], range(n)
    elif view == "arrows":
        heads, queries = [(layer, head)], [figures.resolve_token(result, token)]
    else:
        raise ValueError(f"unknown view {view!r}; views: {', '.join(VIEWS)}")
    causal, rows = result.model.cfg.causal, []
    for L, h in heads:
        p, s = result.pattern(L, h), result.scores(L, h)
        for q in queries:
            for k in range(q + 1 if causal else n):
                rows.append([L, h, q, texts[q], k, texts[k], _round(p[q, k]), _round(s[q, k])])
    return ATTENTION_COLUMNS, rows
