"""The explorer's split view (static/js/explorer/side.js): the same sentence in a second model beside the
first, each side drawn from the API's answers for its own model, layer and head, in the URL."""

import json
from urllib.parse import parse_qs, urlparse

from tests.e2e.conftest import WAIT_MS
from tests.e2e.test_explorer import api, hover_cell, settle, wait_rendered
from tests.e2e.wire import TO_FIXED_4, drawn_layer, exact_head

TEXT = "The cat sat on the mat because it was tired"
SMOL, MINI = "smollm2-135m-instruct", "all-minilm-l6-v2"
SPLIT = f"/?text={TEXT.replace(' ', '+')}&layer=3&head=2&cmp={MINI}&cmpl=2&cmph=5"


def wait_side(page, model, layer, head, text=TEXT):
    """Wait until side B shows this model, layer and head (its heatmap as the chart, not its picture)."""
    page.wait_for_function("""([text, model, layer, head]) => { const b = window.attnscope.side;
        return b && b.text === text && b.model === model && b.layer === layer && b.head === head && !b.preview; }""",
                           arg=[text, model, layer, head], timeout=WAIT_MS)
    page.evaluate("() => window.attnscope.settled()")


def query(page) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def wait_url(page, **want):
    """The URL (written 150 ms after a change) holds these values (None: the key is absent)."""
    page.wait_for_function("""(want) => { const q = new URLSearchParams(location.search);
        return Object.entries(want).every(([k, v]) => q.get(k) === v); }""", arg=want)


def side_arrows(page):
    return page.eval_on_selector_all(
        "#side-arrows svg.arrow-layer path[data-head]",
        "ps => ps.map(p => [Number(p.dataset.head), Number(p.dataset.query), Number(p.dataset.key), Number(p.dataset.weight)])")


def check_side(page, server, model, layer, head, token):
    """Side B's arrows (hovering its token), heatmap cells and predictions are the API's for its state."""
    att, P = drawn_layer(server, layer, text=TEXT, model=model)
    exact = exact_head(server, layer, head, text=TEXT, model=model)
    page.hover(f"#side-arrows .chip[data-index='{token}']")
    page.wait_for_function(f"() => document.querySelector(\"#side-arrows .chip[data-index='{token}']\").classList.contains('focus')")
    drawn = side_arrows(page)
    assert {k for h, q, k, w in drawn} == {k for k, w in enumerate(P[head][token]) if w > 0.005}
    for h, q, k, w in drawn:
        assert h == head and q == token and abs(w - P[h][q][k]) <= TO_FIXED_4
    z = page.evaluate("() => document.getElementById('side-heatmap').data[0].z")
    causal = att["causal"]
    for i, row in enumerate(z):
        for j, v in enumerate(row):
            assert (v is None) if (causal and j > i) else v == exact[i][j]
    chips = page.eval_on_selector_all("#side-arrows .chip", "cs => cs.map(c => c.textContent)")
    assert len(chips) == len(att["tokens"])
    if causal:
        want = api(server, "/api/predictions", text=TEXT, model=model, top_k=10)["predictions"][token]
        shown = page.eval_on_selector_all("#side-predictions .pred-list li", "ls => ls.map(l => [Number(l.dataset.id), Number(l.dataset.prob)])")
        assert shown == [[p["id"], p["prob"]] for p in want]
    else:
        assert "encoder" in page.text_content("#side-predictions") and page.locator("#side-predictions li").count() == 0
    return att


def test_a_split_url_shows_each_models_own_numbers(page, server):
    page.open(server + SPLIT)
    wait_rendered(page, TEXT, model=SMOL, layer=3, head=2)
    wait_side(page, MINI, 2, 5)
    assert page.is_visible("#side-panel") and "all-MiniLM-L6-v2" in page.text_content("#side-b-name")
    assert "layer 2" in page.text_content("#side-b-name") and "head 5" in page.text_content("#side-b-name")
    assert "SmolLM2" in page.text_content("#side-a-name")
    # A's other panels say they are A's (at 1280 px the grid sits in the column under B)
    assert page.evaluate("""() => ['pred-h', 'why-h', 'heat-h', 'lines-h', 'grid-h']
        .every(id => getComputedStyle(document.getElementById(id), '::before').content === '"A · "')""")
    # side A: its own numbers, as test_explorer checks them for the one-model explorer
    att, P = drawn_layer(server, 3, text=TEXT)
    idx = next(i for i, t in enumerate(att["tokens"]) if t["text"] == " it")
    page.hover(f"#arrows .chip[data-index='{idx}']")
    page.wait_for_function(f"() => window.attnscope.store.state.token === {idx}")
    for h, q, k, w in page.eval_on_selector_all("#arrows svg.arrow-layer path[data-head]",
                                                "ps => ps.map(p => [+p.dataset.head, +p.dataset.query, +p.dataset.key, +p.dataset.weight])"):
        assert q == idx and abs(w - P[h][q][k]) <= TO_FIXED_4
    assert page.evaluate("() => document.getElementById('heatmap').data[0].z")[idx][0] == exact_head(server, 3, 2, text=TEXT)[idx][0]
    # side B: the encoder's tokens ([CLS] ... [SEP]), arrows, heatmap; no predictions, and it says why
    b = check_side(page, server, MINI, 2, 5, token=3)
    assert b["tokens"][0]["text"] == "[CLS]"
    assert "tokenizers differ" in page.text_content("#side-tokens")
    # B's heatmap hover: the cell's exact weight and its score, both of B's model, layer and head
    n, (q, k) = len(b["tokens"]), (4, 2)
    tip = hover_cell(page, q, k, n, "side-heatmap", "() => { const s = document.getElementById('side-heatmap')._fullLayout._size; return {l: s.l, t: s.t, w: s.w, h: s.h}; }")
    h = api(server, "/api/head", text=TEXT, model=MINI, layer=2, head=5)
    assert f"weight {h['pattern'][q][k]:.4f}" in tip and f"score (q·k/√d) {h['scores'][q][k]:.3f}" in tip, tip
    page.shot("side-by-side-1280")
    assert not page.errors


def test_each_sides_pickers_change_only_that_side_and_the_url(page, server):
    page.open(server + SPLIT)
    wait_rendered(page, TEXT, model=SMOL, layer=3, head=2)
    wait_side(page, MINI, 2, 5)
    page.eval_on_selector("#cmp-layer", "e => { e.value = '4'; e.dispatchEvent(new Event('input')); }")
    wait_side(page, MINI, 4, 5)
    wait_url(page, cmp=MINI, cmpl="4", cmph="5", layer="3", head="2")
    assert page.state()["layer"] == 3 and page.input_value("#layer") == "3"
    page.select_option("#cmp-head", "7")
    wait_side(page, MINI, 4, 7)
    wait_url(page, cmpl="4", cmph="7", head="2")
    check_side(page, server, MINI, 4, 7, token=5)
    # side A's pickers leave B alone
    page.select_option("#head", "6")
    wait_rendered(page, TEXT, model=SMOL, layer=3, head=6)
    wait_url(page, head="6", cmph="7", cmpl="4")
    assert page.evaluate("() => window.attnscope.side")["head"] == 7
    # B's model: the same model as A at another layer (B's head is clamped to the 9 heads it has)
    page.select_option("#cmp-model", SMOL)
    wait_side(page, SMOL, 4, 7)
    wait_url(page, cmp=SMOL, cmpl="4", cmph="7")
    assert page.locator("#cmp-layer").get_attribute("max") == "29" and page.locator("#cmp-head option").count() == 9
    check_side(page, server, SMOL, 4, 7, token=7)
    assert "same tokens" in page.text_content("#side-tokens")
    # closing: the one-model explorer, and a URL without side B
    page.click("#cmp-close")
    wait_url(page, cmp=None, cmpl=None, cmph=None, head="6")
    assert page.is_hidden("#side-panel") and not page.evaluate("() => document.body.classList.contains('split')")
    assert not page.errors


def test_a_token_on_one_side_highlights_the_tokens_sharing_its_characters(page, server):
    page.open(server + SPLIT)
    wait_rendered(page, TEXT, model=SMOL, layer=3, head=2)
    wait_side(page, MINI, 2, 5)
    a = drawn_layer(server, 3, text=TEXT)[0]["tokens"]
    b = drawn_layer(server, 2, text=TEXT, model=MINI)[0]["tokens"]
    overlap = lambda t, toks: [i for i, u in enumerate(toks) if u["end"] > u["start"] and u["start"] < t["end"] and u["end"] > t["start"]]
    linked = lambda side: page.eval_on_selector_all(f"#{side} .chip.linked", "cs => cs.map(c => Number(c.dataset.index))")
    for i in range(len(a)):  # A's token -> B's tokens by span (B's arrows then start at the last of them)
        page.hover(f"#arrows .chip[data-index='{i}']")
        page.wait_for_function(f"() => window.attnscope.store.state.token === {i}")
        page.evaluate("() => window.attnscope.settled()")
        assert linked("side-arrows") == overlap(a[i], b), (i, a[i])
    page.mouse.move(1, 1)
    for j in (0, 1, len(b) - 2, len(b) - 1):  # B's token -> A's by span ([CLS] and [SEP] have no characters: none)
        page.hover(f"#side-arrows .chip[data-index='{j}']")
        page.wait_for_function(f"() => document.querySelector(\"#side-arrows .chip[data-index='{j}']\").classList.contains('focus')")
        settle(page)
        assert linked("arrows") == overlap(b[j], a), (j, b[j])
    assert not page.errors


def test_a_late_answer_for_sides_old_layer_never_draws(page, server):
    """B's answers are held; B's layer is switched; the old layer's answers then arrive: B never draws
    them (it says it waits for the new layer), and draws the new layer's numbers once they come."""
    held = []

    def route(r):
        body = json.loads(r.request.post_data or "{}")
        if body.get("model") == MINI:
            held.append((body, r))
        else:
            r.continue_()

    page.route("**/api/*", route)
    page.open(server + f"/?text={TEXT.replace(' ', '+')}")
    wait_rendered(page, TEXT, model=SMOL)
    page.select_option("#cmp", MINI)
    page.wait_for_function("() => document.querySelector('#side-panel .updating-note')")
    assert page.evaluate("() => window.attnscope.side") is None and "layer 0" in page.text_content("#side-panel .updating-note")
    page.eval_on_selector("#cmp-layer", "e => { e.value = '3'; e.dispatchEvent(new Event('input')); }")
    page.wait_for_function("() => document.querySelector('#side-panel .updating-note')?.textContent.includes('layer 3')")
    old = [(b, r) for b, r in held if b.get("layers") == [0] or b.get("layer") == 0]
    assert old, [b for b, _ in held]
    for b, r in old:
        held.remove((b, r))
        try:
            r.continue_()
        except Exception:  # the page aborted it (nobody wants layer 0 any more): it can then never land at all
            continue
        r.request.response()  # its answer is in the page (None if the page had aborted it)
    settle(page)
    page.evaluate("() => new Promise((r) => setTimeout(r))")  # a task after it: the fetch's json() and the cache's event have run
    settle(page)
    assert page.evaluate("() => window.attnscope.side") is None
    assert page.locator("#side-arrows .chip").count() == 0
    assert "layer 3" in page.text_content("#side-b-name") and "layer 3" in page.text_content("#side-panel .updating-note")
    new = [(b, r) for b, r in held if b.get("layers") == [3] or b.get("layer") == 3]
    assert new, [b for b, _ in held]
    for b, r in list(held):
        held.remove((b, r))
        try:
            r.continue_()
        except Exception:  # a request the page had already given up (an earlier state's)
            pass
    page.unroute("**/api/*")
    wait_side(page, MINI, 3, 0)
    check_side(page, server, MINI, 3, 0, token=4)
    # the old layer's numbers in the cache (a step back is instant) and the new one's held: B says it waits
    # for the new layer, never shows the old one's numbers as the new one's
    page.route("**/api/*", route)
    page.eval_on_selector("#cmp-layer", "e => { e.value = '1'; e.dispatchEvent(new Event('input')); }")
    page.wait_for_function("() => document.querySelector('#side-panel .updating-note')?.textContent.includes('layer 1')")
    assert page.evaluate("() => window.attnscope.side") is None and "updating" in page.get_attribute("#side-panel", "class")
    page.eval_on_selector("#cmp-layer", "e => { e.value = '3'; e.dispatchEvent(new Event('input')); }")  # back: drawn at once from the cache
    wait_side(page, MINI, 3, 0)
    page.unroute("**/api/*")
    for b, r in held:
        try:
            r.continue_()
        except Exception:  # given up by the page (layer 1 is nobody's state now)
            pass
    assert not page.errors


def test_reload_brings_the_split_back_and_a_phone_stacks_it(browser, server):
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    from tests.e2e.conftest import Page

    page = Page(ctx.new_page())
    try:
        page.open(server + SPLIT)
        wait_rendered(page, TEXT, model=SMOL, layer=3, head=2)
        wait_side(page, MINI, 2, 5)
        page.select_option("#cmp-head", "9")
        wait_side(page, MINI, 2, 9)
        wait_url(page, cmph="9")
        page.reload()
        page.ready()
        wait_rendered(page, TEXT, model=SMOL, layer=3, head=2)
        wait_side(page, MINI, 2, 9)
        assert page.state()["cmp"] == MINI and page.input_value("#cmp-head") == "9" and page.input_value("#cmp-layer") == "2"
        # at 390 px the sides stack, A above B, and nothing scrolls sideways
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        a, b = page.locator("#arrows-panel").bounding_box(), page.locator("#side-panel").bounding_box()
        assert b["y"] >= a["y"] + a["height"] and abs(a["x"] - b["x"]) < 1 and b["x"] + b["width"] <= 390
        page.shot("side-by-side-390")
        # a layer or head out of B's range (a hand-edited link) is clamped to its model's config
        page.open(server + SPLIT.replace("cmpl=2", "cmpl=99").replace("cmph=5", "cmph=99"))
        wait_side(page, MINI, 5, 11)
        # a model that is not configured: the one-model explorer, no error
        page.open(server + SPLIT.replace(f"cmp={MINI}", "cmp=no-such-model"))
        wait_rendered(page, TEXT, model=SMOL, layer=3, head=2)
        assert page.state()["cmp"] == "" and page.is_hidden("#side-panel") and "cmp=" not in page.evaluate("() => window.attnscope.store.query()")
        assert not page.errors
    finally:
        ctx.close()


def test_printing_redraws_side_b_for_the_paper(page, server):
    """Print lays the page out at the paper's width; B's arrows are redrawn for it as A's are, within the
    beforeprint task (what the browser prints), so each arrow still ends at its own chip."""
    page.open(server + SPLIT)
    wait_rendered(page, TEXT, model=SMOL, layer=3, head=2)
    wait_side(page, MINI, 2, 5)
    measure = """() => { const el = document.getElementById('side-arrows');
        return {svg: +el.querySelector('svg.arrow-layer').getAttribute('width'), box: el.getBoundingClientRect().width}; }"""
    before = page.evaluate(measure)
    printed = page.evaluate("() => { window.dispatchEvent(new Event('beforeprint')); return (" + measure + ")(); }")
    assert abs(printed["box"] - before["box"]) > 10  # one column on paper: B's box is not its screen column's width
    assert abs(printed["svg"] - printed["box"]) < 1, printed
    # and what prints leaves out B's Close, the writing box and the "+" of each prediction
    page.emulate_media(media="print")
    assert page.evaluate("""() => ['#cmp-close', '#write', '.pred-append']
        .flatMap(s => [...document.querySelectorAll(s)]).every(e => getComputedStyle(e).display === 'none')""")
    page.emulate_media(media="screen")
    page.evaluate("() => window.dispatchEvent(new Event('afterprint'))")
    assert not page.errors
