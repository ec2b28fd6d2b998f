"""The explorer page in headless Chromium: what a person sees must be the API's numbers."""

import httpx
import pytest

from tests.e2e.conftest import WAIT_MS
from tests.e2e.wire import TO_FIXED_4, drawn_layer, exact_head

LESSON = "a fluffy blue creature roamed the verdant forest"


def settle(page):
    """Two animation frames: whatever the test's last action queued (handlers, redraws) has run.
    A negative check (no dialog, no error) needs this, not a sleep that guesses how long it takes."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def wait_rendered(page, text, model=None, layer=None, head=None, grid=True, timeout=WAIT_MS):
    """Wait until the views show this text (and model/layer/head); on timeout, say what they show."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        _wait_rendered(page, text, model, layer, head, grid, timeout)
    except PlaywrightTimeout:
        shown = page.evaluate("() => [window.attnscope.rendered, window.attnscope.store.state]")
        pytest.fail(f"views never showed {text!r}: rendered={shown[0]}, state={shown[1]}, errors={page.errors}")


def _wait_rendered(page, text, model, layer, head, grid, timeout):
    page.wait_for_function(
        """([text, model, layer, head, grid]) => {
            const r = window.attnscope && window.attnscope.rendered;
            return r && r.text === text && (model === null || r.model === model) && (layer === null || r.layer === layer)
                && (head === null || r.head === head) && (!grid || r.grid);
        }""", arg=[text, model, layer, head, grid], timeout=timeout)


def api(server, path, **body):
    r = httpx.post(server + path, json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def arrows(page):
    return page.eval_on_selector_all(
        "svg.arrow-layer path[data-head]",
        "ps => ps.map(p => [Number(p.dataset.head), Number(p.dataset.query), Number(p.dataset.key), Number(p.dataset.weight)])")


def hover_cell(page, query, key, n, chart="heatmap", area_js="() => window.attnscope.geometry('heatmap')"):
    """Move the mouse over cell (query, key) of the heatmap #chart, whose plot area area_js gives;
    the tooltip's text once its numbers are in."""
    area = page.evaluate(area_js)
    page.locator(f"#{chart}").scroll_into_view_if_needed()
    box = page.locator(f"#{chart}").bounding_box()
    page.mouse.move(box["x"] + area["l"] + (key + 0.5) * area["w"] / n, box["y"] + area["t"] + (query + 0.5) * area["h"] / n)
    page.wait_for_function("""([chart, cell]) => { const t = document.querySelector(`#${chart} .hm-tip`);
        return t && !t.hidden && t.dataset.cell === cell && !t.textContent.includes('…'); }""", arg=[chart, f"{query},{key}"])
    return page.text_content(f"#{chart} .hm-tip")


def type_text(page, text):
    page.fill("#text", text)


def test_type_hover_and_see_the_apis_numbers(page, server):
    page.open(server + "/")
    page.shot("explorer-default")
    text = "the cat sat on the mat because it was tired"
    type_text(page, text)
    wait_rendered(page, text)
    s = page.state()
    att, P = drawn_layer(server, s["layer"], text=text)  # what the arrows draw: the layer's heads as bytes
    exact = exact_head(server, s["layer"], s["head"], text=text)  # what the page prints: the selected head's floats
    idx = next(i for i, t in enumerate(att["tokens"]) if t["text"] == " it")
    page.hover(f".chip[data-index='{idx}']")
    page.wait_for_function(f"() => window.attnscope.store.state.token === {idx}")
    drawn = arrows(page)
    head = s["head"]
    expected = {k for k, w in enumerate(P[head][idx]) if w > 0.005}
    assert {k for h, q, k, w in drawn if h == head} == expected
    for h, q, k, w in drawn:
        assert q == idx and abs(w - P[h][q][k]) <= TO_FIXED_4
    hl = page.eval_on_selector(".hm-highlight", "e => ({token: e.dataset.token, dir: e.dataset.dir, hidden: e.hidden})")
    assert hl == {"token": str(idx), "dir": "out", "hidden": False}
    z = page.evaluate("() => document.getElementById('heatmap').data[0].z")
    for i, row in enumerate(z):
        for j, v in enumerate(row):
            assert (v is None) if j > i else v == exact[i][j]
    best = max(range(len(exact[idx])), key=lambda k: exact[idx][k])
    assert "attends most to" in page.text_content("#describe")
    assert f"({exact[idx][best]:.2f})" in page.text_content("#describe")
    # the heatmap's hover prints the cell's exact weight and (fetched on hover) the same head's pre-softmax score
    h = api(server, "/api/head", text=text, layer=s["layer"], head=head)
    tip = hover_cell(page, idx, best, len(att["tokens"]))
    assert f"weight {h['pattern'][idx][best]:.4f}" in tip and f"score (q·k/√d) {h['scores'][idx][best]:.3f}" in tip, tip
    page.shot("explorer-heatmap-hover")
    # who looks at it: the column (lock the token first: moving to the control leaves the chip)
    page.click(f".chip[data-index='{idx}']")
    page.check("input[name='dir'][value='in']")
    page.wait_for_function("() => document.querySelector('.hm-highlight').dataset.dir === 'in'")
    drawn = arrows(page)
    assert drawn and all(k == idx and abs(w - P[hh][q][k]) <= TO_FIXED_4 for hh, q, k, w in drawn)
    page.shot("explorer-hover-who-looks")
    assert not page.errors and not page.dialogs


def test_predictions_follow_the_hovered_token(page, server):
    page.open(server + "/")
    preds = api(server, "/api/predictions", text=LESSON, top_k=10)
    page.hover(".chip[data-index='3']")
    page.wait_for_function("() => window.attnscope.store.state.token === 3")
    shown = page.eval_on_selector_all(".pred-list li", "ls => ls.map(l => [Number(l.dataset.id), Number(l.dataset.prob)])")
    assert shown == [[p["id"], p["prob"]] for p in preds["predictions"][3]]
    page.eval_on_selector("#temperature", "e => { e.value = '2'; e.dispatchEvent(new Event('input')); }")
    warm = api(server, "/api/predictions", text=LESSON, top_k=10, temperature=2.0)
    page.wait_for_function(f"() => Number(document.querySelector('.pred-list li').dataset.prob) === {warm['predictions'][3][0]['prob']}")
    page.locator(".predictions-panel").screenshot(path=str(page_artifact("predictions")))


def page_artifact(name):
    from tests.e2e.conftest import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def test_switch_model_layer_and_head_then_reload_the_permalink(page, server, browser):
    page.open(server + "/")
    page.select_option("#model", "all-minilm-l6-v2")
    wait_rendered(page, LESSON, model="all-minilm-l6-v2")
    assert page.state()["model"] == "all-minilm-l6-v2"
    assert "encoder" in page.text_content("#predictions")
    page.focus("#layer")
    page.keyboard.press("ArrowRight")  # layer 2 -> 3, by keyboard
    wait_rendered(page, LESSON, model="all-minilm-l6-v2", layer=3)
    page.select_option("#head", "7")
    wait_rendered(page, LESSON, layer=3, head=7)
    att = api(server, "/api/attention", text=LESSON, model="all-minilm-l6-v2", layers=[3])
    z = page.evaluate("() => document.getElementById('heatmap').data[0].z")
    P = att["attention"]["3"][7]
    assert all(abs(z[i][j] - P[i][j]) <= 1e-4 for i in range(len(P)) for j in range(len(P)))  # an encoder masks nothing
    page.click(".chip[data-index='4']")  # lock
    page.check("input[name='dir'][value='in']")
    # the URL follows the state after a short debounce: wait for it, not for a guessed time
    page.wait_for_function("() => { const q = new URL(location.href).searchParams;"
                           " return q.get('dir') === 'in' && q.get('token') === '4' && q.get('locked') !== null; }")
    before = page.state()
    assert before["locked"] and before["token"] == 4
    link = page.url
    assert "model=all-minilm-l6-v2" in link and "layer=3" in link and "head=7" in link
    other = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    other.goto(link)
    other.wait_for_selector("body[data-ready='1']")
    after = other.evaluate("() => ({...window.attnscope.store.state})")
    assert {k: after[k] for k in before} == before
    assert other.eval_on_selector(".hm-highlight", "e => [e.dataset.token, e.dataset.dir, e.hidden]") == ["4", "in", False]
    assert other.is_visible("#lock")
    other.context.close()


def test_grid_click_selects_a_head(page, server):
    page.open(server + "/")
    page.wait_for_function("() => window.attnscope?.rendered?.grid")
    g = page.evaluate("() => window.attnscope.geometry('grid')")
    page.locator("#grid canvas").click(position={"x": g["left"] + 5 * g["pitch"] + 4, "y": g["top"] + 6 * g["pitch"] + 4})
    wait_rendered(page, LESSON, layer=5, head=6)
    assert page.eval_on_selector("#head", "e => e.value") == "6"
    page.locator(".grid-panel").screenshot(path=str(page_artifact("grid")))
    page.locator(".heatmap-panel").screenshot(path=str(page_artifact("heatmap")))
    page.locator(".lines-panel").screenshot(path=str(page_artifact("lines")))


def test_keyboard_only(page, server):
    page.open(server + "/")
    page.focus("#text")
    for _ in range(40):  # Tab until a token chip has focus
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('chip')"):
            break
    else:
        pytest.fail("no token chip is reachable with Tab")
    assert page.state()["token"] == 0
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.state()["token"] == 2
    page.keyboard.press("Enter")
    assert page.state()["locked"] is True
    page.mouse.move(5, 5)  # leaving with the mouse keeps a locked token
    page.keyboard.press("ArrowRight")
    assert page.state() | {} and page.state()["token"] == 3 and page.state()["locked"]
    assert page.is_visible("#lock")
    page.keyboard.press("Escape")
    s = page.state()
    assert s["locked"] is False and not page.is_visible("#lock")


def test_click_locks_and_click_again_releases(page, server):
    page.open(server + "/")
    page.click(".chip[data-index='5']")
    assert page.state()["locked"] and page.state()["token"] == 5
    page.hover(".chip[data-index='1']")
    assert page.state()["token"] == 5  # hover does not move a lock
    page.click(".chip[data-index='5']")
    assert page.state()["locked"] is False


HOSTILE = [
    "<img src=x onerror=alert(1)> and <script>alert(2)</script>",
    "\"'><svg onload=alert(3)>",
    "RTL \u202eevil\u202c text עברית 🦊🐻‍❄️ NUL\u0000here",
    "<b>bold?</b> <a href='javascript:alert(4)'>link</a> &amp; &lt;",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_shown_as_text_and_runs_nothing(page, server, text):
    page.open(server + "/")
    type_text(page, text)
    wait_rendered(page, text)
    page.hover(".chip[data-index='1']")
    page.wait_for_function("() => window.attnscope.store.state.token === 1")  # the hover was handled
    settle(page)
    assert not page.dialogs, page.dialogs
    assert not page.errors, page.errors
    assert page.evaluate("() => document.querySelectorAll('img[src=x], svg[onload], script:not([src]):not([type])').length") == 0
    chips = "".join(page.eval_on_selector_all(".chip", "cs => cs.map(c => c.textContent)"))
    if "<img" in text:
        assert "<img" in chips
    ticks = page.evaluate("() => document.getElementById('heatmap').layout.xaxis.ticktext.join('')")
    assert "<" not in ticks  # plotly gets entities, so its tag parser sees none


def test_errors_are_clear_and_recoverable(page, server):
    page.open(server + "/")
    type_text(page, "word " * 600)
    page.wait_for_selector("#error:not([hidden])")
    assert "tokens" in page.text_content("#error") and "512" in page.text_content("#error")
    type_text(page, "   ")
    page.wait_for_function("() => document.getElementById('error').textContent.includes('empty')")
    type_text(page, "back to normal")
    wait_rendered(page, "back to normal")
    assert page.is_hidden("#error")


def test_a_300_token_text_renders(page, server):
    text = " ".join(f"word{i}" for i in range(150))
    n = len(api(server, "/api/attention", text=text, layers=[0])["tokens"])
    assert 280 <= n <= 512
    page.open(server + "/")
    type_text(page, text)
    wait_rendered(page, text)
    assert page.eval_on_selector_all(".chip", "cs => cs.length") == n
    page.hover(".chip[data-index='200']")
    page.wait_for_function("() => window.attnscope.store.state.token === 200")
    assert 0 < len(arrows(page)) <= 400
    assert not page.errors
    page.shot("explorer-300-tokens")


@pytest.mark.parametrize("width,scheme", [(390, "dark"), (1920, "light")])
def test_layouts_from_phone_to_projector(browser, server, width, scheme):
    ctx = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    p = ctx.new_page()
    errors = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.goto(server + "/?token=3&locked=1")
    p.wait_for_selector("body[data-ready='1']")
    p.wait_for_function("() => window.attnscope.rendered && window.attnscope.rendered.grid")
    overflow = p.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"page is {overflow}px wider than a {width}px screen"
    for bar in p.query_selector_all(".export-bar"):  # the export toolbars stay inside their panels
        panel = bar.evaluate("b => { const r = b.getBoundingClientRect(), p = b.closest('.panel').getBoundingClientRect();"
                             " return [r.left - p.left, p.right - r.right, r.height]; }")
        assert panel[0] >= 0 and panel[1] >= 0, panel
    for btn in p.query_selector_all(".export-btn"):
        assert btn.bounding_box()["height"] >= 24  # a touch target
    page_shot = page_artifact(f"explorer-{width}-{scheme}")
    p.screenshot(path=str(page_shot), full_page=True)
    p.locator(".arrows-panel").screenshot(path=str(page_artifact(f"export-arrows-panel-{width}-{scheme}")))
    assert not errors
    ctx.close()


def test_switching_a_head_off_moves_the_probabilities(page, server):
    text = "The capital of France is"
    page.open(server + "/?text=" + text.replace(" ", "%20"))
    page.wait_for_function("() => window.attnscope?.rendered?.grid")
    before = page.eval_on_selector_all(".pred-list li", "ls => ls.map(l => Number(l.dataset.prob))")
    g = page.evaluate("() => window.attnscope.geometry('grid')")
    at = lambda L, H: {"x": g["left"] + L * g["pitch"] + 4, "y": g["top"] + H * g["pitch"] + 4}  # noqa: E731
    page.locator("#grid canvas").click(position=at(20, 1), modifiers=["Shift"])
    page.wait_for_function("() => window.attnscope.store.state.headsOff.join() === '20.1'")
    page.check("#switch-mode")  # the touch-friendly toggle: a plain click switches off
    page.locator("#grid canvas").click(position=at(25, 3))
    page.wait_for_function("() => document.querySelectorAll('.off-chip').length === 2")
    api = httpx.post(server + "/api/predictions", json={"text": text, "top_k": 10, "ablate": [[20, 1], [25, 3]]}, timeout=60).json()
    page.wait_for_function(f"() => Number(document.querySelector('.pred-list li').dataset.prob) === {api['predictions'][-1][0]['prob']}")
    shown = page.eval_on_selector_all(".pred-list li", "ls => ls.map(l => [Number(l.dataset.id), Number(l.dataset.prob)])")
    assert shown == [[p["id"], p["prob"]] for p in api["predictions"][-1]]
    assert [p[1] for p in shown] != before
    assert page.state()["layer"] == 2  # switching off does not select
    page.wait_for_function("() => /off=20\\.1(%2C|,)25\\.3/.test(location.search)")  # the URL follows 150 ms after a change
    page.locator(".predictions-panel").screenshot(path=str(page_artifact("predictions-heads-off")))
    page.click("#off-clear")
    page.wait_for_function(f"() => Number(document.querySelector('.pred-list li').dataset.prob) === {before[0]}")
    assert not page.errors


def test_an_empty_text_box_shows_the_empty_state(page, server):
    page.open(server + "/")
    page.fill("#text", "")
    page.wait_for_selector("#empty:not([hidden])")
    page.wait_for_function("() => document.getElementById('arrows-panel').classList.contains('empty')")
    assert page.is_hidden("#error")
    assert page.evaluate("() => window.attnscope.settled().then(() => true)")
    type_text(page, "back again")
    wait_rendered(page, "back again")
    assert page.is_hidden("#empty")
    assert not page.errors, page.errors


def test_switching_model_keeps_the_lock_on_the_same_characters(page, server):
    page.open(server + "/")
    smol = api(server, "/api/attention", text=LESSON, layers=[0])["tokens"]
    bert = api(server, "/api/attention", text=LESSON, model="all-minilm-l6-v2", layers=[0])["tokens"]
    i = next(k for k, t in enumerate(smol) if t["text"] == " creature")
    page.click(f".chip[data-index='{i}']")
    page.select_option("#model", "all-minilm-l6-v2")
    wait_rendered(page, LESSON, model="all-minilm-l6-v2")
    j = next(k for k, t in enumerate(bert) if t["text"] == "creature")
    s = page.state()
    assert (s["token"], s["locked"]) == (j, True)
    assert page.text_content("#lock-token") == "creature"
    assert page.eval_on_selector(".chip.focus", "c => c.dataset.index") == str(j)
    # a word the new model splits: the lock goes to its last piece, the one that has read it all
    v = next(k for k, t in enumerate(bert) if t["text"] == "t" and t["start"] == 40)
    page.click(f".chip[data-index='{v}']")
    page.select_option("#model", "smollm2-135m-instruct")
    wait_rendered(page, LESSON, model="smollm2-135m-instruct")
    assert page.state()["token"] == next(k for k, t in enumerate(smol) if t["text"] == "ant") and page.state()["locked"]
    assert page.is_hidden("#temperature-row") is False
    assert not page.errors, page.errors


def test_probabilities_read_as_people_read_them(page, server):
    page.open(server + "/")
    shown = page.evaluate("""async () => { const { percent } = await import('/static/js/views/predictions.js');
        return [0, 1e-9, 0.0004, 0.0005, 0.0123, 0.5, 1].map(percent); }""")
    assert shown == ["<0.1%", "<0.1%", "<0.1%", "0.1%", "1.2%", "50.0%", "100.0%"]
    texts = page.eval_on_selector_all(".pred-prob", "ps => ps.map(p => p.textContent)")
    assert texts and not any("e" in t for t in texts), texts
    widths = page.eval_on_selector_all(".pred-bar", "bs => bs.map(b => Math.round(b.getBoundingClientRect().width))")
    assert len(set(widths)) == 1, widths  # every bar track equally long
    # with heads off the change in points is written too: the tracks stay equal
    page.evaluate("() => window.attnscope.store.set({headsOff: ['20.1']})")
    page.wait_for_function("() => document.querySelector('.pred-prob').textContent.includes('(')")
    page.evaluate("() => window.attnscope.settled()")
    widths = page.eval_on_selector_all(".pred-bar", "bs => bs.map(b => Math.round(b.getBoundingClientRect().width))")
    assert len(set(widths)) == 1, widths


def test_the_first_view_is_drawn_from_the_page_alone(page, server):
    """The server's inline data is the first view's: no API request until the state changes."""
    asked = []
    page.on("request", lambda r: "/api/" in r.url and asked.append(r.url))
    page.open(server + "/?" + "text=two%20words&layer=4&head=1&t=1.5&off=3.2")
    page.evaluate("() => window.attnscope.settled()")
    assert asked == [] and page.evaluate("() => window.attnscope.rendered.grid")
    page.eval_on_selector("#layer", "e => { e.value = '5'; e.dispatchEvent(new Event('input', {bubbles: true})); }")
    page.evaluate("() => window.attnscope.settled()")
    assert [u.rsplit("/", 1)[1] for u in asked] == ["attention", "head"]  # the layer's two needs, nothing else


def test_what_it_moved_beside_where_it_looks(page, server):
    page.open(server + "/?token=3&locked=1")
    page.check("input[name='measure'][value='moved']")
    page.evaluate("() => window.attnscope.settled()")
    s = page.state()
    moved = api(server, "/api/attention", text=LESSON, layers=[s["layer"]], measure="moved")["attention"][str(s["layer"])]
    heat = page.evaluate("() => { const e = document.getElementById('heatmap'); return [e.data[0].z, e.data[0].zmax, e.layout.title.text]; }")
    M = moved[s["head"]]
    assert exact_head(server, s["layer"], s["head"], "moved", text=LESSON) == M  # the head's floats are the layer's
    assert heat[2] == f"layer {s['layer']}, head {s['head']} · what it moved" and heat[1] == max(max(r) for r in M)
    assert all(v is None if j > i else v == M[i][j] for i, row in enumerate(heat[0]) for j, v in enumerate(row))
    drawn = arrows(page)
    _, D = drawn_layer(server, s["layer"], "moved", text=LESSON)  # the arrows draw the layer's bytes
    assert drawn and all(q == 3 and abs(w - D[h][q][k]) <= TO_FIXED_4 for h, q, k, w in drawn)
    # the hover prints the cell's moved and (fetched on hover) its weight, both the API's
    h = api(server, "/api/head", text=LESSON, layer=s["layer"], head=s["head"], parts=["pattern"])
    tip = hover_cell(page, 3, 1, len(M))
    assert f"moved {M[3][1]:.4f}" in tip and f"weight {h['pattern'][3][1]:.4f}" in tip, tip
    assert "takes most from" in page.text_content("#describe")
    page.wait_for_function("() => location.search.includes('measure=moved')")
    assert page.get_attribute("a[data-export-link='heatmap.json']", "href").endswith("&measure=moved")  # the server's file of what moved
    page.locator(".arrows-panel").screenshot(path=str(page_artifact("moved-arrows")))
    page.locator(".heatmap-panel").screenshot(path=str(page_artifact("moved-heatmap")))
    page.locator(".grid-panel").screenshot(path=str(page_artifact("moved-grid")))
    page.open(page.url)  # the permalink: the server's first view is what moved too, with no request
    assert page.evaluate("() => document.getElementById('heatmap').layout.title.text").endswith("what it moved")
    page.check("input[name='measure'][value='weight']")
    page.evaluate("() => window.attnscope.settled()")
    assert page.evaluate("() => document.getElementById('heatmap').data[0].zmax") == 1
    assert page.get_attribute("a[data-export-link='heatmap.json']", "href").startswith("/export/heatmap.json?")
    assert not page.errors, page.errors


def test_why_this_prediction(page, server):
    text = "The capital of France is"
    page.open(server + "/?text=" + text.replace(" ", "%20"))
    assert page.is_visible("#why-panel") and "No token picked" in page.text_content("#why")
    first = page.eval_on_selector(".pred-list li", "l => Number(l.dataset.id)")
    page.click(".pred-list li:first-child button.pred-token")
    page.evaluate("() => window.attnscope.settled()")
    a = api(server, "/api/attribution", text=text, target=first)
    z = page.evaluate("() => document.querySelector('#why .attr-map').data[0].z")  # [head][layer]
    assert z == [[a["heads"][L][h] for L in range(len(a["heads"]))] for h in range(len(a["heads"][0]))]
    assert page.evaluate("() => document.querySelector('#why .attr-mlps').data[0].y") == a["mlps"]
    assert f"is {a['value']:.2f}" in page.text_content(".attr-summary")
    assert page.get_attribute(".pred-list li:first-child", "aria-current") == "true"
    # against the runner-up: the difference of the two logits
    second = page.eval_on_selector(".pred-list li:nth-child(2)", "l => Number(l.dataset.id)")
    page.select_option("#why-vs", str(second))
    page.evaluate("() => window.attnscope.settled()")
    vs = api(server, "/api/attribution", text=text, target=first, contrast=second)
    assert f"is {vs['value']:.2f}" in page.text_content(".attr-summary") and "logit(" in page.text_content(".attr-summary")
    page.wait_for_function(f"() => location.search.includes('target={first}') && location.search.includes('vs={second}')")
    # a top head's link selects it in the views above
    top = page.text_content(".attr-top li:first-child button")
    page.click(".attr-top li:first-child button")
    s = page.state()
    assert top.startswith(f"layer {s['layer']}, head {s['head']}:")
    page.locator("#why-panel").screenshot(path=str(page_artifact("why-this-prediction")))
    # a new text forgets the explained token (it was a position of the old one)
    type_text(page, "another text")
    wait_rendered(page, "another text")
    assert page.state()["whyTarget"] == -1 and "No token picked" in page.text_content("#why")
    assert not page.errors, page.errors
