"""Exports (/export/{view}.{fmt}): each view as html/json/csv to download, with the API's numbers,
offline HTML, clear 4xx errors, and user text that never becomes markup."""

import csv
import io
import json
import re
from urllib.parse import urlencode

import pytest

from app import viewdata
from app.style import viridis
from tests.client import post_ok as api

TEXT = "the cat sat on the mat because it was tired"
VIEWS = ["heatmap", "grid", "arrows", "embeddings"]
TYPES = {"html": "text/html", "json": "application/json", "csv": "text/csv"}
HOSTILE = "<script>alert(1)</script> & <img src=x onerror=alert(2)>"


def export(client, name, **params):
    return client.get(f"/export/{name}?{urlencode(params)}")


def close(a, b):
    """Equal to the API's 4 decimals (the API rounds float32 weights, the export keeps them)."""
    return a is None and b is None or (a is not None and b is not None and abs(a - b) <= 0.5e-4 + 1e-7)


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("fmt", list(TYPES))
def test_every_view_in_every_format_downloads(client, view, fmt):
    r = export(client, f"{view}.{fmt}", text=TEXT, layer=2, head=3, token=4)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == TYPES[fmt]
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=\"attnscope-") and disposition.endswith(f'.{fmt}"')
    assert view in disposition
    if view == "heatmap":
        assert disposition == f'attachment; filename="attnscope-heatmap-L2-H3.{fmt}"'
    if view == "arrows":
        assert disposition == f'attachment; filename="attnscope-arrows-L2-H3-T4.{fmt}"'
    if fmt == "json":
        assert r.json()["view"] == view and r.json()["text"] == TEXT


def test_heatmap_json_is_the_apis_pattern_and_scores(client):
    for model, layer, head in [("smollm2-135m-instruct", 2, 3), ("all-minilm-l6-v2", 4, 7)]:
        d = export(client, "heatmap.json", text=TEXT, model=model, layer=layer, head=head).json()
        att = api(client, "/api/attention", text=TEXT, model=model, layers=[layer])
        h = api(client, "/api/head", text=TEXT, model=model, layer=layer, head=head)
        assert d["model"] == model and d["layer"] == layer and d["head"] == head
        assert d["tokens"] == att["tokens"]
        P = att["attention"][str(layer)][head]
        causal = att["causal"]
        for i, row in enumerate(d["pattern"]):
            for j, w in enumerate(row):
                assert close(w, None if causal and j > i else P[i][j]), (model, i, j, w, P[i][j])
        assert d["scores"] == h["scores"]  # both are the scaled q.k, rounded to 5 decimals, null where masked


def test_arrows_json_is_one_query_row_and_the_grid_every_head(client):
    att = api(client, "/api/attention", text=TEXT)
    n = len(att["tokens"])
    d = export(client, "arrows.json", text=TEXT, layer=5, head=1, token=7).json()
    assert d["query"] == 7
    assert all(close(w, None if j > 7 else att["attention"]["5"][1][7][j]) for j, w in enumerate(d["weights"]))
    last = export(client, "arrows.json", text=TEXT, layer=5, head=1, token=-1).json()  # none focused: the last token
    assert last["query"] == n - 1 == export(client, "arrows.json", text=TEXT, layer=5, head=1).json()["query"]
    g = export(client, "grid.json", text=TEXT).json()
    assert (g["n_layers"], g["n_heads"]) == (att["n_layers"], att["n_heads"])
    for L in (0, 17, 29):
        for H in (0, 8):
            assert all(close(g["patterns"][L][H][i][j], None if j > i else att["attention"][str(L)][H][i][j])
                       for i in range(n) for j in range(n))


def test_embeddings_json_is_the_residual_apis_pca(client):
    """The /compare page's PCA: /api/residual with normalize true (unit vectors), as the chart in the HTML."""
    d = export(client, "embeddings.json", text=TEXT).json()
    res = api(client, "/api/residual", text=TEXT, normalize=True)
    assert d["layers"] == res["layers"] and d["normalize"] is True
    # both rounded (6 and 5 decimals) from the same float64 PCA: at most 0.5e-6 + 0.5e-5 apart
    assert all(abs(a - b) <= 0.6e-5 for A, B in zip(d["pca_2d"], res["pca_2d"]) for ta, tb in zip(A, B) for a, b in zip(ta, tb))
    assert all(abs(a - b) <= 0.6e-5 for a, b in zip(d["explained_variance_2d"], res["explained_variance_2d"]))
    header, rows = read_csv(export(client, "embeddings.csv", text=TEXT))
    layers = res["layers"]
    for boundary, i, _, pc1, pc2 in rows:
        want = res["pca_2d"][layers.index(boundary)][int(i)]
        assert abs(float(pc1) - want[0]) <= 0.6e-5 and abs(float(pc2) - want[1]) <= 0.6e-5
    # the HTML's chart draws those numbers and names its variance
    fig = figure_json(export(client, "embeddings.html", text=TEXT).text)
    assert all(abs(a - b[3][0]) <= 0.6e-5 for a, b in zip(fig["data"][3]["x"], res["pca_2d"]))
    assert f"PC1 ({100 * res['explained_variance_2d'][0]:.1f}% of variance)" == fig["layout"]["xaxis"]["title"]["text"]


def read_csv(r):
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8"), newline="")))
    return rows[0], rows[1:]


def test_csv_has_the_documented_header_and_row_count(client):
    att = api(client, "/api/attention", text=TEXT)
    n, L, H = len(att["tokens"]), att["n_layers"], att["n_heads"]
    causal_pairs = n * (n + 1) // 2  # the causal mask hides every key after its query
    for view, expected in [("heatmap", causal_pairs), ("grid", L * H * causal_pairs), ("arrows", 5)]:
        header, rows = read_csv(export(client, f"{view}.csv", text=TEXT, layer=2, head=3, token=4))
        assert header == viewdata.ATTENTION_COLUMNS
        assert header == ["layer", "head", "query_index", "query_token", "key_index", "key_token", "weight", "score"]
        assert len(rows) == expected, view
    # the documentation says so, where users read it
    assert "layer,head,query_index,query_token,key_index,key_token,weight,score" in viewdata.__doc__
    header, rows = read_csv(export(client, "heatmap.csv", text=TEXT, layer=2, head=3))
    P = att["attention"]["2"][3]
    for row in rows:
        q, k = int(row[2]), int(row[4])
        assert (int(row[0]), int(row[1])) == (2, 3) and row[3] == att["tokens"][q]["text"] and row[5] == att["tokens"][k]["text"]
        assert close(float(row[6]), P[q][k])
    header, rows = read_csv(export(client, "embeddings.csv", text=TEXT))
    assert header == viewdata.EMBEDDING_COLUMNS == ["boundary", "token_index", "token", "pc1", "pc2"]
    assert len(rows) == (L + 1) * n
    # an encoder masks nothing: every pair
    header, rows = read_csv(export(client, "heatmap.csv", text=TEXT, model="all-minilm-l6-v2"))
    m = len(api(client, "/api/attention", text=TEXT, model="all-minilm-l6-v2", layers=[0])["tokens"])
    assert len(rows) == m * m


def scripts(html: str) -> list[str]:
    return re.findall(r"<script\b[^>]*>", html, re.I)


@pytest.mark.parametrize("view", VIEWS)
def test_html_is_self_contained(client, view):
    r = export(client, f"{view}.html", text=TEXT)
    html = r.text
    assert html.lstrip().lower().startswith("<html") or html.lstrip().lower().startswith("<!doctype")
    assert all("src=" not in tag for tag in scripts(html)), scripts(html)  # plotly.js inline, no CDN
    assert "cdn.plot.ly" not in "".join(scripts(html))
    assert len(html) > 3_000_000 and "Plotly.newPlot" in html  # plotly.js itself (~4.8 MB) is in the file
    assert "<title>attnscope · " in html
    assert not re.search(r"<link\b[^>]*href=[\"']?https?:", html, re.I)
    assert '"showSendToCloud": false' in html  # no "Share chart..." button uploading the data to Plotly Cloud
    # opened from this server's URL, its inline scripts must not run on our origin
    policies = r.headers.get_list("content-security-policy")
    assert any(p.split(";")[0].strip() == "sandbox" for p in policies), policies


@pytest.mark.parametrize("view", VIEWS)
def test_hostile_text_never_becomes_markup(client, view):
    r = export(client, f"{view}.html", text=HOSTILE, token=-1)
    assert r.status_code == 200, r.text
    html = r.text
    assert "<script>alert" not in html and "<img src=x" not in html.lower()
    assert "alert" in html  # the text is there, but only as escaped data
    # the only script elements are plotly.js and the figure's own
    assert len(scripts(html)) <= 3, scripts(html)
    # JSON and CSV carry the text as data, exactly
    d = export(client, f"{view}.json", text=HOSTILE, token=-1).json()
    assert d["text"] == HOSTILE and "".join(t["text"] for t in d["tokens"]) == HOSTILE


@pytest.mark.parametrize("query,status,error", [
    ("heatmap.json?layer=30", 422, "out_of_range"),
    ("heatmap.json?layer=-1", 422, "out_of_range"),
    ("heatmap.csv?head=9", 422, "out_of_range"),
    ("grid.html?head=abc", 422, "invalid_request"),
    ("arrows.json?token=99", 422, "out_of_range"),
    ("arrows.json?token=-2", 422, "out_of_range"),
    ("arrows.json?token=one", 422, "invalid_request"),
    ("heatmap.json?model=gpt-9", 404, "unknown_model"),
    ("heatmap.html?text=", 422, "empty_text"),
    ("heatmap.json?text=%20%20", 422, "empty_text"),
    ("heatmap.pdf", 404, "unknown_export"),
    ("lines.json", 404, "unknown_export"),
    ("heatmap", 404, "unknown_export"),
    ("grid.json?text=" + "word%20" * 200, 422, "export_too_large"),
    ("heatmap.json?text=" + "word%20" * 600, 422, "too_many_tokens"),
    ("embeddings.json?measure=moved", 422, "not_applicable"),
    ("embeddings.csv?measure=moved", 422, "not_applicable"),
    ("embeddings.html?measure=moved", 422, "not_applicable"),
    ("heatmap.csv?measure=norms", 422, "invalid_request"),
    ("grid.json?measure=moved&text=" + "word%20" * 200, 422, "export_too_large"),
])
def test_bad_parameters_are_4xx_json(client, query, status, error):
    r = client.get("/export/" + query)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == error and body["detail"]
    assert "content-disposition" not in r.headers


def test_gzip_when_asked_and_the_html_still_decodes(client):
    r = client.get("/export/heatmap.html", params={"text": TEXT}, headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip" and "Plotly.newPlot" in r.text
    r = client.get("/export/heatmap.json", params={"text": TEXT}, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in r.headers and json.loads(r.content)["view"] == "heatmap"


# --- what moved (measure=moved) ---------------------------------------------------------------------

def moved_api(client, model, layer):
    return api(client, "/api/attention", text=TEXT, model=model, layers=[layer], measure="moved")


def figure_json(html: str) -> dict:
    """The figure inside an exported page: Plotly.newPlot(id, data, layout, config)."""
    start = html.index("Plotly.newPlot(")
    rest = html[start + len("Plotly.newPlot("):].lstrip()
    rest = rest[rest.index(",") + 1:].lstrip()  # past the div id
    data, end = json.JSONDecoder().raw_decode(rest)
    rest = rest[end:].lstrip()[1:].lstrip()
    layout, _ = json.JSONDecoder().raw_decode(rest)
    return {"data": data, "layout": layout}


@pytest.mark.parametrize("model,layer,head", [("smollm2-135m-instruct", 2, 3), ("all-minilm-l6-v2", 4, 7)])
def test_moved_json_and_csv_are_the_apis_moved_numbers(client, model, layer, head):
    """measure=moved: the very numbers /api/attention sends with "measure": "moved" for the state
    (equal, not close: both are the float32 norms at 4 decimals), beside the weights and v_out_norm."""
    att = moved_api(client, model, layer)
    M, causal, n = att["attention"][str(layer)][head], att["causal"], len(att["tokens"])
    weights = api(client, "/api/attention", text=TEXT, model=model, layers=[layer])["attention"][str(layer)][head]
    norms = api(client, "/api/head", text=TEXT, model=model, layer=layer, head=head, detail=True)["v_out_norm"]
    mask = lambda i, j: causal and j > i  # noqa: E731
    d = export(client, "heatmap.json", text=TEXT, model=model, layer=layer, head=head, measure="moved").json()
    assert d["measure"] == "moved" and d["tokens"] == att["tokens"]
    assert d["moved"] == [[None if mask(i, j) else M[i][j] for j in range(n)] for i in range(n)]
    assert d["peak"] == max(max(row) for row in M)  # the head's largest, what the explorer scales it by
    assert d["v_out_norm"] == norms
    assert all(close(w, None if mask(i, j) else weights[i][j]) for i, row in enumerate(d["pattern"]) for j, w in enumerate(row))
    header, rows = read_csv(export(client, "heatmap.csv", text=TEXT, model=model, layer=layer, head=head, measure="moved"))
    assert header == viewdata.MOVED_COLUMNS == ["layer", "head", "query_index", "query_token", "key_index", "key_token",
                                                "moved", "weight", "v_out_norm"]
    assert len(rows) == (n * (n + 1) // 2 if causal else n * n)
    for row in rows:
        q, k, moved, w, norm = int(row[2]), int(row[4]), float(row[6]), float(row[7]), float(row[8])
        assert (int(row[0]), int(row[1])) == (layer, head) and not mask(q, k)
        assert moved == M[q][k] and close(w, weights[q][k]) and norm == norms[k]
        assert abs(moved - w * norm) <= 0.5e-4 + 0.5e-5 * w + 1e-6  # moved = weight x ‖v W_O‖, up to the roundings
    # arrows: one query row of the same numbers, scaled by the head's largest over every query
    q = n - 2
    a = export(client, "arrows.json", text=TEXT, model=model, layer=layer, head=head, token=q, measure="moved").json()
    assert a["query"] == q and a["moved"] == d["moved"][q] and a["peak"] == d["peak"] and a["v_out_norm"] == norms
    header, rows = read_csv(export(client, "arrows.csv", text=TEXT, model=model, layer=layer, head=head, token=q, measure="moved"))
    assert [float(r[6]) for r in rows] == [M[q][k] for k in range(q + 1 if causal else n)]


def test_moved_grid_is_every_heads_moved_numbers(client):
    full = api(client, "/api/attention", text=TEXT, measure="moved")["attention"]
    g = export(client, "grid.json", text=TEXT, measure="moved").json()
    n = len(g["tokens"])
    assert "patterns" not in g and len(g["moved"]) == g["n_layers"] == len(full)
    for L, heads in enumerate(g["moved"]):
        for h, rows in enumerate(heads):
            M = full[str(L)][h]
            assert rows == [[None if j > i else M[i][j] for j in range(n)] for i in range(n)], (L, h)
            assert g["peaks"][L][h] == max(max(r) for r in M)
    header, rows = read_csv(export(client, "grid.csv", text=TEXT, measure="moved"))
    assert header == viewdata.MOVED_COLUMNS and len(rows) == g["n_layers"] * g["n_heads"] * n * (n + 1) // 2
    assert all(float(r[6]) == full[r[0]][int(r[1])][int(r[2])][int(r[4])] for r in rows)


@pytest.mark.parametrize("fmt", list(TYPES))
def test_moved_files_say_so_in_their_name(client, fmt):
    for view, name in [("heatmap", "attnscope-heatmap-moved-L2-H3"), ("arrows", "attnscope-arrows-moved-L2-H3-T4"),
                       ("grid", "attnscope-grid-moved")]:
        r = export(client, f"{view}.{fmt}", text=TEXT, layer=2, head=3, token=4, measure="moved")
        assert r.status_code == 200, r.text
        assert r.headers["content-disposition"] == f'attachment; filename="{name}.{fmt}"'
    # the default measure is the weights, named as before
    r = export(client, f"heatmap.{fmt}", text=TEXT, layer=2, head=3, measure="weight")
    assert r.headers["content-disposition"] == f'attachment; filename="attnscope-heatmap-L2-H3.{fmt}"'


def test_moved_html_says_what_it_shows_and_is_scaled_as_on_screen(client):
    """The page's title, the chart's title and its colour bar say "what it moved" and the formula; the
    colours run from 0 to the head's largest (as the explorer's heatmap), not to 1."""
    M = moved_api(client, "smollm2-135m-instruct", 2)["attention"]["2"][3]
    html = export(client, "heatmap.html", text=TEXT, layer=2, head=3, measure="moved").text
    assert re.search(r"<title>attnscope · heatmap of one head · what it moved: ‖weight · v W_O‖₂ · smollm2", html)
    fig = figure_json(html)
    hm, title = fig["data"][0], fig["layout"]["title"]["text"]
    assert "what it moved" in title and "‖weight · v W_O‖₂" in title and "residual stream" in title
    assert "moved" in hm["colorbar"]["title"]["text"] and "W_O" in hm["colorbar"]["title"]["text"]
    assert hm["zmin"] == 0 and hm["zmax"] == max(max(r) for r in M) != 1  # norms, not weights: here 7.84
    assert hm["z"] == [[None if j > i else M[i][j] for j in range(len(M))] for i in range(len(M))]
    assert "moved %{z:.4f}" in hm["hovertemplate"] and "weight %{customdata[5]" in hm["hovertemplate"]
    weights = figure_json(export(client, "heatmap.html", text=TEXT, layer=2, head=3).text)
    assert weights["data"][0]["zmax"] == 1 and "moved" not in weights["layout"]["title"]["text"]
    # the grid: each head's block divided by its own largest (the explorer's thumbnails), the raw value on hover
    full = api(client, "/api/attention", text=TEXT, measure="moved")["attention"]
    g = figure_json(export(client, "grid.html", text=TEXT, measure="moved").text)
    z, custom, n = g["data"][0]["z"], g["data"][0]["customdata"], len(M)
    assert "what it moved" in g["layout"]["title"]["text"]
    # brightness √, as grid.js draws the thumbnails: the colour at a quarter of the head's largest is viridis(½)
    assert [0.25, viridis(0.5)] in g["data"][0]["colorscale"] and [1.0, viridis(1.0)] in g["data"][0]["colorscale"]
    for L, h in [(0, 0), (2, 3), (29, 8)]:  # layers left to right, heads top to bottom, as the explorer's grid
        block = [row[L * (n + 1):L * (n + 1) + n] for row in z[h * (n + 1):h * (n + 1) + n]]
        top = max(max(r) for r in full[str(L)][h])
        assert max(v for r in block for v in r if v is not None) == 1.0
        assert all(abs(block[i][j] - full[str(L)][h][i][j] / top) < 1e-12 for i in range(n) for j in range(i + 1))
        assert custom[h * (n + 1) + n - 1][L * (n + 1)][4] == full[str(L)][h][n - 1][0]
    # the arrows: strokes follow moved / the head's largest, as the explorer's arrows do
    a = figure_json(export(client, "arrows.html", text=TEXT, layer=2, head=3, token=4, measure="moved").text)
    arcs = [t for t in a["data"] if t["name"] != "tokens"]
    top = max(max(r) for r in M)
    assert "takes from" in a["layout"]["title"]["text"] and "what it moved" in a["layout"]["title"]["text"]
    for t in arcs:
        k, q, moved, w = t["customdata"][0]
        assert q == 4 and moved == M[4][k] and t["line"]["width"] == pytest.approx(0.5 + 9 * moved / top)


FORMULAS = "=HYPERLINK(\"http://x\")+1-2@SUM(A1)\tx"


@pytest.mark.parametrize("view", ["heatmap", "embeddings"])
def test_csv_cells_that_start_like_a_formula_are_escaped_and_json_stays_raw(client, view):
    """OWASP "CSV injection": a text cell starting with =, +, -, @, tab or CR gets a leading quote;
    numbers (negative scores, PCA coordinates) stay numbers; the JSON carries the tokens as they are."""
    tokens = [t["text"] for t in export(client, f"{view}.json", text=FORMULAS).json()["tokens"]]
    risky = [t for t in tokens if t[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert {t[0] for t in risky} == {"=", "+", "-", "@", "\t"}, tokens  # tokens that start like a formula
    header, rows = read_csv(export(client, f"{view}.csv", text=FORMULAS))
    col = header.index("token" if view == "embeddings" else "query_token")
    written = {r[col] for r in rows}
    for t in tokens:
        assert ("'" + t if t in risky else t) in written, t
    numbers = [float(r[-1]) for r in rows]  # score (heatmap) or pc2 (embeddings): plain numbers, never quoted
    assert not any(r[-1].startswith("'") for r in rows) and (view == "heatmap" or any(x < 0 for x in numbers))


def test_csv_cell():
    from app.exports import csv_cell

    assert [csv_cell(v) for v in ["=1+1", "+1", "-1", "@A1", "\tx", "\rx", "a=b", " =x", -0.5, 3]] == \
        ["'=1+1", "'+1", "'-1", "'@A1", "'\tx", "'\rx", "a=b", " =x", -0.5, 3]


@pytest.mark.parametrize("view", ["heatmap", "grid", "arrows", "embeddings"])
def test_html_is_responsive_and_the_images_keep_their_size(client, smol, view):
    """The HTML's chart autosizes into a box as wide as the window up to the figure's width; the figure
    itself (what PNG and SVG draw) keeps its fixed width and height."""
    from app import analysis, exports
    from app.runview import RunView

    result = RunView(analysis.full_run(smol, TEXT), TEXT)
    fig = exports.figure(result, view, 2, 3)
    w, h = fig.layout.width, fig.layout.height
    html = exports.responsive_html(fig)
    assert (fig.layout.width, fig.layout.height) == (w, h) and w and h  # untouched
    layout = figure_json(html)["layout"]
    assert layout["autosize"] is True and "width" not in layout and "height" not in layout
    assert f"max-width: {w}px" in html and f"calc(100vw * {h} / {w}), {h}px)" in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    served = export(client, f"{view}.html", text=TEXT).text
    assert f"max-width: {w}px" in served and figure_json(served)["layout"].get("width") is None
