"""Embeds in headless Chromium, framed by a page of ANOTHER origin (a second loopback server):
the embed renders and tells its host its height; the explorer itself refuses to be framed."""

import base64
import functools
import http.server
import threading
from urllib.parse import urlencode

import httpx
import pytest

from tests.e2e.test_explorer import page_artifact, settle
from tests.live_server import free_port

TEXT = "the cat sat on the mat because it was tired"

HOST_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>a lesson</title><link rel="icon" href="data:,"></head>
<body style="margin:0">
<p>A lesson on another site.</p>
<iframe id="f" src="{src}" style="border:0;width:100%;height:150px" title="embed"></iframe>
<script>
  window.received = [];
  window.addEventListener("message", (e) => {{
    window.received.push({{origin: e.origin, data: e.data}});
    const f = document.getElementById("f");
    if (e.source === f.contentWindow && e.data && e.data.context === "iframe.resize") f.style.height = e.data.height + "px";
  }});
</script>
</body></html>"""


@pytest.fixture(scope="module")
def other_origin(tmp_path_factory):
    """A static file server on another loopback port: another origin for the browser."""
    root = tmp_path_factory.mktemp("host")
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def host(other_origin, name, src):
    root, origin = other_origin
    (root / f"{name}.html").write_text(HOST_PAGE.format(src=src))
    return f"{origin}/{name}.html"


def embed_frame(page):
    page.wait_for_function("() => document.getElementById('f').contentWindow !== null")
    frame = page.frame_locator("#f")
    frame.locator("body[data-ready='1']").wait_for(timeout=30000)
    return next(f for f in page.frames if "/embed/" in f.url)


MOLE = ["American shrew mole", "one mole of carbon dioxide", "take a biopsy of the mole"]
PARAMS = {  # each view's URL parameters in these tests
    "heatmap": {"text": TEXT, "layer": 5, "head": 1, "token": 7}, "arrows": {"text": TEXT, "layer": 5, "head": 1, "token": 7},
    "grid": {"text": TEXT, "layer": 5, "head": 1, "token": 7}, "explain": {"text": TEXT, "layer": 5, "head": 1, "token": 7, "step": 5},
    "compare": {"word": "mole", "sentences": MOLE}, "lens": {"text": TEXT},
}


def embed_url(server, view, **extra):
    return f"{server}/embed/{view}?" + urlencode({**PARAMS[view], **extra}, doseq=True)


def check_view(frame, server, view):
    """The frame draws the API's own numbers for its view."""
    post = lambda path, **body: httpx.post(server + path, json=body, timeout=60).json()  # noqa: E731
    if view == "heatmap":
        frame.wait_for_selector("#view .main-svg")
        assert frame.evaluate("() => document.querySelector('#view .hm-highlight').dataset.token") == "7"
    elif view == "arrows":
        drawn = frame.eval_on_selector_all("svg.arrow-layer path[data-head]", "ps => ps.map(p => [p.dataset.head, p.dataset.query])")
        assert drawn and all(h == "1" and q == "7" for h, q in drawn)
    elif view == "grid":
        assert frame.evaluate("() => document.querySelector('#view canvas').width") > 100
    elif view == "explain":  # step 5 of a Llama: the scaling, with the API's scores for query 7
        assert frame.evaluate("() => document.body.dataset.step") == "scale"
        cells = frame.eval_on_selector_all("table.nums tbody tr", "rs => rs.map(r => r.lastChild.textContent)")
        scores = post("/api/head", text=TEXT, layer=5, head=1)["scores"][7]
        assert [float(c) for c in cells] == [round(scores[j], 4) for j in range(8)]
        frame.click("text=Next →")
        assert frame.evaluate("() => document.body.dataset.step") == "mask"
    elif view == "compare":
        frame.wait_for_function("() => document.getElementById('trajectory').data")
        api = post("/api/compare", sentences=MOLE, word="mole")
        assert frame.evaluate("() => document.getElementById('similarity').data[0].y") == [m[0][1] for m in api["similarity"]]
        assert "identical" in frame.text_content(".notes")
    elif view == "lens":
        frame.wait_for_function("() => document.getElementById('lens').data")
        lens = post("/api/lens", text=TEXT, top_k=5)["lens"]
        assert frame.evaluate("() => document.getElementById('lens').data[0].z.at(-1)") == [top[0]["prob"] for top in lens[-1]]


@pytest.mark.parametrize("view", list(PARAMS))
def test_embed_in_another_origin_renders_and_resizes_its_iframe(page, server, other_origin, view):
    page.goto(host(other_origin, f"lesson-{view}", embed_url(server, view)))
    frame = embed_frame(page)
    assert frame.evaluate("() => document.getElementById('error').hidden"), frame.text_content("#error")
    check_view(frame, server, view)
    # the host got both messages (Embedly and AMP) with the embed's real height, and resized the iframe
    page.wait_for_function("""() => window.received.some(m => m.data.context === 'iframe.resize')
                                 && window.received.some(m => m.data.sentinel === 'amp' && m.data.type === 'embed-size')""")
    content = frame.evaluate("() => Math.ceil(document.documentElement.getBoundingClientRect().height)")
    # a step or a redraw just changed the height: its message is posted when the ResizeObserver fires
    page.wait_for_function(f"""() => {{ const r = window.received.filter(m => m.data.context === 'iframe.resize');
                                        return r.length > 0 && r[r.length - 1].data.height === {content}; }}""")
    msgs = page.evaluate("() => window.received")
    assert {m["origin"] for m in msgs} == {server}
    last = [m["data"]["height"] for m in msgs if m["data"].get("context") == "iframe.resize"][-1]
    assert last == content and content > 150
    page.wait_for_function(f"() => document.getElementById('f').getBoundingClientRect().height === {content}")
    page_path = "/" if view in ("heatmap", "arrows", "grid") else f"/{view}"
    assert "attnscope" in frame.text_content("footer") and frame.get_attribute("#explorer-link", "href").startswith(f"{server}{page_path}?")
    assert page.errors == [], page.errors


def test_the_explorer_refuses_to_be_framed_by_another_origin(page, server, other_origin):
    violations = []
    page.on("console", lambda m: "frame-ancestors" in m.text and violations.append(m.text))
    with page.expect_console_message(lambda m: "frame-ancestors" in m.text):
        page.goto(host(other_origin, "framing-explorer", f"{server}/"))
    frame = page.frames[1]
    frame.wait_for_url(lambda url: not url.startswith(server))  # Chromium's error page replaces the refused one
    assert not frame.url.startswith(server), frame.url  # Chromium swaps the blocked page for an error page
    assert frame.evaluate("() => document.querySelector('body[data-ready]') === null")
    assert frame.evaluate("() => document.getElementById('initial') === null")
    assert violations and "frame-ancestors 'self'" in violations[0]
    # the same server's embed in the same kind of host page is allowed
    page.goto(host(other_origin, "framing-embed", f"{server}/embed/heatmap"))
    assert embed_frame(page).url.startswith(f"{server}/embed/heatmap")


def test_bad_parameters_are_readable_inside_the_frame(page, server, other_origin):
    page.goto(host(other_origin, "bad", f"{server}/embed/arrows?model=gpt-9"))
    frame = embed_frame(page)
    assert "unknown model 'gpt-9'" in frame.text_content("#error") and frame.is_visible("#error")
    page.wait_for_function("() => window.received.length > 0")


@pytest.mark.parametrize("width", [320, 768, 1280])
def test_embed_screenshots(browser, server, width):
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    try:
        p = ctx.new_page()
        errors = []
        p.on("pageerror", lambda e: errors.append(str(e)))
        for view, theme in [("heatmap", "light"), ("arrows", "dark"), ("grid", "auto"), ("explain", "dark"),
                            ("compare", "light"), ("lens", "dark")]:
            p.goto(embed_url(server, view, theme=theme))
            p.wait_for_selector("body[data-ready='1']")
            if view in ("heatmap", "compare", "lens"):
                p.wait_for_selector("#view .main-svg")
            overflow = p.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{view} embed is {overflow}px wider than {width}px"
            assert ("where ‘·it’ looks" in p.text_content("#caption")) == (view in ("heatmap", "arrows", "explain"))
            bg = p.evaluate("() => getComputedStyle(document.body).backgroundColor")
            assert bg == {"light": "rgb(255, 255, 255)", "dark": "rgb(27, 29, 35)"}.get(theme, bg)
            p.screenshot(path=str(page_artifact(f"embed-{view}-{width}")), full_page=True)
        assert errors == []
    finally:
        ctx.close()


def test_static_embeds_do_not_react_and_interactive_ones_do(page, server):
    url = f"{server}/embed/arrows?" + urlencode({"text": TEXT, "layer": 5, "head": 1})
    page.open(url)
    page.hover(".chip[data-index='7']")
    page.wait_for_function("() => window.attnscope.embed.state.token === 7")
    assert page.eval_on_selector_all("svg.arrow-layer path[data-head]", "ps => ps.every(p => p.dataset.query === '7')")
    page.click(".chip[data-index='7']")  # locked: leaving keeps it
    page.mouse.move(5, 600)
    assert page.evaluate("() => window.attnscope.embed.state.token") == 7 and "‘·it’" in page.text_content("#caption")
    page.open(url + "&static=1")
    assert page.evaluate("() => document.body.classList.contains('static') && getComputedStyle(document.getElementById('view')).pointerEvents") == "none"
    page.mouse.move(*center(page, ".chip[data-index='7']"))
    page.mouse.click(*center(page, ".chip[data-index='7']"))
    assert page.evaluate("() => window.attnscope.embed.state.token") == -1
    page.open(f"{server}/embed/grid?text=hi&static=1")
    g = page.evaluate("() => window.attnscope.embed.geometry")
    page.mouse.click(*center(page, "#view canvas", g["left"] + 3 * g["pitch"] + 4, g["top"] + 2 * g["pitch"] + 4))
    assert page.evaluate("() => [window.attnscope.embed.state.layer, window.attnscope.embed.state.head]") == [2, 3]
    page.open(f"{server}/embed/grid?text=hi")
    page.locator("#view canvas").click(position={"x": g["left"] + 3 * g["pitch"] + 4, "y": g["top"] + 2 * g["pitch"] + 4})
    assert page.evaluate("() => [window.attnscope.embed.state.layer, window.attnscope.embed.state.head]") == [3, 2]
    assert "layer=3&head=2" in page.get_attribute("#explorer-link", "href")
    for view in ("heatmap", "compare", "lens"):  # plotly charts: static plots (no hover, zoom or mode bar)
        page.open(embed_url(server, view, static=1))
        page.wait_for_selector("#view .main-svg")
        charts = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(c => c._context.staticPlot)")
        assert charts and all(charts), view
        page.open(embed_url(server, view))
        page.wait_for_selector("#view .main-svg")
        assert not any(page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(c => c._context.staticPlot)"))
    assert page.errors == []


def test_head_embeds_draw_what_moved_with_measure_moved(page, server):
    """measure=moved in an embed's URL: the heatmap, arrows and grid draw what each head moved, scaled by
    each head's largest as the explorer draws it, and the caption and the link back say so."""
    moved = httpx.post(server + "/api/attention", json={"text": TEXT, "layers": [5], "measure": "moved"}, timeout=60).json()
    M = moved["attention"]["5"]
    page.open(embed_url(server, "heatmap", measure="moved"))
    page.wait_for_selector("#view .main-svg")
    z, zmax, title = page.evaluate("() => { const e = document.getElementById('view'); return [e.data[0].z, e.data[0].zmax, e.layout.title.text]; }")
    assert title == "layer 5, head 1 · what it moved" and zmax == max(max(r) for r in M[1])
    assert all(v is None if j > i else v == M[1][i][j] for i, row in enumerate(z) for j, v in enumerate(row))
    assert page.text_content("#caption").endswith("layer 5, head 1 · what it moved (‖weight · v W_O‖₂) into ‘·it’")
    assert "measure=moved" in page.get_attribute("#explorer-link", "href")
    page.shot("embed-heatmap-moved")
    page.open(embed_url(server, "arrows", measure="moved"))
    drawn = page.eval_on_selector_all("svg.arrow-layer path[data-head]", "ps => ps.map(p => [Number(p.dataset.key), Number(p.dataset.weight), Number(p.getAttribute('stroke-width'))])")
    top = max(max(r) for r in M[1])
    assert drawn and all(abs(w - M[1][7][k]) <= 0.5e-4 and abs(sw - (0.8 + 5 * M[1][7][k] / top)) <= 0.01 for k, w, sw in drawn)
    page.open(embed_url(server, "grid", measure="moved"))
    assert page.evaluate("() => window.attnscope.embed.state.measure") == "moved" and "what it moved" in page.text_content("#caption")
    # each thumbnail scaled to its own head's largest (grid.js: colour LUT[round(√(value / largest) · 255)]),
    # from the uint8 bytes the embed was given: value / largest = byte / the head's largest byte
    grid = httpx.post(server + "/api/attention", json={"text": TEXT, "encoding": "uint8", "measure": "moved"}, timeout=60).json()
    n = len(grid["tokens"])
    lut = page.evaluate("() => import('/static/js/colors.js').then(m => Array.from(m.LUT.viridis))")
    g = page.evaluate("() => window.attnscope.embed.geometry")
    for L, H in [(0, 0), (5, 1), (29, 8)]:
        raw = base64.b64decode(grid["attention"][str(L)]["data"])
        tri = n * (n + 1) // 2
        head = raw[H * tri:(H + 1) * tri]  # rows 0..n-1, row i holding keys 0..i
        cells = [(q, k, head[q * (q + 1) // 2 + k]) for q in range(n) for k in range(q + 1)]
        top = max(b for _, _, b in cells)
        points = [(g["left"] + L * g["pitch"] + (k + 0.5) * g["cell"] / n, g["top"] + H * g["pitch"] + (q + 0.5) * g["cell"] / n)
                  for q, k, _ in cells]
        shown = page.evaluate("""(points) => {
            const c = document.querySelector('#view canvas'), dpr = c.width / c.getBoundingClientRect().width, ctx = c.getContext('2d');
            return points.map(([x, y]) => Array.from(ctx.getImageData(Math.floor(x * dpr), Math.floor(y * dpr), 1, 1).data.slice(0, 3)));
        }""", points)
        for (q, k, b), rgb in zip(cells, shown):
            v = round((b / top) ** 0.5 * 255)
            # float32 division in the browser may round the other way at a .5: one step of the table either side
            assert rgb in [lut[3 * i:3 * i + 3] for i in range(max(0, v - 1), min(255, v + 1) + 1)], (L, H, q, k, b, top, rgb)
    page.shot("embed-grid-moved")
    assert page.errors == []


def center(page, selector, dx=None, dy=None):
    box = page.locator(selector).bounding_box()
    return (box["x"] + (box["width"] / 2 if dx is None else dx), box["y"] + (box["height"] / 2 if dy is None else dy))


def test_the_embed_button_gives_the_snippet_the_link_and_a_live_preview(page, server):
    page.open(f"{server}/?" + urlencode({"text": TEXT, "layer": 4, "head": 2}))
    page.click("#embed-open")
    page.wait_for_selector("#share[open]")
    assert page.is_visible("#share-views")  # the explorer offers its three views
    page.check("#share input[value='arrows']")
    page.select_option("#share-theme", "dark")
    # the snippet of the arrows view alone may land first: wait for the one with the theme too
    page.wait_for_function("() => /\\/embed\\/arrows\\?.*theme=dark/.test(document.getElementById('share-html').value)")
    snippet = page.input_value("#share-html")
    expected = httpx.get(f"{server}/oembed", params={"url": f"{server}/embed/arrows?" + urlencode(
        {"text": TEXT, "layer": 4, "head": 2, "model": "smollm2-135m-instruct", "theme": "dark"})}).json()["html"]
    assert snippet == expected and 'loading="lazy"' in snippet and "width:100%" in snippet and "title=" in snippet
    link = page.input_value("#share-link")
    assert link.startswith(f"{server}/?") and "layer=4" in link and "head=2" in link
    # the preview is that iframe; it reports its height and the dialog sizes it
    frame = page.frame_locator("#share-preview iframe")
    frame.locator("body[data-ready='1']").wait_for(timeout=30000)
    page.wait_for_function("() => parseInt(document.querySelector('#share-preview iframe').style.height) > 150")
    assert frame.locator("svg.arrow-layer").count() == 1
    page.click(".share-copy[data-copy='share-html']")
    page.wait_for_function("() => document.getElementById('share-status').textContent === 'HTML copied'")
    page.screenshot(path=str(page_artifact("embed-dialog-explorer")))
    page.keyboard.press("Escape")
    assert page.evaluate("() => !document.getElementById('share').open")
    assert page.errors == []


def test_lesson_sections_and_lesson_pages_have_embed_buttons(page, server):
    page.open(f"{server}/lesson")
    page.click(".embed-section >> nth=1")  # 3. mole
    page.wait_for_function("() => document.getElementById('share-html').value.includes('/embed/compare?')")
    assert not page.is_visible("#share-views")
    assert "/compare?word=mole" in page.input_value("#share-link")
    page.frame_locator("#share-preview iframe").locator("#similarity .main-svg").first.wait_for(timeout=30000)
    page.keyboard.press("Escape")
    for path, view in [("/explain", "explain"), ("/compare", "compare"), ("/lens", "lens")]:
        page.open(server + path)
        page.click("#embed-open")
        page.wait_for_function(f"() => document.getElementById('share-html').value.includes('/embed/{view}')")
        assert not page.is_visible("#share-views")
    assert page.errors == []


HOSTILE = "<img src=x onerror=alert(1)> and <script>alert(2)</script> \u202eevil\u202c \"'><svg onload=alert(3)> x"


@pytest.mark.parametrize("view", list(PARAMS))
def test_hostile_text_in_every_embed_is_text_and_runs_nothing(page, server, view):
    params = {"compare": {"word": "x", "sentences": [HOSTILE, "<b>bold</b> x"]}}.get(view, {"text": HOSTILE, "token": 2})
    page.open(f"{server}/embed/{view}?" + urlencode(params, doseq=True))
    if view in ("heatmap", "compare", "lens"):
        page.wait_for_selector("#view .main-svg")
    settle(page)
    assert page.evaluate("() => document.getElementById('error').hidden"), page.text_content("#error")
    assert not page.dialogs and not page.errors, (page.dialogs, page.errors)
    assert page.evaluate("() => document.querySelectorAll('img[src=x], svg[onload], script:not([src]):not([type])').length") == 0
    if view == "compare":  # the sentences reach the legend as text
        assert "<img src=x" in page.evaluate("() => document.getElementById('trajectory').textContent")
    elif view == "arrows":
        assert "<img" in "".join(page.eval_on_selector_all(".chip", "cs => cs.map(c => c.textContent)"))
    elif view in ("heatmap", "lens"):  # plotly gets entities, so its tag parser sees none
        ticks = page.evaluate("() => document.querySelector('.js-plotly-plot').layout.xaxis.ticktext"
                              " || document.querySelector('.js-plotly-plot').data[0].x")
        assert ticks and "<" not in "".join(map(str, ticks))
    if view in ("arrows", "heatmap", "explain"):
        assert "where ‘" in page.text_content("#caption")  # token 2, as text
