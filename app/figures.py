"""The views as plotly figures, built from one RunView (app/runview.py), and the lesson's charts, built from the API's payloads
(every number is one the model produced).

The head views (heatmap, grid, arrows) show a measure: "weight", the attention pattern in [0, 1], or
"moved", ‖weight · v W_O‖₂, the size of what the head carries from each key, in the residual stream's
units (not bounded by 1). What moved is scaled by each head's largest value, as the explorer's views
scale it (static/js/explorer/data.js peak()), and its numbers are the API's (4 decimals)."""

import numpy as np
import plotly.graph_objects as go

from . import analysis
from .style import MASKED, VIRIDIS_SCALE, head_color, label, legend, token_note, viridis

FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12)
# what "moved" is, for titles, captions and colour bars
MOVED = "what it moved: ‖weight · v W_O‖₂"
MOVED_UNITS = "the size of what the head adds to the residual stream, in the stream's units"


# The explorer's grid (static/js/views/grid.js) colours a thumbnail by √value so that weak but structured
# patterns stay visible; the exported grid does the same with its colour scale (colour at value t is
# viridis(√t): stops at t = (i/32)², piecewise linear between), so z and the colour bar keep the true values.
SQRT_VIRIDIS_SCALE = [[(i / 32) ** 2, viridis(i / 32)] for i in range(33)]


def subtitle(*lines: str) -> str:
    return "".join(f"<br><sup>{line}</sup>" for line in lines if line)


def marks(labels: list[str]) -> str:
    """The legend of the marks the token labels show ("· = a space before the word"), for a subtitle; "" if none."""
    return legend(labels)


def notes(tokens) -> list[str]:
    """Per token, what a byte piece is ("<br>1 of 3 byte pieces of 🦊") for hover text; "" for a whole token."""
    return [f"<br>{label(token_note(t))}" if token_note(t) else "" for t in tokens]


def api_rounded(a: np.ndarray) -> np.ndarray:
    """float32 values as /api/attention's JSON writes them: numpy's 4-decimal rounding of the float32,
    then its shortest decimal (float64 round to 4 decimals of that float32 gives the same number)."""
    return np.round(np.round(np.asarray(a, dtype=np.float32), 4).astype(np.float64), 4)


def masked_values(result, layer: int, head: int, measure: str = "weight") -> list[list[float | None]]:
    """The head's [query][key] weights (float32 as float) or what it moved (the API's 4 decimals), as
    float lists, None where the causal mask hides the key."""
    v = result.values(layer, head, measure)
    rows = (v.astype(np.float64) if measure == "weight" else api_rounded(v)).tolist()
    if result.model.cfg.causal:
        for q, row in enumerate(rows):
            for k in range(q + 1, len(row)):
                row[k] = None
    return rows


def masked_pattern(result, layer: int, head: int) -> list[list[float | None]]:
    """The head's weights [query][key] as float lists, None where the causal mask hides the key."""
    return masked_values(result, layer, head, "weight")


def peak(rows: list[list[float | None]], measure: str) -> float:
    """What a head's colours and strokes are scaled by: 1 for weights; for what moved the head's largest
    value (1 if it moved nothing), as the explorer scales it."""
    if measure == "weight":
        return 1.0
    return max((v for row in rows for v in row if v is not None), default=0.0) or 1.0


def heatmap(result, layer: int, head: int, measure: str = "weight") -> go.Figure:
    result.check(layer, head)
    moved = measure == "moved"
    labels = [label(t) for t in result.tokens]
    n = len(labels)
    z = masked_values(result, layer, head, measure)
    about = notes(result.tokens)
    scores = analysis.head_detail(result.cached, layer, head)["scores"].astype(np.float64)
    weights = result.pattern(layer, head).astype(np.float64)
    custom = [[[labels[q] + about[q], labels[k] + about[k], None if not np.isfinite(scores[q, k]) else float(scores[q, k]), q, k]
               + ([float(weights[q, k])] if moved else []) for k in range(n)] for q in range(n)]
    hover = "query %{customdata[3]} %{customdata[0]}<br>key %{customdata[4]} %{customdata[1]}<br>"
    hover += ("moved %{z:.4f}<br>weight %{customdata[5]:.4f}<br>" if moved else "weight %{z:.4f}<br>")
    fig = result.figure_type(go.Heatmap(
        z=z, x=list(range(n)), y=list(range(n)), customdata=custom, zmin=0, zmax=peak(z, measure),
        colorscale=VIRIDIS_SCALE, hoverongaps=False, xgap=1, ygap=1,
        colorbar=dict(title=dict(text="moved<br>‖w · v W_O‖₂" if moved else "weight")),
        hovertemplate=hover + "score (pre-softmax) %{customdata[2]:.3f}<extra></extra>", name=f"L{layer} H{head}"))
    side = min(900, 220 + 28 * n)
    masked = " (grey: masked)" if result.model.cfg.causal else ""
    legend_line = marks(labels)
    title = f"{result.model.id}: layer {layer}, head {head}" + (masked + subtitle(legend_line) if not moved else " · what it moved" + subtitle(
        f"‖weight · v W_O‖₂: {MOVED_UNITS}{masked}", f"colours from 0 to the head's largest, {peak(z, measure):.4f}", legend_line))
    fig.update_layout(
        title=dict(text=title, font=dict(size=14)),
        # no grid or zero lines (as static/js/views/heatmap.js): plotly draws them on the background that the
        # masked cells leave empty, so the zero line at query 0 crossed the whole masked row
        xaxis=dict(title="key", tickvals=list(range(n)), ticktext=labels, tickangle=-45, side="bottom", showgrid=False,
                   zeroline=False),
        yaxis=dict(title="query", tickvals=list(range(n)), ticktext=labels, autorange="reversed", showgrid=False,
                   zeroline=False),
        plot_bgcolor=MASKED, width=max(600, side + 120), height=max(420, side), font=FONT,
        margin=dict(l=90, r=20, t=(100 if moved else 60) + (18 if legend_line else 0), b=90))
    return fig


def grid_matrix(result, measure: str = "weight") -> tuple[list[list[float | None]], int, list[list[list[float | None]]]]:
    """Every layer x head as one mosaic [head * step][layer * step], as the explorer lays it out
    (static/js/views/grid.js: layers left to right, heads top to bottom): block (L, h) starts at row
    h * step, column L * step, step = n + gap; the gap rows/columns between blocks and the masked cells
    are None. For what moved each block is divided by its head's largest value (the explorer's
    thumbnails), so the mosaic is in [0, 1] either way. Returns (mosaic, step, the values themselves
    [layer][head][query][key])."""
    cfg, n = result.model.cfg, len(result.tokens)
    # the explorer leaves 3 px between thumbnails of about 40: one cell up to 18 tokens, then about 8% of n,
    # so that long texts' thumbnails stay apart
    step = n + max(1, round(0.08 * n))
    z = [[None] * (cfg.n_layers * step - step + n) for _ in range(cfg.n_heads * step - step + n)]
    values = [[masked_values(result, L, h, measure) for h in range(cfg.n_heads)] for L in range(cfg.n_layers)]
    for L in range(cfg.n_layers):
        for h in range(cfg.n_heads):
            top = peak(values[L][h], measure)
            for q, row in enumerate(values[L][h]):
                z[h * step + q][L * step:L * step + n] = row if top == 1.0 else [None if v is None else v / top for v in row]
    return z, step, values


# The explorer's thumbnails paint a masked cell grey at 40/255 opacity over the panel (grid.js); the
# export draws the same grey on top of the cells the mosaic leaves empty, so a thumbnail reads as a
# square with its masked half greyed out, and the white gaps between thumbnails stay white.
GRID_MASKED = "rgba(128, 128, 128, 0.157)"
# a thumbnail's side in CSS px: the explorer's (grid.js: its panel's width over the layers, 18 to 72 px),
# for a figure about 960 px wide; at least one px per cell
GRID_WIDTH, GRID_PITCH = 960, (18, 72)


def grid(result, measure: str = "weight") -> go.Figure:
    """Every head's pattern as a thumbnail, as the explorer's grid shows them: layers left to right, heads
    top to bottom, brightness √weight (SQRT_VIRIDIS_SCALE), the causal mask grey."""
    cfg, n = result.model.cfg, len(result.tokens)
    moved = measure == "moved"
    z, step, values = grid_matrix(result, measure)
    labels = [label(t) for t in result.tokens]
    custom = [[None] * len(z[0]) for _ in z]
    mask = [[None] * len(z[0]) for _ in z]
    for r in range(len(z)):
        h, q = divmod(r, step)
        for c in range(len(z[0])):
            L, k = divmod(c, step)
            if q < n and k < n:
                custom[r][c] = [L, h, labels[q], labels[k]] + ([values[L][h][q][k]] if moved else [])
                if values[L][h][q][k] is None:
                    mask[r][c] = 1
    hover = "layer %{customdata[0]}, head %{customdata[1]}<br>query %{customdata[2]}<br>key %{customdata[3]}<br>"
    hover += "moved %{customdata[4]:.4f} (%{z:.0%} of the head's largest)" if moved else "weight %{z:.4f}"
    fig = result.figure_type(go.Heatmap(
        z=z, customdata=custom, zmin=0, zmax=1, colorscale=SQRT_VIRIDIS_SCALE, hoverongaps=False, name="heads",
        colorbar=dict(title=dict(text="moved ÷<br>the head's<br>largest" if moved else "weight"),
                      tickvals=[0, 0.1, 0.25, 0.5, 0.75, 1]),
        hovertemplate=hover + "<extra></extra>"))
    if result.model.cfg.causal:
        fig.add_trace(go.Heatmap(z=mask, zmin=0, zmax=1, colorscale=[[0, GRID_MASKED], [1, GRID_MASKED]], showscale=False,
                                 hoverinfo="skip", name="masked"))
    centre = (n - 1) / 2
    pitch = max(step, min(GRID_PITCH[1], max(GRID_PITCH[0], GRID_WIDTH // cfg.n_layers)))  # px per thumbnail
    every = 5 if pitch < 24 else 1  # grid.js labels every fifth layer when thumbnails are this small
    how = "layers left to right, heads top to bottom, as on screen; brightness follows √"
    title = f"{result.model.id}: every layer x head" + (
        " · what it moved" + subtitle(f"‖weight · v W_O‖₂: {MOVED_UNITS}",
                                      f"{how}(moved ÷ the head's largest)") if moved else subtitle(f"{how}weight"))
    top = 135 if moved else 110  # the title, then the layer axis' title and labels
    height = max(360, cfg.n_heads * pitch + top + 30)
    fig.update_layout(
        title=dict(text=title, yref="container", y=1 - 34 / height, yanchor="top"),
        xaxis=dict(title=dict(text="layer"), tickvals=[L * step + centre for L in range(0, cfg.n_layers, every)],
                   ticktext=[str(L) for L in range(0, cfg.n_layers, every)], side="top", showgrid=False, zeroline=False,
                   constrain="domain"),
        yaxis=dict(title=dict(text="head"), tickvals=[h * step + centre for h in range(cfg.n_heads)],
                   ticktext=[str(h) for h in range(cfg.n_heads)], autorange="reversed", showgrid=False, zeroline=False,
                   scaleanchor="x", constrain="domain"),
        plot_bgcolor="white", font=FONT, width=max(560, cfg.n_layers * pitch + 170),
        height=height, margin=dict(l=60, r=20, t=top, b=20))
    return fig


def resolve_token(result, token) -> int:
    """A query position from an index (negative counts from the end), a token's text, or None (the last)."""
    n = len(result.tokens)
    if token is None:
        return n - 1
    if isinstance(token, (int, np.integer)):
        if not -n <= token < n:
            raise ValueError(f"token {token} is out of range: the text has {n} tokens (0-{n - 1})")
        return int(token) % n
    word = str(token).strip()
    for i, t in enumerate(result.tokens):
        if t.text.strip() == word:
            return i
        if t.pieces and t.piece == t.pieces and t.char.strip() == word:  # a character cut into byte pieces: its last
            return i
    raise ValueError(f"no token {word!r} in the text; tokens: {[t.text for t in result.tokens]}")


def arc(x0: float, x1: float, height: float, steps: int = 24) -> tuple[list[float], list[float]]:
    """A quadratic Bezier from (x0, 0) up to height and down to (x1, 0)."""
    t = np.linspace(0, 1, steps)
    mid = (x0 + x1) / 2
    xs = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * mid + t ** 2 * x1
    ys = 2 * (1 - t) * t * height
    return xs.round(4).tolist(), ys.round(4).tolist()


def arrows(result, layer: int, head: int, token=None, min_weight: float = 0.0, measure: str = "weight") -> go.Figure:
    """Arcs from each key to the query token. Width and opacity follow the weight, or for what moved the
    share of the head's largest value (as on screen); min_weight drops arcs below that (same scale)."""
    result.check(layer, head)
    moved = measure == "moved"
    q = resolve_token(result, token)
    labels = [label(t) for t in result.tokens]
    about = notes(result.tokens)
    n = len(labels)
    rows = masked_values(result, layer, head, measure)
    top = peak(rows, measure)
    w = np.array([0.0 if v is None else v for v in rows[q]])
    weights = result.pattern(layer, head)[q].astype(np.float64)
    colour = head_color(head)
    t = result.tokens[q]
    query = label(t) if t.pieces else label(t.text.strip() or t.text)  # for the title: no leading space
    fig = result.figure_type()
    keys = range(q + 1) if result.model.cfg.causal else range(n)
    for k in sorted(keys, key=lambda k: w[k]):  # strongest drawn last, on top
        r = w[k] / top
        if r < min_weight:
            continue
        hover = f"key {k} {labels[k]}{about[k]} → query {q} {labels[q]}{about[q]}<br>" + (
            f"moved {w[k]:.4f} (weight {weights[k]:.4f})" if moved else f"weight {w[k]:.4f}")
        if k == q:  # a token reading itself: a small loop above it
            t = np.linspace(0, 2 * np.pi, 30)
            xs, ys = (k + 0.18 * np.sin(t)).tolist(), (0.25 * (1 - np.cos(t))).tolist()
        else:
            xs, ys = arc(k, q, 0.25 + 0.12 * abs(q - k))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=colour, width=0.5 + 9 * r),
                                 opacity=0.15 + 0.85 * r, hoverinfo="text", hovertext=hover, showlegend=False,
                                 name=f"{k}→{q}", customdata=[[k, q, float(w[k])] + ([float(weights[k])] if moved else [])] * len(xs)))
    what = "moved to" if moved else "weight from"
    fig.add_trace(go.Scatter(
        x=list(range(n)), y=[0] * n, mode="markers+text", text=labels, textposition="bottom center",
        marker=dict(size=[14 if i == q else 8 for i in range(n)], color=[colour if i == q else "#555" for i in range(n)]),
        hovertext=[f"{i} {labels[i]}: {what} query {w[i]:.4f}{about[i]}" for i in range(n)], hoverinfo="text",
        showlegend=False, name="tokens"))
    height = 0.25 + 0.12 * max(n - 1, 1) / 2 + 0.3
    legend_line = marks(labels)
    title = f"{result.model.id}: layer {layer}, head {head}: what {query} (token {q}) " + (
        "takes from" + subtitle(f"{MOVED}, {MOVED_UNITS}", f"strokes from 0 to the head's largest, {top:.4f}", legend_line) if moved
        else "reads" + subtitle(legend_line))
    fig.update_layout(
        title=dict(text=title),
        xaxis=dict(visible=False, range=[-0.8, n - 0.2]), yaxis=dict(visible=False, range=[-0.5, height]),
        plot_bgcolor="white", font=FONT, width=max(500, 70 * n + 100), height=400 if moved else 360,
        margin=dict(l=20, r=20, t=(90 if moved else 50) + (18 if legend_line else 0), b=20))
    return fig


# The /compare page draws every token's path through the layers from /api/residual with normalize true
# (static/js/compare.js): the PCA of unit vectors, each vector's direction. The raw vectors would give
# PC1 to the first token alone (SmolLM2's first token, the attention sink, has a residual stream 60 times
# longer than the others' at the median boundary, up to 140 times: PC1 holds 99.7% of the variance of the
# lesson sentence and is that one token), leaving every other token in one blob.
EMBEDDINGS_NORMALIZE = True


def embeddings(result, normalize: bool = EMBEDDINGS_NORMALIZE) -> go.Figure:
    """Each token's residual stream from the embedding to the last layer, 2-D PCA fitted on every (boundary,
    token) vector: /api/residual's pca_2d for the same normalize. Markers grow with depth, as on /compare."""
    g = result.geometry(normalize)
    xy, layers, var = g["pca_2d"], g["layers"], g["explained_variance_2d"]
    labels = [label(t) for t in result.tokens]
    about = notes(result.tokens)
    B = len(layers)
    fig = result.figure_type()
    for i, lab in enumerate(labels):
        c = head_color(i)
        fig.add_trace(go.Scatter(
            x=xy[:, i, 0].tolist(), y=xy[:, i, 1].tolist(), mode="lines+markers", name=f"{i} {lab}",
            line=dict(color=c, width=1.5), marker=dict(size=[4 + 9 * b / max(B - 1, 1) for b in range(B)], color=c),
            text=[f"{lab} after {'the embedding' if b == 'embed' else 'layer ' + b}{about[i]}" for b in layers],
            hovertemplate="%{text}<br>PC1 %{x:.3f}, PC2 %{y:.3f}<extra></extra>"))
        fig.add_annotation(x=float(xy[-1, i, 0]), y=float(xy[-1, i, 1]), text=lab, showarrow=False, yshift=12,
                           font=dict(color=c))
    what = "unit vectors (directions), as on /compare" if normalize else "the raw vectors (lengths included)"
    fig.update_layout(
        title=dict(text=f"{result.model.id}: each token's residual stream, layer by layer (2-D PCA)"
                        + subtitle(f"PCA of {what}; markers grow with depth, the label at the last layer", marks(labels))),
        xaxis=dict(title=f"PC1 ({100 * var[0]:.1f}% of variance)", zeroline=False),
        yaxis=dict(title=f"PC2 ({100 * var[1]:.1f}%)", zeroline=False),
        font=FONT, width=800, height=560, plot_bgcolor="white", margin=dict(l=60, r=20, t=70 + (18 if marks(labels) else 0), b=50))
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    return fig


# --- the lesson's charts, drawn from the API's payloads (the numbers of /lesson, unchanged) ---------

def similarity_by_layer(compare: dict, sentences: list[str]) -> go.Figure:
    """compare: /api/compare's payload. One line per pair of sentences: the word's cosine similarity
    at every layer boundary (1 at the embedding when it is the same token in both)."""
    layers, occ = compare["layers"], compare["occurrences"]
    sim = np.asarray(compare["similarity"], dtype=np.float64)  # [boundary, occurrence, occurrence]
    n = len(occ)
    fig = go.Figure()
    for a in range(n):
        for b in range(a + 1, n):
            pair = f"“{label(sentences[a])}” vs “{label(sentences[b])}”"
            fig.add_trace(go.Scatter(
                x=layers, y=sim[:, a, b].tolist(), mode="lines+markers", name=f"sentences {a + 1} and {b + 1}",
                line=dict(color=head_color(a + b), width=2), marker=dict(size=5),
                hovertemplate=f"{pair}<br>after %{{x}}: cosine %{{y:.4f}}<extra></extra>"))
    upper = np.triu_indices(n, 1)
    low = float(sim[:, upper[0], upper[1]].min()) if n > 1 else 0.0
    fig.update_layout(
        title=dict(text=f"{compare['model']}: “{label(compare['word'])}” in {n} sentences, layer by layer"),
        xaxis=dict(type="category", title="layer boundary (emb: the embedding, before layer 0; L: after layer L)",
                   tickvals=layers, ticktext=["emb" if b == "embed" else b for b in layers], tickangle=0),
        yaxis=dict(title="cosine similarity", range=[min(0.0, low - 0.05), 1.02]),
        legend=dict(orientation="h", y=-0.3), font=FONT, width=820, height=450, plot_bgcolor="white",
        margin=dict(l=60, r=20, t=50, b=120))
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    return fig


def ablation(predictions: dict, position: int = -1, k: int = 6) -> go.Figure:
    """predictions: /api/predictions' payload with heads switched off ("ablate", "original"). Grouped
    bars: the most likely next tokens after `position` with every head on and with the heads off.
    A token outside one run's top-k has no bar there (its probability is below that list's last)."""
    orig, now = predictions["original"][position], predictions["predictions"][position]
    ids = list(dict.fromkeys([p["id"] for p in orig] + [p["id"] for p in now]))[:k]
    token = {p["id"]: p for p in now + orig}
    names = [label(token[i]) for i in ids]
    if len(set(names)) < len(names):  # two ids that read alike: keep the bars apart
        names = [f"{nm} ({i})" for nm, i in zip(names, ids)]
    heads_off = predictions["ablate"]
    heads = ", ".join(f"L{L}H{h}" for L, h in heads_off)
    fig = go.Figure()
    for run, name, colour in ((orig, "every head on", "#60656f"), (now, f"{heads} off", "#d4572a")):
        probs = {p["id"]: p["prob"] for p in run}
        fig.add_trace(go.Bar(
            x=names, y=[probs.get(i) for i in ids], name=name, marker=dict(color=colour),
            text=[f"{100 * probs[i]:.0f}%" if i in probs else f"not in top {len(run)}" for i in ids],
            textposition="outside", cliponaxis=False,
            hovertemplate=f"{name}<br>next token %{{x}}: %{{y:.2%}}<extra></extra>"))
    missing = any(i not in {p["id"] for p in run} for run in (orig, now) for i in ids)
    if missing:
        fig.add_annotation(text=f"no bar: not in that run's top {len(now)}", xref="paper", yref="paper", x=1, y=-0.2,
                           showarrow=False, xanchor="right", font=dict(size=11, color="#60656f"))
    mode = "set to zero" if predictions["ablate_mode"] == "zero" else "set to their mean"
    fig.update_layout(
        title=dict(text=f"{predictions['model']}: the next token, every head on vs {len(heads_off)} heads off ({mode})"),
        barmode="group", yaxis=dict(title="probability of the next token", tickformat=".0%", range=[0, 1.08]),
        xaxis=dict(title="next token" + (f" ({marks(names)})" if marks(names) else "")), legend=dict(orientation="h", y=1.1),
        font=FONT, width=820, height=440,
        plot_bgcolor="white", margin=dict(l=60, r=20, t=80, b=60))
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    return fig


def specialists(finder: dict, model_id: str) -> go.Figure:
    """finder: the lesson's head finder ("rows": each pattern's top heads, by the score with key 0 left out
    (first: kept), each with that score, the same with key 0 kept and on what moved; "formulas").
    Horizontal bars, three per head: one per reading."""
    rows = finder["rows"]
    y = [f"{r['pattern']} · L{h['layer']} H{h['head']}" for r in rows for h in r["heads"]]
    readings = (("score", "the score (key 0 left out; first token: kept)", "#3b528b"),
                ("kept", "with key 0 kept", "#a0a6b1"), ("moved", "the same score on what moved", "#d4572a"))
    fig = go.Figure()
    for key, name, colour in readings:
        x = [h[key] for r in rows for h in r["heads"]]
        formula = [label(finder["formulas"][r["moved_name" if key == "moved" else "name" if key == "score" else "pattern"]])
                   for r in rows for _ in r["heads"]]
        fig.add_trace(go.Bar(
            y=y, x=x, orientation="h", name=name, marker=dict(color=colour), text=[f"{v:.2f}" for v in x],
            textposition="outside", cliponaxis=False, customdata=formula,
            hovertemplate=f"%{{y}}, {name}: %{{x:.4f}}<br>%{{customdata}}<extra></extra>"))
    fig.update_layout(
        title=dict(text=f"{model_id}: the clearest specialists, the top heads of each pattern"), barmode="group",
        xaxis=dict(title="score (0 to 1)", range=[0, 1.15]), yaxis=dict(autorange="reversed"),
        legend=dict(orientation="h", y=-0.08), font=FONT, width=820, height=160 + 54 * len(y), plot_bgcolor="white",
        margin=dict(l=170, r=30, t=50, b=90))
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    return fig
