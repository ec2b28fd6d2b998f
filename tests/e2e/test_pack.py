"""`attnscope pack` folders opened from file:// in Chromium with every request that is not a file
aborted: no page errors, the live API's numbers for the state, hover and focus as on the live page,
what needs the server switched off and said; and the bundler's classic script against the browser's own
module loading."""

import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from urllib.parse import urlencode

import httpx
import pytest

from attnscope import cli, pack
from tests.e2e.conftest import ARTIFACTS, Page
from tests.e2e.test_explorer import arrows, settle
from tests.e2e.wire import TO_FIXED_4, drawn_layer

TEXT = "the cat sat on the mat because it was tired"
LAYER, HEAD, TOKEN = 4, 5, 6


def api(server, path, **body):
    r = httpx.post(server + path, json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def make(url: str, out, cache_dir: str):
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        assert cli.main(["pack", url, "-o", str(out), "--cache-dir", cache_dir]) == 0, stderr.getvalue()
    return out


@pytest.fixture(scope="module")
def urls(server):
    q = lambda **kw: urlencode(kw, doseq=True)  # noqa: E731
    return {
        "explorer": f"{server}/?" + q(text=TEXT, layer=LAYER, head=HEAD, token=TOKEN, heads=f"{HEAD},1"),
        "explain": f"{server}/explain?" + q(text=TEXT, layer=1, head=2, token=5, step=7),
        "compare": f"{server}/compare?" + q(word="bank", s=["we sat on the river bank", "she paid at the bank"]),
        "lens": f"{server}/lens?" + q(text="The capital of France is Paris, and the capital of Italy is"),
    }


@pytest.fixture(scope="module")
def packs(urls, cache_dir, tmp_path_factory):
    return {name: make(url, tmp_path_factory.mktemp("pack") / name, cache_dir) for name, url in urls.items()}


def offline(browser, folder, width=1280, wait="body[data-ready='1']"):
    """The pack's index.html from file://, every other request aborted and recorded -> (page, tried)."""
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    tried = []

    def route(r):
        if r.request.url.startswith("file:"):
            return r.continue_()
        tried.append(r.request.url)
        return r.abort()

    ctx.route("**/*", route)
    page = Page(ctx.new_page())
    page.goto((folder / "index.html").as_uri())
    page.wait_for_selector(wait)
    return page, tried


def misses(page):
    return page.evaluate("() => window.attnscopePack.misses")


def explorer_view(page):
    """What the explorer shows for the focused token: arrows, the heatmap's highlight, the sentence below."""
    hl = page.eval_on_selector(".hm-highlight", "e => ({token: e.dataset.token, dir: e.dataset.dir, hidden: e.hidden})")
    focused = page.eval_on_selector_all(".chip.focus", "cs => cs.map(c => c.dataset.index)")
    return {"arrows": sorted(arrows(page)), "highlight": hl, "describe": page.text_content("#describe"), "focused": focused}


def test_the_packed_explorer_is_the_live_one_offline(packs, urls, server, browser):
    page, tried = offline(browser, packs["explorer"])
    live = Page(browser.new_page(viewport={"width": 1280, "height": 900}))
    try:
        page.wait_for_function("() => window.attnscope.rendered && window.attnscope.rendered.grid")
        assert page.errors == [] and tried == [] and misses(page) == []
        s = page.state()
        assert (s["text"], s["layer"], s["head"], s["token"], s["heads"]) == (TEXT, LAYER, HEAD, TOKEN, [HEAD, 1])

        # the numbers drawn are the live API's for that state
        P = api(server, "/api/attention", text=TEXT, layers=[LAYER])["attention"][str(LAYER)]
        drawn = arrows(page)
        assert drawn and {h for h, *_ in drawn} <= {HEAD, 1}
        _, D = drawn_layer(server, LAYER, text=TEXT)  # the arrows draw the layer's bytes
        for h, q, k, w in drawn:
            assert q == TOKEN and abs(w - D[h][q][k]) <= TO_FIXED_4
        z = page.evaluate("() => document.getElementById('heatmap').data[0].z")
        assert all((v is None) if j > i else abs(v - P[HEAD][i][j]) <= 1e-4 for i, row in enumerate(z) for j, v in enumerate(row))
        preds = api(server, "/api/predictions", text=TEXT, top_k=10)["predictions"][TOKEN]
        shown = page.eval_on_selector_all(".pred-list li", "ls => ls.map(l => [Number(l.dataset.id), Number(l.dataset.prob)])")
        assert shown == [[p["id"], p["prob"]] for p in preds]

        # hover and focus, as on the live page at the same URL
        live.open(urls["explorer"])
        live.wait_for_function("() => window.attnscope.rendered && window.attnscope.rendered.grid")
        assert explorer_view(page) == explorer_view(live)
        page.shot("pack-explorer-1280")
        for p in (page, live):
            p.hover(".chip[data-index='7']")
            p.wait_for_function("() => window.attnscope.store.state.token === 7")
        hovered = explorer_view(page)
        assert hovered == explorer_view(live) and hovered["highlight"] == {"token": "7", "dir": "out", "hidden": False}
        assert all(q == 7 and abs(w - D[h][7][k]) <= TO_FIXED_4 for h, q, k, w in hovered["arrows"])
        for p in (page, live):  # lock it, read who looks at it (no data needed), draw one head fewer
            p.click(".chip[data-index='7']")
            p.check("input[name='dir'][value='in']")
            p.click("#heads .head-chip >> text='1'")
            p.wait_for_function("() => window.attnscope.store.state.dir === 'in' && window.attnscope.store.state.heads.length === 1")
            settle(p)
        locked = explorer_view(page)
        assert locked == explorer_view(live) and locked["highlight"]["dir"] == "in"
        assert locked["arrows"] and all(k == 7 and abs(w - D[HEAD][q][7]) <= TO_FIXED_4 for h, q, k, w in locked["arrows"])
        assert page.state()["locked"] and "token=7" in page.url and page.url.startswith("file:")  # the URL follows, on this file
        page.keyboard.press("Escape")
        page.wait_for_function("() => !window.attnscope.store.state.locked")
        assert page.errors == [] and tried == [] and misses(page) == []
    finally:
        live.context.close()
        page.context.close()


def test_what_needs_the_server_is_off_and_says_so(packs, server, browser):
    page, tried = offline(browser, packs["explorer"])
    try:
        page.wait_for_function("() => window.attnscope.rendered && window.attnscope.rendered.grid")
        note = page.text_content("#pack-note")
        assert "Offline snapshot" in note and TEXT in note and f"layer {LAYER}, head {HEAD}" in note and "forward pass" in note
        assert page.get_attribute("#pack-note a", "href").startswith(f"{server}/?")
        for control in ("#text", "#model", "#layer", "#head", "#temperature", "#off-mode", "#switch-mode", "#cmp"):
            assert page.eval_on_selector(control, "e => e.disabled"), control
        assert page.eval_on_selector_all("input[name='measure']", "rs => rs.every(r => r.disabled)")
        assert not page.eval_on_selector_all("input[name='dir']", "rs => rs.some(r => r.disabled)")
        # another head from the grid: refused, said, nothing redrawn from numbers the pack does not have
        g = page.evaluate("() => window.attnscope.geometry('grid')")
        page.locator("#grid canvas").click(position={"x": g["left"] + 2 * g["pitch"] + 4, "y": g["top"] + 1 * g["pitch"] + 4})
        page.wait_for_selector(".pack-toast:not([hidden])")
        assert "Needs the attnscope server" in page.text_content(".pack-toast")
        s = page.state()
        assert (s["layer"], s["head"]) == (LAYER, HEAD) and page.evaluate("() => window.attnscopePack.blocked") == [["layer", "head"]]
        assert page.evaluate("() => window.attnscope.rendered")["layer"] == LAYER
        assert not page.eval_on_selector("#heatmap-panel", "p => p.classList.contains('updating')")
        assert page.errors == [] and misses(page) == [] and tried == []
        # a page of the server (the explain link, set by the page as its state changes) opens on the server named
        with page.expect_request(lambda r: r.url.startswith(f"{server}/explain?")):
            page.click("#explain-link")
    finally:
        page.context.close()


def test_at_390_px(packs, browser):
    page, tried = offline(browser, packs["explorer"], width=390)
    try:
        page.wait_for_function("() => window.attnscope.rendered && window.attnscope.rendered.grid")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scroll
        page.hover(".chip[data-index='2']")
        page.wait_for_function("() => window.attnscope.store.state.token === 2")
        page.shot("pack-explorer-390")
        assert page.errors == [] and tried == [] and misses(page) == []
    finally:
        page.context.close()


def test_the_packed_explain_steps_offline(packs, urls, server, browser):
    page, tried = offline(browser, packs["explain"])
    live = Page(browser.new_page())
    try:
        d = api(server, "/api/head", text=TEXT, layer=1, head=2, detail=True)
        assert page.evaluate("() => window.attnscope.data") == d  # every number of every step
        title = page.text_content("#step-title")
        assert title.startswith("Step 7 of ") and page.evaluate("() => document.body.dataset.step") == "softmax"
        step = lambda p: p.eval_on_selector_all("#step table.nums tbody tr", "rs => rs.map(r => r.textContent)")  # noqa: E731
        live.open(urls["explain"])
        assert step(page) == step(live)  # the softmax step, as the live page shows it
        cells = page.eval_on_selector_all("table.nums tbody tr", "rs => rs.map(r => r.lastChild.textContent)")
        assert all(abs(float(c) - d["pattern"][5][j]) <= 5e-5 for j, c in enumerate(cells)) and len(cells) == 6
        page.shot("pack-explain-1280")
        page.keyboard.press("ArrowRight")
        assert page.evaluate("() => document.body.dataset.step") == "sum"
        assert "step=8" in page.url and page.url.startswith((packs["explain"] / "index.html").as_uri())
        page.select_option("#token", "2")  # another query token: the same data
        page.wait_for_function("() => document.querySelectorAll('table.nums tbody tr').length === 3")
        assert page.eval_on_selector("#layer", "e => e.disabled") and page.eval_on_selector("#text", "e => e.disabled")
        assert page.errors == [] and tried == [] and misses(page) == []
    finally:
        live.context.close()
        page.context.close()


def test_the_packed_compare_draws_its_charts(packs, server, browser):
    page, tried = offline(browser, packs["compare"], wait="body[data-rendered]")
    try:
        c = api(server, "/api/compare", sentences=["we sat on the river bank", "she paid at the bank"], word="bank")
        assert page.evaluate("() => document.getElementById('similarity').data.map(t => t.y)") == [[m[0][1] for m in c["similarity"]]]
        assert len(page.evaluate("() => document.getElementById('trajectory').data")) == 2
        page.select_option("#dims", "3")  # drawn again from the answer it has
        page.wait_for_function("() => document.getElementById('residual').data[0].type === 'scatter3d'")
        page.shot("pack-compare-1280")
        assert page.eval_on_selector_all("#sentences input, #word, #add, #examples button", "es => es.length === 7 && es.every(e => e.disabled)")
        assert page.errors == [] and tried == [] and misses(page) == []
    finally:
        page.context.close()


def test_the_packed_lens_draws_its_charts(packs, server, browser):
    text = "The capital of France is Paris, and the capital of Italy is"
    page, tried = offline(browser, packs["lens"], wait="body[data-rendered]")
    try:
        lens = api(server, "/api/lens", text=text, top_k=5)
        assert page.evaluate("() => document.getElementById('lens').data[0].z")[-1] == [t[0]["prob"] for t in lens["lens"][-1]]
        r = api(server, "/api/rollout", text=text)
        assert page.evaluate("() => document.getElementById('rollout').data[0].z") == r["rollout"][-1]
        page.eval_on_selector("#rollout-layer", "e => { e.value = '3'; e.dispatchEvent(new Event('input')); }")
        page.wait_for_function("() => document.getElementById('rollout').layout.title.text.startsWith('after layer 3:')")
        assert page.evaluate("() => document.getElementById('rollout').data[0].z") == r["rollout"][3]
        heads = api(server, "/api/heads", text=text, top=6)
        t = heads["top"]["previous"][0]
        assert page.eval_on_selector(".finder-top a", "a => a.textContent").startswith(f"layer {t['layer']}, head {t['head']}")
        page.shot("pack-lens-1280")
        assert page.errors == [] and tried == [] and misses(page) == []
        # a click on a head in the finder's chart sets location to the explorer: opened on the server named
        page.locator(".finder-chart >> nth=0").scroll_into_view_if_needed()
        box = page.locator(".finder-chart .nsewdrag >> nth=0").bounding_box()
        with page.expect_request(lambda r: r.url.startswith(f"{server}/?")):
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    finally:
        page.context.close()


def test_a_pack_of_a_path_names_no_server(tmp_path, cache_dir, browser):
    """From /path?query (no server named), the app's other pages say they need one, and nothing leaves."""
    folder = make("/explain?" + urlencode({"text": TEXT, "layer": 0, "head": 1}), tmp_path / "p", cache_dir)
    page, tried = offline(browser, folder)
    try:
        assert "run attnscope serve and open the page there" in page.text_content("#pack-note")
        page.click("nav a[data-nav='lesson']")
        page.wait_for_selector(".pack-toast:not([hidden])")
        assert "/lesson is a page of the attnscope server" in page.text_content(".pack-toast")
        assert page.url.startswith((folder / "index.html").as_uri()) and tried == [] and page.errors == []
    finally:
        page.context.close()


# --- the bundler against the browser's own modules ------------------------------------------------------

MODULES = {
    "log.js": "window.events = []; window.log = (...a) => window.events.push(a.join(' '));\n",
    "entry1.js": ('log("entry1 before its imports", twice2(3));\n'
                  'import { a, b as bee } from "./lib/a.js";\nimport * as ns from "./lib/b.js";\nimport "./side.js";\n'
                  'import { twice as twice2 } from "./lib/b.js";\n'
                  'log("entry1", a, bee, Object.keys(ns).join(), ns.twice(2), String(this), typeof topLevel, typeof window.topLevel);\n'
                  'try { undeclared = 1; log("sloppy"); } catch (e) { log("strict", e.constructor.name); }\n'
                  'try { ns.extra = 1; log("namespace open"); } catch (e) { log("namespace frozen", e.constructor.name); }\n'),
    "entry2.js": 'import { a } from "./lib/a.js";\nimport { K } from "./lib/b.js";\nlog("entry2", a, new K().name);\nwindow.done = true;\n',
    "lib/a.js": ('import { c } from "../c.js";\nexport const a = c + 1;\nconst hidden = "h";\nexport { hidden as b };\n'
                 'log("a", document.readyState, typeof document.getElementById("initial"));\n'),
    "lib/b.js": ("export function twice(x) { return 2 * x; }\nexport class K { get name() { return 'K'; } }\n"
                 "export async function later() { return 1; }\nlog('b');\n"),
    "c.js": ('var topLevel = 1;\nconst fake = `\nimport { x } from "./nowhere.js";\nexport const y = ${1 + 1};\n`;\n'
             'export const c = 41;\nlog("c", fake.includes("import"), /export\\s"[`]/.test(\'export "`\'));\n'),
    "side.js": 'log("side", typeof window.Plotly);\n',
}


def test_the_bundle_runs_as_the_browser_runs_the_modules(browser, tmp_path):
    """The same modules, loaded by the browser as ES modules (over http, served by the test) and as the
    pack's classic script (from file://): the same events, in the same order."""
    for path, src in MODULES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(src)
    script, order = pack.bundle(["entry1.js", "entry2.js"], root=tmp_path)
    assert order == ["c.js", "lib/a.js", "lib/b.js", "side.js", "entry1.js", "entry2.js"]
    (tmp_path / "app.js").write_text(script)
    body = '<body><script type="application/json" id="initial">{}</script></body>'
    (tmp_path / "native.html").write_text('<!doctype html><script src="log.js"></script><script type="module" src="entry1.js">'
                                          f'</script><script type="module" src="entry2.js"></script>{body}')
    (tmp_path / "bundled.html").write_text(f'<!doctype html><script src="log.js"></script><script src="app.js" defer></script>{body}')
    ctx = browser.new_context()
    try:
        def serve(route):
            name = route.request.url.split("http://modules.test/", 1)[1]
            ctype = "text/html" if name.endswith(".html") else "text/javascript"
            route.fulfill(status=200, body=(tmp_path / name).read_bytes(), headers={"Content-Type": ctype})

        ctx.route("http://modules.test/**", serve)
        runs = {}
        for name, url in (("native", "http://modules.test/native.html"), ("bundled", (tmp_path / "bundled.html").as_uri())):
            page = Page(ctx.new_page())
            page.goto(url)
            page.wait_for_function("() => window.done === true")
            runs[name] = page.evaluate("() => window.events")
            assert page.errors == [], (name, page.errors)
        assert runs["bundled"] == runs["native"]
        assert runs["native"][:3] == ["c true true", "a interactive object", "b"]
        assert "entry1 42 h K,later,twice 4 undefined undefined undefined" in runs["native"]
        assert "strict ReferenceError" in runs["native"] and "namespace frozen TypeError" in runs["native"]
    finally:
        ctx.close()
