"""attnscope for notebooks and scripts: run a real model once, look at its attention as plotly figures.

    import attnscope
    r = attnscope.run("a fluffy blue creature roamed the verdant forest")
    r                      # in Jupyter: tokens, one head's heatmap and a one-line summary
    r.heatmap(2, 3)        # plotly go.Figure: query rows, key columns, viridis, masked cells empty
    r.grid()               # every layer x head at once (one mosaic heatmap)
    r.arrows(2, 3, token="creature")   # arcs from each key token to the query token
    r.embeddings()         # 2-D PCA of every token's residual stream, layer by layer
    r.heatmap(2, 3, measure="moved")   # what the head moved, ‖weight · v W_O‖₂, instead of where it looks
    r.moved(2, 3)          # those numbers, [query, key] (r.pattern(2, 3): the weights)
    r.heatmap(2, 3).write_html("head.html")   # figures are plain plotly figures

The same views from the shell: `attnscope export --view heatmap --text "..." -o head.html`
(see `attnscope export --help` for the .json/.csv column layouts).
"""

from .result import Result, run

__all__ = ["Result", "run"]
