"""One view of one RunView as a file: (bytes, media type), and the file's name. Shared by the web
app's /export/{view}.{fmt} and the CLI, so a download and `attnscope export` are the same file.

    html  the plotly figure with plotly.js inline: opens from file:// with no network, hover works
    json  the data behind the view (app/viewdata.py's docstring is the schema)
    csv   the same data, one row per value (same docstring); text cells that start like a spreadsheet
          formula are escaped with a leading ' (csv_cell), numbers are written as numbers

measure: "weight" (the attention weights) or "moved" (what each head carried, ‖weight · v W_O‖₂) for
the head views; the file's name, title and colour bar say which (attnscope-heatmap-moved-L2-H3.csv).
"""

import csv
import io
import json

import plotly.graph_objects as go

from . import figures, viewdata
from .style import label

VIEWS = viewdata.VIEWS
HEAD_VIEWS, NotApplicable, check_view = viewdata.HEAD_VIEWS, viewdata.NotApplicable, viewdata.check_view
MEDIA_TYPES = {"html": "text/html; charset=utf-8", "json": "application/json", "csv": "text/csv; charset=utf-8"}
FORMATS = tuple(MEDIA_TYPES)
# every layer x head x query x key of a long text is too much for one file (512 tokens of SmolLM2 would be
# 70 million weights): the grid's exports stop here and say what to use instead
MAX_GRID_VALUES = 2_000_000
# the file stays offline: no plotly logo link, and no "Share chart..." button (it uploads to Plotly Cloud)
HTML_CONFIG = {"displaylogo": False, "responsive": True, "showSendToCloud": False, "plotlyServerURL": ""}
TITLES = {"heatmap": "heatmap of one head", "grid": "every layer x head", "arrows": "arrows to one query token",
          "embeddings": "residual stream, 2-D PCA"}
MEASURE_TITLES = {"weight": "where it looks (attention weights)", "moved": figures.MOVED}


class ExportTooLarge(ValueError):
    pass


def check_size(result, view: str, measure: str = "weight") -> None:
    cfg, n = result.model.cfg, len(result.tokens)
    values = cfg.n_layers * cfg.n_heads * n * n
    if view == "grid" and values > MAX_GRID_VALUES:
        most = int((MAX_GRID_VALUES / (cfg.n_layers * cfg.n_heads)) ** 0.5)
        what = "weights" if measure == "weight" else "values"
        raise ExportTooLarge(f"the grid of {result.model.id} at {n} tokens holds {values:,} {what}; grid exports stop at "
                             f"{MAX_GRID_VALUES:,} (up to {most} tokens): export one head (heatmap) instead")


def figure(result, view: str, layer: int, head: int, token=None, measure: str = "weight"):
    viewdata.check_view(view, measure)
    if view == "heatmap":
        return result.heatmap(layer, head, measure=measure)
    if view == "grid":
        return result.grid(measure=measure)
    if view == "arrows":
        return result.arrows(layer, head, token, measure=measure)
    return result.embeddings()


def filename(result, view: str, fmt: str, layer: int, head: int, token=None, measure: str = "weight") -> str:
    """attnscope-heatmap-L2-H3.html, attnscope-arrows-L2-H3-T8.json, attnscope-grid.csv; what moved says
    so after the view: attnscope-heatmap-moved-L2-H3.csv, attnscope-grid-moved.json..."""
    parts = ["attnscope", view] + (["moved"] if measure == "moved" else [])
    if view in ("heatmap", "arrows"):
        parts += [f"L{layer}", f"H{head}"]
    if view == "arrows":
        parts.append(f"T{figures.resolve_token(result, token)}")
    return "-".join(parts) + f".{fmt}"


# The page around an HTML export's chart: the chart as wide as the window up to the figure's own width,
# and as tall as the figure, or less in proportion on a narrow screen (at least 320 px), so a phone
# never scrolls sideways; plotly's autosize and responsive config follow the box. The PNG and SVG keep
# the figure's fixed size (exports.figure, unchanged).
HTML_HEAD = ('<meta name="viewport" content="width=device-width, initial-scale=1"><style>body {{ margin: 0; }} '
             'body > div {{ height: auto !important; }} '  # plotly's wrapper: as tall as the chart
             '.plotly-graph-div {{ width: 100% !important; max-width: {w}px; margin: 0 auto; '
             'height: clamp({low}px, calc(100vw * {h} / {w}), {h}px) !important; }} '
             # narrower than the figure: a smaller title, and no mode bar over it (a touch screen shows it on a tap)
             '@media (max-width: {w}px) {{ .gtitle {{ font-size: 10px !important; }} }} '
             '@media (hover: none), (max-width: 600px) {{ .modebar-container {{ display: none; }} }}</style>')


def responsive_html(fig, div_id: str = "attnscope-chart") -> str:
    """fig (a plotly figure of fixed width and height, left unchanged) as a full page whose chart fits the window.
    A fixed div id (plotly's default is a random uuid): the same URL gives the same bytes, as its ETag says."""
    w, h = int(fig.layout.width or 700), int(fig.layout.height or 450)
    page = go.Figure(fig).update_layout(width=None, height=None, autosize=True).to_html(
        full_html=True, include_plotlyjs=True, config=HTML_CONFIG, default_width="100%", default_height=f"{h}px",
        div_id=div_id)
    return page.replace("</head>", HTML_HEAD.format(w=w, h=h, low=min(h, 320)) + "</head>", 1)


def _html(result, view: str, layer: int, head: int, token, measure: str) -> bytes:
    page = responsive_html(figure(result, view, layer, head, token, measure), div_id=f"attnscope-{view}")
    # plotly's page has no title; label() escapes the text (the model id is ours, the text is not)
    what = f" · {MEASURE_TITLES[measure]}" if view in viewdata.HEAD_VIEWS else ""
    title = f"attnscope · {TITLES[view]}{what} · {label(result.model.id)}"
    return page.replace("<head>", f"<head><title>{title}</title>", 1).encode("utf-8")


# A text cell that starts with one of these is a formula to a spreadsheet (OWASP "CSV injection"):
# a token "=HYPERLINK(...)" or "@SUM(...)" would run when the file is opened.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """OWASP's escape: a single quote before a text cell that starts like a formula, so the spreadsheet
    shows it as text. Numbers are ours (weights, scores, PCA coordinates) and stay numbers: a negative
    score such as -0.5 is written -0.5, which spreadsheets read as a number, not as a formula. A token
    whose text is "-0.5" is text, and is escaped like any other."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def _csv(result, view: str, layer: int, head: int, token, measure: str) -> bytes:
    header, rows = viewdata.csv_rows(result, view, layer, head, token, measure)
    out = io.StringIO(newline="")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(header)
    w.writerows([csv_cell(v) for v in row] for row in rows)
    return out.getvalue().encode("utf-8")


def export(result, view: str, fmt: str, layer: int, head: int, token=None, measure: str = "weight") -> tuple[bytes, str]:
    """The file's bytes and media type. token: arrows' query position (an index, negative from the
    end, or None for the last token); the other views ignore it. measure: "weight" or "moved" (head
    views only: NotApplicable for the embeddings)."""
    viewdata.check_view(view, measure)
    check_size(result, view, measure)
    if fmt == "html":
        body = _html(result, view, layer, head, token, measure)
    elif fmt == "json":
        body = json.dumps(viewdata.json_data(result, view, layer, head, token, measure), ensure_ascii=False,
                          separators=(",", ":"), allow_nan=False).encode("utf-8")
    elif fmt == "csv":
        body = _csv(result, view, layer, head, token, measure)
    else:
        raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    return body, MEDIA_TYPES[fmt]
