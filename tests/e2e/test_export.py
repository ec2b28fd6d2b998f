"""Exports from the explorer in headless Chromium: PNG and SVG of every view, the data links that
follow the live state, and the self-contained HTML opened from file:// with the network off."""

import base64
import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from PIL import Image

from tests.e2e.test_explorer import page_artifact, wait_rendered
from tests.test_export import figure_json

SVG = "{http://www.w3.org/2000/svg}"
TEXT = 'a fluffy <b>blue</b> & "odd" creature'
VIEWS = ["arrows", "lines", "grid", "heatmap"]


def download(page, selector, tmp_path):
    with page.expect_download() as info:
        page.click(selector)
    d = info.value
    assert d.failure() is None, d.failure()
    path = tmp_path / d.suggested_filename
    d.save_as(path)
    return d.suggested_filename, path.read_bytes()


def check_png(blob: bytes, min_size=(200, 60)) -> Image.Image:
    img = Image.open(io.BytesIO(blob))
    img.load()
    assert img.format == "PNG"
    assert img.width >= min_size[0] and img.height >= min_size[1], img.size
    assert img.width <= 8000 and img.height <= 8000, img.size
    colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) >= 8, "the PNG is blank or nearly"
    return img


def parse_svg(blob: bytes) -> ET.Element:
    root = ET.fromstring(blob)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    assert float(root.get("width")) > 100 and float(root.get("height")) > 50
    return root


def texts(root) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


@pytest.fixture
def explorer(page, server):
    """The explorer on TEXT with token 3 locked, two heads drawn, every view drawn."""
    page.open(server + "/?" + urlencode({"text": TEXT, "token": 3, "locked": 1, "heads": "3,5"}))
    wait_rendered(page, TEXT)
    return page


def test_png_and_svg_of_every_view(explorer, tmp_path, server):
    page = explorer
    s = page.state()
    for view in VIEWS:
        name, png = download(page, f"button[data-export='{view}'][data-format='png']", tmp_path)
        assert name.endswith(".png") and name.startswith(f"attnscope-{view}")
        box = page.locator("#grid canvas" if view == "grid" else f"#{view}").bounding_box()
        img = check_png(png)
        page_artifact(f"export-{view}").write_bytes(png)  # the file itself, to look at
        if view != "heatmap":  # ours: 2x the view on screen, with a margin and a caption below
            assert abs(img.width - 2 * (box["width"] + 24)) <= 2, (view, img.size, box)  # 12 px margins
        name, blob = download(page, f"button[data-export='{view}'][data-format='svg']", tmp_path)
        assert name.endswith(".svg")
        root = parse_svg(blob)
        raw = blob.decode("utf-8")
        assert "<script" not in raw and "<b>" not in raw  # the token text is escaped, never markup
        shown = texts(root)
        if view == "arrows":
            assert name == f"attnscope-arrows-L{s['layer']}-H3+5-T3.svg"
            paths = [p for p in root.iter(f"{SVG}path") if p.get("marker-end")]
            drawn = page.locator("svg.arrow-layer path[data-head]").count()
            assert len(paths) == drawn > 0
            chips = page.eval_on_selector_all(".chip", "cs => cs.map(c => c.textContent)")
            assert [t for t in shown if t in chips] == chips  # every token, in order, as <text>
            assert len([r for r in root.iter(f"{SVG}rect")]) >= len(chips)
            assert "&lt;" in raw and "&amp;" in raw
            assert any("<" in t for t in shown) and any("&" in t for t in shown)  # ... and reads back as the user's text
            assert root.find(f"{SVG}desc").text == TEXT
        if view == "lines":
            lines = list(root.iter(f"{SVG}line"))
            assert len(lines) > 0
            labels = page.eval_on_selector_all(".line-token", "ss => ss.map(s => s.textContent)")
            assert sorted(t for t in shown if t in labels) == sorted(labels)  # both columns
            assert "query (reads)" in shown and "key (is read)" in shown
            assert any("<" in t for t in shown)
        if view == "grid":
            images = list(root.iter(f"{SVG}image"))
            assert len(images) == 1 and images[0].get("href").startswith("data:image/png;base64,")
            sel = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "selected"]
            assert len(sel) == 1
            assert "0" in shown and "8" in shown  # head labels are vector text
        if view == "heatmap":
            assert name == f"attnscope-heatmap-L{s['layer']}-H{s['head']}.svg"
            # plotly's own SVG: the cells are an image, the ticks are the tokens' text
            assert any("&lt;" in t or "<" in t for t in shown), shown
    titles = page.eval_on_selector_all("#heatmap .modebar-btn", "bs => bs.map(b => b.dataset.title)")
    assert "Share chart..." not in titles, titles  # plotly's upload to Plotly Cloud: never from here
    assert not page.errors, page.errors


def test_data_links_follow_the_live_state(explorer, server, tmp_path):
    page = explorer
    page.select_option("#head", "7")
    wait_rendered(page, TEXT, head=7)
    page.wait_for_function("() => new URL(document.querySelector(\"a[data-export-link='heatmap.json']\").href)"
                           ".searchParams.get('head') === '7'")  # the links follow the state: wait for it
    href = page.get_attribute("a[data-export-link='heatmap.json']", "href")
    q = parse_qs(urlsplit(href).query)
    s = page.state()
    assert urlsplit(href).path == "/export/heatmap.json"
    assert q["text"] == [TEXT] and q["head"] == ["7"] and q["layer"] == [str(s["layer"])] and q["model"] == [s["model"]]
    assert "token" not in q  # only the arrows use it
    arrows = parse_qs(urlsplit(page.get_attribute("a[data-export-link='arrows.csv']", "href")).query)
    assert arrows["token"] == ["3"]
    name, blob = download(page, "a[data-export-link='heatmap.json']", tmp_path)
    assert name == f"attnscope-heatmap-L{s['layer']}-H7.json"
    d = json.loads(blob)
    h = httpx.post(server + "/api/head", json={"text": TEXT, "layer": s["layer"], "head": 7}).json()
    assert d["scores"] == h["scores"] and d["text"] == TEXT
    name, blob = download(page, "a[data-export-link='grid.csv']", tmp_path)
    assert name == "attnscope-grid.csv" and blob.startswith(b"layer,head,query_index,query_token,key_index,key_token,weight,score")
    # keyboard: the toolbar is reachable and a button works with Enter
    page.focus("button[data-export='lines'][data-format='svg']")
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    assert info.value.suggested_filename.endswith(".svg")
    assert page.evaluate("() => document.activeElement.dataset.export") == "lines"  # the focus stays put
    page.keyboard.press("Shift+Tab")
    with page.expect_download() as info:
        page.keyboard.press("Space")
    assert info.value.suggested_filename.endswith(".png")
    assert not page.errors, page.errors


def test_html_export_works_offline_from_file(explorer, browser, tmp_path):
    page = explorer
    name, blob = download(page, "a[data-export-link='heatmap.html']", tmp_path)
    assert name.startswith("attnscope-heatmap-") and name.endswith(".html")
    html = blob.decode("utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", html), "the HTML loads a script from somewhere"
    path = tmp_path / name
    ctx = browser.new_context(viewport={"width": 1100, "height": 900})
    requests = []
    ctx.route(re.compile(r"^(?!file:).*"), lambda route: (requests.append(route.request.url), route.abort()))
    ctx.set_offline(True)
    p = ctx.new_page()
    errors = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.goto(path.as_uri())
    p.wait_for_function("() => window.Plotly && document.querySelector('.js-plotly-plot')?._fullLayout?._size", timeout=30000)
    p.wait_for_selector(".js-plotly-plot .heatmaplayer image, .js-plotly-plot .hm", state="attached")
    size = p.evaluate("() => { const s = document.querySelector('.js-plotly-plot')._fullLayout._size; return [s.l, s.t, s.w, s.h]; }")
    n = len(p.evaluate("() => document.querySelector('.js-plotly-plot').data[0].z"))
    plot = p.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    cell_w, cell_h = plot["width"] / n, plot["height"] / n
    p.mouse.move(plot["x"] + cell_w * 0.5, plot["y"] + cell_h * (n - 0.5))  # last query row, first key: never masked
    p.wait_for_selector(".hoverlayer .hovertext", timeout=10000)
    hover = p.text_content(".hoverlayer .hovertext")
    assert "weight" in hover and re.search(r"weight 0\.\d{4}", hover), hover
    assert "<b>" not in p.content().split("<script")[0]
    titles = p.eval_on_selector_all(".modebar-btn", "bs => bs.map(b => b.dataset.title)")
    assert "Share chart..." not in titles, titles  # it would upload the chart to Plotly Cloud
    assert not errors, errors
    assert not requests, requests  # nothing left the file
    p.screenshot(path=str(page_artifact("export-heatmap-offline")))
    assert size[2] > 100
    ctx.close()


@pytest.mark.parametrize("scheme,panel", [("light", (255, 255, 255)), ("dark", (27, 29, 35))])
def test_images_take_the_screens_colours(browser, server, tmp_path, scheme, panel):
    """Colours come from the CSS variables as resolved on screen: a dark page gives a dark file."""
    ctx = browser.new_context(viewport={"width": 1000, "height": 900}, color_scheme=scheme)
    from tests.e2e.conftest import Page
    page = Page(ctx.new_page()).open(server + "/?token=3&locked=1")
    wait_rendered(page, "a fluffy blue creature roamed the verdant forest")
    for view in ("arrows", "lines", "grid"):
        _, png = download(page, f"button[data-export='{view}'][data-format='png']", tmp_path)
        img = check_png(png).convert("RGB")
        assert img.getpixel((1, 1)) == panel, (view, img.getpixel((1, 1)))
        _, blob = download(page, f"button[data-export='{view}'][data-format='svg']", tmp_path)
        raw = blob.decode()
        assert "var(--" not in raw and "color-mix" not in raw and "color(srgb" not in raw  # resolved, readable anywhere
        if scheme == "dark":
            page_artifact(f"export-{view}-dark").write_bytes(png)
    assert not page.errors, page.errors
    ctx.close()


def canvas_pixels(page, points):
    """The explorer's grid canvas at CSS points [(x, y)], as [r, g, b] (device pixels read back)."""
    return page.evaluate("""(points) => {
        const c = document.querySelector('#grid canvas'), dpr = c.width / c.getBoundingClientRect().width;
        const ctx = c.getContext('2d');
        return points.map(([x, y]) => Array.from(ctx.getImageData(Math.floor(x * dpr), Math.floor(y * dpr), 1, 1).data.slice(0, 3)));
    }""", points)


def test_moved_mode_exports_what_moved(page, server, tmp_path):
    """With "what it moved" on, the server's files hold what moved, equal to the API's for the state, and
    say so; the PNG/SVG made from the screen show what the screen shows, with the same scales."""
    page.open(server + "/?" + urlencode({"text": TEXT, "token": 3, "locked": 1, "measure": "moved"}))
    wait_rendered(page, TEXT)
    page.evaluate("() => window.attnscope.settled()")
    s = page.state()
    L, H = s["layer"], s["head"]
    assert s["measure"] == "moved"
    for href in page.eval_on_selector_all("a[data-export-link]", "as => as.map(a => a.getAttribute('href'))"):
        assert parse_qs(urlsplit(href).query)["measure"] == ["moved"], href  # every data link, none disabled
    moved = httpx.post(server + "/api/attention", json={"text": TEXT, "layers": [L], "measure": "moved"}).json()["attention"][str(L)]
    n = len(moved[H])
    # the heatmap's CSV: the API's moved numbers for this layer and head, every pair the model computed
    name, blob = download(page, "a[data-export-link='heatmap.csv']", tmp_path)
    assert name == f"attnscope-heatmap-moved-L{L}-H{H}.csv"
    rows = list(csv.DictReader(io.StringIO(blob.decode("utf-8"))))
    assert len(rows) == n * (n + 1) // 2
    assert all(float(r["moved"]) == moved[H][int(r["query_index"])][int(r["key_index"])] for r in rows)
    name, blob = download(page, "a[data-export-link='arrows.csv']", tmp_path)
    assert name == f"attnscope-arrows-moved-L{L}-H{H}-T3.csv"
    assert [float(r["moved"]) for r in csv.DictReader(io.StringIO(blob.decode()))] == moved[H][3][:4]
    # the heatmap's HTML: titled what it moved, on the screen's colour scale (0 to the head's largest)
    name, blob = download(page, "a[data-export-link='heatmap.html']", tmp_path)
    html = blob.decode("utf-8")
    assert name == f"attnscope-heatmap-moved-L{L}-H{H}.html" and "<title>attnscope · heatmap of one head · what it moved" in html
    fig = figure_json(html)
    screen = page.evaluate("() => { const e = document.getElementById('heatmap'); return [e.data[0].zmax, e.layout.title.text]; }")
    assert f"layer {L}, head {H} · what it moved" in fig["layout"]["title"]["text"] and screen[1].endswith("what it moved")
    assert fig["data"][0]["zmax"] == screen[0] == max(max(r) for r in moved[H])
    # the client's images: the heatmap is plotly's own picture of the screen's chart
    name, blob = download(page, "button[data-export='heatmap'][data-format='svg']", tmp_path)
    assert name == f"attnscope-heatmap-moved-L{L}-H{H}.svg"
    shown = texts(parse_svg(blob))
    assert f"layer {L}, head {H} · what it moved" in shown and "moved ‖·‖₂" in shown
    # the arrows: the screen's strokes (scaled by each head's largest), captioned what it moved
    name, blob = download(page, "button[data-export='arrows'][data-format='svg']", tmp_path)
    root = parse_svg(blob)
    assert name == f"attnscope-arrows-moved-L{L}-H{'+'.join(map(str, s['heads']))}-T3.svg"
    assert any("what it moved" in t for t in texts(root))
    widths = sorted(float(p.get("stroke-width")) for p in root.iter(f"{SVG}path") if p.get("marker-end"))
    assert widths and widths == sorted(page.eval_on_selector_all(
        "svg.arrow-layer path[data-head]", "ps => ps.map(p => Number(p.getAttribute('stroke-width')))"))
    # the grid: its thumbnails are the screen's pixels (each head scaled to its largest, brightness √)
    name, blob = download(page, "button[data-export='grid'][data-format='svg']", tmp_path)
    root = parse_svg(blob)
    assert name == "attnscope-grid-moved.svg" and any("what it moved" in t for t in texts(root))
    image = next(root.iter(f"{SVG}image")).get("href")
    tiles = Image.open(io.BytesIO(base64.b64decode(image.split(",", 1)[1]))).convert("RGB")
    g = page.evaluate("() => window.attnscope.geometry('grid')")
    scale = tiles.width / g["width"]
    cells = [(g["left"] + layer * g["pitch"] + (k + 0.5) * g["cell"] / n, g["top"] + head * g["pitch"] + (q + 0.5) * g["cell"] / n)
             for layer, head in [(0, 0), (L, H), (29, 8)] for q in range(n) for k in range(q + 1)]
    on_screen = canvas_pixels(page, cells)
    in_file = [list(tiles.getpixel((int(x * scale), int(y * scale)))) for x, y in cells]
    assert in_file == on_screen
    assert not page.errors, page.errors


@pytest.mark.parametrize("view", ["heatmap", "grid", "arrows", "embeddings"])
def test_html_exports_fit_a_phone_and_keep_their_size_on_a_desktop(browser, server, tmp_path, view):
    """Opened from file:// at 390 px the page never scrolls sideways and the chart is as wide as the
    screen, hover still answering; at 1280 px the chart is the figure's own width, as before."""
    text = "I love 🦊 and 日本, a fluffy blue creature roamed the verdant forest"
    r = httpx.get(f"{server}/export/{view}.html", params={"text": text}, timeout=120)
    assert r.status_code == 200
    path = tmp_path / f"{view}.html"
    path.write_bytes(r.content)
    width = figure_json(r.text)["layout"].get("width")
    assert width is None  # autosize: the page's box decides (PNG and SVG keep the figure's size: tests/test_export.py)
    for screen in (390, 1280):
        ctx = browser.new_context(viewport={"width": screen, "height": 900}, is_mobile=screen < 600, has_touch=screen < 600)
        ctx.set_offline(True)
        try:
            p = ctx.new_page()
            errors = []
            p.on("pageerror", lambda e: errors.append(str(e)))
            p.goto(path.as_uri())
            p.wait_for_function("() => document.querySelector('.js-plotly-plot')?._fullLayout?._size", timeout=30000)
            got = p.evaluate("() => [document.documentElement.scrollWidth, document.querySelector('.js-plotly-plot')._fullLayout.width,"
                             " document.querySelector('.js-plotly-plot')._fullLayout.height, getComputedStyle(document.querySelector("
                             "'.plotly-graph-div')).maxWidth]")
            scroll, drawn, height, most = got
            assert scroll <= screen, (view, screen, got)
            if screen == 390:
                assert drawn == 390 and height >= 320 and not p.is_visible(".modebar"), got  # no mode bar over the title
                p.screenshot(path=str(page_artifact(f"export-{view}-390")), full_page=True)
            else:
                assert drawn == min(screen, float(most.removesuffix("px"))), got  # the figure's own width (as the PNG's), if it fits
            assert not errors, errors
        finally:
            ctx.close()
