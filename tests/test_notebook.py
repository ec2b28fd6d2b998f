"""attnscope as a notebook library: figures hold the model's own numbers, notebook display works
offline (no require.js, no CDN), and a real notebook runs it through a Jupyter kernel."""

import re
import xml.etree.ElementTree as ET

import nbformat
import numpy as np
import plotly.graph_objects as go
import plotly.offline
import pytest
from nbclient import NotebookClient

import attnscope
import attnscope.display
from app.style import visible
from app import analysis

TEXT = "a fluffy blue creature"
PLOTLYJS = plotly.offline.get_plotlyjs()


@pytest.fixture(scope="module")
def result(smol):
    return attnscope.run(TEXT, model=smol)


def expected_z(pattern: np.ndarray, causal: bool):
    return [[None if causal and k > q else float(pattern[q, k]) for k in range(pattern.shape[1])]
            for q in range(pattern.shape[0])]


def assert_same_z(z, want):
    assert len(z) == len(want)
    for row, wrow in zip(z, want):
        assert len(row) == len(wrow)
        for a, b in zip(row, wrow):
            assert (a is None) == (b is None)
            if b is not None:
                assert abs(a - b) < 1e-6


def test_heatmap_holds_the_heads_pattern_and_scores(smol, result):
    for layer, head in [(2, 3), (0, 0), (29, 8)]:
        fig = result.heatmap(layer, head)
        assert isinstance(fig, go.Figure)
        want = smol.run(TEXT)[f"blocks.{layer}.attn.hook_pattern"][head]  # an independent forward pass
        hm = fig.data[0]
        assert_same_z(hm.z, expected_z(want, causal=True))
        assert hm.z[0][1] is None and hm.z[-1][0] is not None  # the causal mask is empty, not 0
        scores = analysis.head_detail(result.cached, layer, head)["scores"]
        n = len(result.tokens)
        for q in range(n):
            for k in range(q + 1):
                assert abs(hm.customdata[q][k][2] - float(scores[q, k])) < 1e-5
        assert list(hm.customdata[3][1][:2]) == ["·creature", "·fluffy"]  # hover: query and key, as the app labels them
        assert list(hm.customdata[3][1][3:]) == [3, 1]  # and their positions
        assert list(fig.layout.yaxis.ticktext) == [visible(t.text) for t in result.tokens]
        assert "%{z" in hm.hovertemplate and "customdata[2]" in hm.hovertemplate


def test_heatmap_of_an_encoder_has_no_mask(minilm):
    r = attnscope.run(TEXT, model=minilm)
    z = r.heatmap(1, 2).data[0].z
    assert_same_z(z, expected_z(minilm.run(TEXT)["blocks.1.attn.hook_pattern"][2], causal=False))
    assert all(v is not None for row in z for v in row)


def test_token_labels_are_escaped_for_plotly(smol):
    r = attnscope.run("x <b>bold</b> & <br> y", model=smol)
    fig = r.heatmap(0, 0)
    ticks = list(fig.layout.xaxis.ticktext)
    assert any("&lt;" in t for t in ticks) and any("&amp;" in t for t in ticks)
    assert not any("<" in t or ">" in t for t in ticks)
    for f in (r.arrows(0, 0), r.embeddings()):
        assert "<b>" not in f.to_json() and "<br>bold" not in f.to_json()
    labels = {c[2] for row in r.grid().data[0].customdata for c in row if c is not None}
    assert any("&lt;" in x for x in labels) and not any("<" in x for x in labels)


def test_grid_blocks_are_every_heads_pattern(smol, result):
    """As the explorer's grid (static/js/views/grid.js): layers left to right, heads top to bottom."""
    fig = result.grid()
    z, n = fig.data[0].z, len(result.tokens)
    run = smol.run(TEXT)
    cfg = smol.cfg
    assert len(z) == cfg.n_heads * (n + 1) - 1 and len(z[0]) == cfg.n_layers * (n + 1) - 1
    for L in range(cfg.n_layers):
        for h in range(cfg.n_heads):
            block = [row[L * (n + 1):L * (n + 1) + n] for row in z[h * (n + 1):h * (n + 1) + n]]
            assert_same_z(block, expected_z(run[f"blocks.{L}.attn.hook_pattern"][h], causal=True))
            assert fig.data[0].customdata[h * (n + 1) + n - 1][L * (n + 1)][:2] == [L, h]  # hover names the head
    # the axes say so: layers along the top, heads down the side, each label at its thumbnails' centre
    assert fig.layout.xaxis.title.text == "layer" and list(fig.layout.xaxis.ticktext) == [str(L) for L in range(cfg.n_layers)]
    assert fig.layout.yaxis.title.text == "head" and list(fig.layout.yaxis.ticktext) == [str(h) for h in range(cfg.n_heads)]
    assert fig.layout.xaxis.tickvals[3] == 3 * (n + 1) + (n - 1) / 2 and fig.layout.yaxis.autorange == "reversed"
    # the causal mask is grey, as the screen's thumbnails: a second trace covering exactly the masked cells
    mask = fig.data[1].z
    assert fig.data[1].hoverinfo == "skip" and fig.data[1].showscale is False
    assert all((mask[r][c] is not None) == (r % (n + 1) < n and c % (n + 1) < n and c % (n + 1) > r % (n + 1))
               for r in range(len(z)) for c in range(len(z[0])))


def test_arrows_go_from_each_key_to_the_query(smol, result):
    fig = result.arrows(2, 3, token="creature")
    q = [t.text.strip() for t in result.tokens].index("creature")
    w = smol.run(TEXT)["blocks.2.attn.hook_pattern"][3][q]
    arcs = [t for t in fig.data if t.name != "tokens"]
    assert len(arcs) == q + 1  # causal: keys 0..q
    seen = {}
    for t in arcs:
        k, qq, weight = t.customdata[0]
        assert qq == q and abs(weight - w[int(k)]) < 1e-6
        seen[int(k)] = (t.line.width, t.opacity)
        if k != q:
            assert t.x[0] == pytest.approx(k) and t.x[-1] == pytest.approx(q) and max(t.y) > 0
    assert sorted(seen) == list(range(q + 1))
    order = np.argsort(w[:q + 1])
    widths = [seen[int(k)][0] for k in order]
    assert widths == sorted(widths)  # thicker for heavier weights
    assert result.arrows(2, 3).data[-1].marker.size[-1] > 8  # default query: the last token
    with pytest.raises(ValueError, match="out of range"):
        result.arrows(2, 3, token=99)
    with pytest.raises(ValueError, match="layer 30 is out of range"):
        result.heatmap(30, 0)


def moved_by_hand(model, layer: int, head: int) -> np.ndarray:
    """[query, key] pattern · ‖v[key, kv(head)] @ W_O[head]‖₂ from an independent forward pass and the
    model's weights, in float64: issue 12's formula, not app/contributions.py's code."""
    cfg, run = model.cfg, model.run(TEXT)
    v = run[f"blocks.{layer}.attn.hook_v"][:, head // (cfg.n_heads // cfg.n_kv_heads)].astype(np.float64)  # [pos, d_head]
    W_O = np.asarray(model.weights[f"blocks.{layer}.attn.W_O"], dtype=np.float64)[head * cfg.d_head:(head + 1) * cfg.d_head]
    return run[f"blocks.{layer}.attn.hook_pattern"][head].astype(np.float64) * np.linalg.norm(v @ W_O, axis=-1)


# the figures hold the API's 4 decimals (0.5e-4) of float32 norms of about 1-10 (float32 rounding: ~1e-6)
MOVED_TOL = 0.5e-4 + 1e-5


def test_moved_views_hold_what_each_head_moved(smol, result):
    """measure="moved": every head view shows pattern · ‖v W_O‖ instead of the weights, scaled by the
    head's largest (as the explorer draws it), and says so."""
    n = len(result.tokens)
    for layer, head in [(2, 3), (29, 8)]:
        want = moved_by_hand(smol, layer, head)
        assert np.allclose(result.moved(layer, head), want, rtol=1e-5, atol=1e-6)
        hm = result.heatmap(layer, head, measure="moved")
        z = hm.data[0].z
        assert all((v is None) == (k > q) for q, row in enumerate(z) for k, v in enumerate(row))
        assert all(abs(z[q][k] - want[q, k]) <= MOVED_TOL for q in range(n) for k in range(q + 1))
        assert hm.data[0].zmin == 0 and abs(hm.data[0].zmax - want.max()) <= MOVED_TOL
        assert "what it moved" in hm.layout.title.text and "W_O" in hm.data[0].colorbar.title.text
        assert hm.data[0].customdata[n - 1][0][5] == pytest.approx(float(result.pattern(layer, head)[n - 1, 0]))
    assert "what it moved" not in (result.heatmap(2, 3).layout.title.text or "")  # the default stays the weights
    grid = result.grid(measure="moved")
    z = grid.data[0].z
    for L, h in [(0, 0), (2, 3), (29, 8)]:  # block (L, h): heads are rows, layers columns (the explorer's layout)
        block = np.array([[np.nan if v is None else v for v in row[L * (n + 1):L * (n + 1) + n]]
                          for row in z[h * (n + 1):h * (n + 1) + n]])
        want = moved_by_hand(smol, L, h)
        assert np.nanmax(block) == 1.0  # each head scaled to its own largest, as the explorer's thumbnails
        assert np.allclose(np.tril(np.nan_to_num(block)), np.tril(want / want.max()), atol=2 * MOVED_TOL / want.max())
    arrows = result.arrows(2, 3, token="creature", measure="moved")
    want = moved_by_hand(smol, 2, 3)
    arcs = {int(t.customdata[0][0]): t for t in arrows.data if t.name != "tokens"}
    q = [t.text.strip() for t in result.tokens].index("creature")
    assert sorted(arcs) == list(range(q + 1)) and "takes from" in arrows.layout.title.text
    for k, t in arcs.items():
        assert abs(t.customdata[0][2] - want[q, k]) <= MOVED_TOL
        assert t.line.width == pytest.approx(0.5 + 9 * t.customdata[0][2] / result.heatmap(2, 3, measure="moved").data[0].zmax)
    top = int(np.argmax(want[q]))
    said = result.summary(2, 3, token="creature", measure="moved")
    assert said.startswith("layer 2, head 3: 'creature' takes most from ") and f"moved {want[q, top]:.4f}" in said
    with pytest.raises(ValueError, match="measure 'norms' is not one of weight, moved"):
        result.heatmap(2, 3, measure="norms")


def test_embeddings_are_the_residual_pca(result):
    """By default of unit vectors, as the /compare page draws them (tests/test_figures.py: the API's numbers)."""
    for fig, normalize in [(result.embeddings(), True), (result.embeddings(normalize=False), False)]:
        g = analysis.residual_geometry(result.cached, normalize)
        assert len(fig.data) == len(result.tokens)
        for i, tr in enumerate(fig.data):
            assert np.allclose(tr.x, g["pca_2d"][:, i, 0]) and np.allclose(tr.y, g["pca_2d"][:, i, 1])
            assert len(tr.x) == result.model.cfg.n_layers + 1


def test_mimebundle_is_offline_and_unique_per_render(result, tmp_path):
    attnscope.display._state["plotlyjs_sent"] = False
    first, second = result._repr_mimebundle_(), result._repr_mimebundle_()
    for b in (first, second):
        assert {"text/html", "text/plain", "image/svg+xml"} <= set(b)
    # plotly.js inline exactly once (the first render); the library's own text aside, no loader, no URL
    assert first["text/html"].count(PLOTLYJS) == 1 and PLOTLYJS not in second["text/html"]
    for h in (first["text/html"].replace(PLOTLYJS, ""), second["text/html"]):
        assert "require" not in h and "cdn.plot.ly" not in h and "http" not in h
    ids = [re.findall(r'id="(attnscope-[0-9a-f]+)"', b["text/html"]) for b in (first, second)]
    assert len(ids[0]) == 1 and len(ids[1]) == 1 and ids[0] != ids[1]
    assert f'"{ids[1][0]}"' in second["text/html"].split("Plotly.newPlot", 1)[1]  # the plot targets its own div
    # text/plain: the token list and one sentence with the real weight
    plain = first["text/plain"]
    assert str([t.text for t in result.tokens]) in plain
    m = re.search(r"layer 2, head 3: 'creature' attends most to (itself|'[^']*') \((\d\.\d\d)\)", plain)
    assert m, plain
    row = result.pattern(2, 3)[-1]
    assert float(m.group(2)) == pytest.approx(row.max(), abs=0.005)
    # the static SVG: one rect per (query, key), masked ones grey
    svg = ET.fromstring(first["image/svg+xml"])
    rects = svg.find("{http://www.w3.org/2000/svg}g").findall("{http://www.w3.org/2000/svg}rect")
    n = len(result.tokens)
    assert len(rects) == n * n
    assert sum(r.get("fill") == "#d9d9d9" for r in rects) == n * (n - 1) // 2
    # figures stay ordinary plotly figures
    path = tmp_path / "fig.html"
    result.heatmap(2, 3).write_html(path, include_plotlyjs=True)
    assert PLOTLYJS in path.read_text()


def test_a_notebook_runs_it(smol, cache_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("ATTNSCOPE_CACHE_DIR", cache_dir)  # the kernel inherits it: converted weights reused
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('import attnscope\nr = attnscope.run("a fluffy blue creature")\nr'),
                nbformat.v4.new_code_cell("r.heatmap(2, 3)"), nbformat.v4.new_code_cell('r.heatmap(2, 3, measure="moved")')]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in nb.cells:
        data = [o for o in cell.outputs if o.output_type == "execute_result"][0]["data"]
        assert "text/html" in data and "text/plain" in data, list(data)
    assert "what it moved" in nb.cells[2].outputs[0]["data"]["text/plain"]
    first = nb.cells[0].outputs[0]["data"]
    assert "creature" in first["text/plain"] and "image/svg+xml" in first
    assert "require" not in first["text/html"].replace(PLOTLYJS, "")


def test_a_figure_shown_twice_gets_two_ids(result):
    fig = result.heatmap(2, 3)
    a, b = fig._repr_mimebundle_(), fig._repr_mimebundle_()
    ids = [re.findall(r'id="(attnscope-[0-9a-f]+)"', x["text/html"]) for x in (a, b)]
    assert len(ids[0]) == len(ids[1]) == 1 and ids[0] != ids[1]
    for x in (a, b):
        assert "layer 2, head 3" in x["text/plain"]
        assert "require" not in x["text/html"].replace(PLOTLYJS, "") and "http" not in x["text/html"].replace(PLOTLYJS, "")
