"""The notebook's and CLI's charts (app/figures.py, app/svg.py) read as the web page's do: the embeddings
with the /compare page's normalisation and its numbers, the heatmap's masked half grey with no line
across it (checked on pixels Chromium drew), the static SVG without seams at a fractional zoom."""

import base64
import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

import attnscope
from app import figures
from app.lesson import LESSON_SENTENCE
from app.style import MASKED
from tests.client import post_ok as api

# A residual vector's PCA coordinate as /api/residual writes it: 5 decimals, so at most 0.5e-5 from
# the float64 value; both sides come from the same deterministic numpy forward pass, so float32
# run-to-run noise (~1e-7 on unit vectors) stays far inside.
PCA_TOL = 0.5e-5 + 1e-6


@pytest.fixture(scope="module")
def result(smol):
    return attnscope.run(LESSON_SENTENCE, model=smol)


def spread(x: np.ndarray) -> tuple[float, float]:
    """x: [boundary, token] PC1 coordinates -> (token 0's share of PC1's sum of squares, the range of the
    other tokens over the whole range)."""
    d = x - x.mean()
    return float((d[:, 0] ** 2).sum() / (d ** 2).sum()), float(np.ptp(x[:, 1:]) / np.ptp(x))


def test_embeddings_are_the_compare_pages_pca(client, result):
    """The page (static/js/compare.js) asks /api/residual for normalize true: the default here too."""
    fig = result.embeddings()
    res = api(client, "/api/residual", text=LESSON_SENTENCE, normalize=True)
    pca, var = np.array(res["pca_2d"]), res["explained_variance_2d"]  # [boundary][token][2]
    assert [t["text"] for t in res["tokens"]] == result.token_texts and len(fig.data) == len(result.tokens)
    for i, tr in enumerate(fig.data):
        assert np.abs(np.array(tr.x) - pca[:, i, 0]).max() <= PCA_TOL
        assert np.abs(np.array(tr.y) - pca[:, i, 1]).max() <= PCA_TOL
        assert len(tr.marker.size) == len(res["layers"]) and tr.marker.size[0] < tr.marker.size[-1]  # grows with depth
    assert fig.layout.xaxis.title.text == f"PC1 ({100 * var[0]:.1f}% of variance)"
    assert fig.layout.yaxis.title.text == f"PC2 ({100 * var[1]:.1f}%)"
    assert "unit vectors" in fig.layout.title.text
    # the raw vectors are still there when asked for, and are /api/residual's default
    raw = result.embeddings(normalize=False)
    res_raw = api(client, "/api/residual", text=LESSON_SENTENCE)
    assert res_raw["normalize"] is False and "raw vectors" in raw.layout.title.text
    # raw coordinates reach 2.5e4, where one float32 step is 2e-3: the tolerance allows a few
    assert np.abs(np.array(raw.data[3].x) - np.array(res_raw["pca_2d"])[:, 3, 0]).max() <= 1e-2


def test_embeddings_are_no_longer_one_token_and_a_blob(result):
    """The raw PCA is the first token's (the attention sink's residual stream is tens of times longer than
    any other's): measured on the lesson sentence, token 0 holds 94% of PC1's spread and every other token
    fits in 1.5% of its range (the issue's "PC1 is 99.4%" is the Eiffel sentence's explained variance). On
    unit vectors token 0 holds 2% and the other tokens span the whole range."""
    raw = np.array([tr.x for tr in result.embeddings(normalize=False).data]).T  # [boundary, token]
    first, others = spread(raw)
    assert first > 0.9 and others < 0.05  # what the chart showed before: the claim the fix rests on
    x = np.array([tr.x for tr in result.embeddings().data]).T
    first, others = spread(x)
    assert first < 0.2 and others > 0.8, (first, others)


# --- pixels ----------------------------------------------------------------------------------------

def masked_cells(png: bytes, box: tuple[float, float, float, float], n: int, erode: int = 3) -> np.ndarray:
    """The RGB pixels [m, 3] inside the causal mask (key > query) of an n x n matrix drawn in box
    (x, y, width, height in the image's pixels), at least `erode` px from any cell that is not masked
    and from the matrix's edge (anti-aliasing there is honest). The seams between masked cells are in."""
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    x, y, w, h = box
    py, px = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    k, q = np.floor((px + 0.5 - x) / (w / n)), np.floor((py + 0.5 - y) / (h / n))
    inside = (k >= 0) & (k < n) & (q >= 0) & (q < n) & (k > q)
    keep = inside.copy()
    for d in range(1, erode + 1):
        keep[d:] &= inside[:-d]
        keep[:-d] &= inside[d:]
        keep[:, d:] &= inside[:, :-d]
        keep[:, :-d] &= inside[:, d:]
    return img[keep]


def rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])


def plotly_png(browser, fig) -> tuple[bytes, tuple[float, float, float, float]]:
    """The figure as images.render makes it (Plotly.toImage in Chromium, scale 1 here), and its plot area (the
    drag rectangle plotly lays over exactly that area, an element of the page, not a private field)."""
    page = browser.new_page(viewport={"width": int(fig.layout.width) + 40, "height": int(fig.layout.height) + 40})
    try:
        page.set_content(fig.to_html(full_html=True, include_plotlyjs=True, div_id="fig"), wait_until="load")
        page.wait_for_selector("#fig .draglayer .nsewdrag", state="attached")
        box = page.eval_on_selector("#fig .draglayer .nsewdrag",
                                    "r => ['x', 'y', 'width', 'height'].map(a => +r.getAttribute(a))")
        url = page.evaluate("([w, h]) => Plotly.toImage(document.getElementById('fig'), {format: 'png', width: w, height: h})",
                            [int(fig.layout.width), int(fig.layout.height)])
    finally:
        page.close()
    return base64.b64decode(url.split(",", 1)[1]), tuple(box)


@pytest.mark.parametrize("measure", ["weight", "moved"])
def test_heatmap_image_has_no_line_across_the_masked_cells(browser, result, measure):
    """plotly drew its zero line on the background the empty (masked) cells show: a white line along
    query 0 across the whole masked row. Every masked pixel is now the masked grey, as on screen."""
    fig = result.heatmap(2, 3, measure=measure)
    png, box = plotly_png(browser, fig)
    n = len(result.tokens)
    pixels = masked_cells(png, box, n)
    assert len(pixels) > 0.3 * box[2] * box[3]  # most of the upper triangle is checked
    off = np.abs(pixels - rgb(MASKED)).max(-1) > 2
    assert off.sum() == 0, f"{off.sum()} of {len(pixels)} masked pixels are not {MASKED}: {np.unique(pixels[off], axis=0)[:5]}"


def test_grid_image_greys_the_masked_half_of_each_thumbnail(browser, result):
    """As the explorer's thumbnails: the masked half grey (40/255 of 128 grey over white), the gaps white."""
    fig = result.grid()
    png, (x, y, w, h) = plotly_png(browser, fig)
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    n, step = len(result.tokens), len(result.tokens) + 1
    cell = w / len(fig.data[0].z[0])
    assert cell == pytest.approx(h / len(fig.data[0].z), rel=0.01)  # square cells
    at = lambda r, c: img[int(y + (r + 0.5) * cell), int(x + (c + 0.5) * cell)]  # noqa: E731
    grey = np.round(255 - (255 - 128) * 0.157)
    for L, hd in [(0, 0), (17, 4), (29, 8)]:
        assert np.abs(at(hd * step, L * step + n - 1) - grey).max() <= 2  # query 0, key n-1: masked
        assert np.abs(at(hd * step + n, L * step) - 255).max() <= 1  # the row between thumbnails: white
        assert np.abs(at(hd * step + n - 1, L * step) - grey).max() > 20  # a weight: coloured, not grey


def test_static_svg_has_no_seams_at_a_fractional_zoom(browser, result):
    """Result.svg() (the notebook's image/svg+xml): one rect per cell. At a zoom such as 137%, a viewer blends
    the anti-aliased edges where two grey cells meet with the white beneath: faint lines across the mask."""
    svg = result.svg(2, 3)
    n = len(result.tokens)
    ns = "{http://www.w3.org/2000/svg}"
    rects = [r for r in ET.fromstring(svg).iter(ns + "rect") if r.find(ns + "title") is not None]  # the cells
    x0, y0 = min(float(r.get("x")) for r in rects), min(float(r.get("y")) for r in rects)
    cell = float(rects[0].get("width"))
    assert len(rects) == n * n
    for zoom in (1.37, 2.3):
        ctx = browser.new_context(device_scale_factor=zoom, viewport={"width": 700, "height": 700})
        try:
            page = ctx.new_page()
            page.set_content(f"<body style='margin:0;background:white'>{svg}</body>")
            png = page.locator("svg").screenshot()
        finally:
            ctx.close()
        pixels = masked_cells(png, (x0 * zoom, y0 * zoom, n * cell * zoom, n * cell * zoom), n)
        assert len(pixels) > 0.3 * (n * cell * zoom) ** 2
        off = np.abs(pixels - rgb(MASKED)).max(-1) > 2
        assert off.sum() == 0, f"zoom {zoom}: {off.sum()} of {len(pixels)} masked pixels are not {MASKED}"
