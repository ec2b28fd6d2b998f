"""Ready for a classroom, in Chromium: presentation mode (in the URL, large type, stepping keys, Esc to
leave), print (navigation and controls hidden, views redrawn for the paper, one lesson section a page)
and phones (no page wider than the screen at 320 and 390 px, a one-line navigation, no plotly mode bar
over a chart's title or legend)."""

import re

import pytest

from tests.e2e.conftest import Page

PAGES = ["/lesson", "/", "/explain", "/compare", "/lens"]
PHONE_PAGES = PAGES


def font_px(page, selector="body") -> float:
    return page.evaluate(f"() => parseFloat(getComputedStyle(document.querySelector('{selector}')).fontSize)")


@pytest.mark.parametrize("path", PAGES)
def test_presentation_mode_is_in_the_url_large_and_leaves_with_esc(page, server, path):
    page.open(f"{server}{path}")
    normal = font_px(page)
    assert page.is_visible("nav.nav") and not page.is_visible(".present-bar")
    page.click("#present-open")  # a click: the page also asks for full screen (headless may refuse it)
    page.wait_for_function("() => document.documentElement.classList.contains('present')")
    assert font_px(page) >= 1.3 * normal
    assert not page.is_visible("nav.nav") and not page.is_visible("footer.foot") and page.is_visible(".present-bar")
    assert page.evaluate("() => [...document.querySelectorAll('.export-bar, .hint')].every(e => !e.offsetParent)")
    page.wait_for_function("() => new URL(location.href).searchParams.get('present') === '1'")
    # a permalink opens in the mode, drawn with the larger type from the first paint
    url = page.url
    page.open(url)
    assert page.evaluate("() => document.documentElement.classList.contains('present')") and font_px(page) >= 1.3 * normal
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.documentElement.classList.contains('present')")
    page.wait_for_function("() => !new URL(location.href).searchParams.has('present')")
    assert page.is_visible("nav.nav") and page.errors == [], page.errors


def test_presenting_the_explorer_steps_through_heads_and_the_url_keeps_both(page, server):
    page.open(f"{server}/?present=1&layer=2&head=8")
    page.keyboard.press("PageDown")  # head 8 is a layer's last: on to layer 3, head 0
    page.wait_for_function("() => window.attnscope.store.state.layer === 3 && window.attnscope.store.state.head === 0")
    page.evaluate("() => window.attnscope.settled()")
    assert page.text_content(".present-where") == "layer 3 · head 0"
    page.wait_for_function("() => { const q = new URL(location.href).searchParams; return q.get('layer') === '3' && q.get('present') === '1'; }")
    page.click(".present-prev")
    page.wait_for_function("() => window.attnscope.store.state.layer === 2 && window.attnscope.store.state.head === 8")
    page.evaluate("() => window.attnscope.settled()")
    assert page.text_content(".present-where") == "layer 2 · head 8"
    # what is drawn is that head's: the heatmap's title follows
    assert "layer 2, head 8" in page.text_content("#heatmap")
    assert page.errors == []


def test_presenting_explain_steps_with_its_own_steps(page, server):
    page.open(f"{server}/explain?present=1&step=1")
    page.keyboard.press("PageDown")
    page.wait_for_function("() => new URL(location.href).searchParams.get('step') === '2'")
    page.click(".present-next")
    page.wait_for_function("() => new URL(location.href).searchParams.get('step') === '3'")
    assert page.text_content(".present-where").startswith("step 3 of ")
    assert new_url_has_present(page)


def new_url_has_present(page) -> bool:
    return page.evaluate("() => new URL(location.href).searchParams.get('present') === '1'")


def test_presenting_the_lesson_goes_section_by_section(page, server):
    page.open(f"{server}/lesson?present=1")
    tops = lambda: page.evaluate("() => [...document.querySelectorAll('main article > section')].map(s => Math.round(s.getBoundingClientRect().top))")  # noqa: E731
    for k in (1, 2):
        page.keyboard.press("PageDown")
        page.wait_for_function(f"() => Math.abs(document.querySelectorAll('main article > section')[{k}].getBoundingClientRect().top) < 12")
    page.keyboard.press("PageUp")
    page.wait_for_function("() => Math.abs(document.querySelectorAll('main article > section')[1].getBoundingClientRect().top) < 12")
    assert len(tops()) >= 6 and page.errors == []


@pytest.mark.parametrize("path", PAGES)
def test_print_hides_navigation_and_controls(page, server, path):
    page.open(f"{server}{path}")
    page.emulate_media(media="print")
    hidden = page.evaluate("""() => ['nav.nav', '.top-actions', 'footer.foot', '.export-bar', '.controls', '.hint']
        .flatMap(s => [...document.querySelectorAll(s)]).every(e => getComputedStyle(e).display === 'none')""")
    assert hidden
    assert page.evaluate("() => getComputedStyle(document.querySelector('main')).flexDirection") == "column"  # one column
    page.emulate_media(media="screen")


def test_printing_redraws_the_explorer_for_the_paper_and_back(page, server):
    page.open(f"{server}/")
    page.evaluate("() => window.attnscope.settled()")
    wide = page.evaluate("() => document.querySelector('#lines canvas').getBoundingClientRect().width")
    page.evaluate("() => window.dispatchEvent(new Event('beforeprint'))")
    # drawn within the event's task: what the browser prints when the handlers return
    printed = page.evaluate("""() => ({lines: document.querySelector('#lines canvas').getBoundingClientRect().width,
        heat: document.getElementById('heatmap')._fullLayout.width, body: document.body.getBoundingClientRect().width,
        box: document.getElementById('lines').clientWidth, heatBox: document.getElementById('heatmap').getBoundingClientRect().right,
        title: document.querySelector('#heatmap .cbtitle text').getBoundingClientRect().right,
        heatDiv: document.getElementById('heatmap').clientWidth})""")
    # the chart as wide as its own box (not its panel's, padding and all): the colour bar's title stays on paper
    assert printed["heat"] <= printed["heatDiv"] and printed["title"] <= printed["heatBox"], printed
    # the body at the paper's width; the canvas redrawn to its new box (wider: one column on paper)
    assert printed["body"] == 700 and printed["heat"] <= 700
    assert abs(printed["lines"] - printed["box"]) < 2 and abs(printed["lines"] - wide) > 50
    page.evaluate("() => window.dispatchEvent(new Event('afterprint'))")
    page.wait_for_function(f"() => Math.abs(document.querySelector('#lines canvas').getBoundingClientRect().width - {wide}) < 2")
    assert page.errors == []


def test_the_printed_lesson_has_a_page_per_section(page, server):
    page.open(f"{server}/lesson")
    pdf = page.pdf(format="A4", print_background=True)
    n_sections = page.evaluate("() => document.querySelectorAll('main article > section').length")
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))  # each page object of the PDF
    assert n_sections >= 6 and pages >= n_sections


@pytest.mark.parametrize("width", [320, 390])
def test_phones_no_page_is_wider_than_the_screen(browser, server, width):
    ctx = browser.new_context(viewport={"width": width, "height": 800}, is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        page = Page(ctx.new_page())
        for path in PHONE_PAGES:
            page.open(f"{server}{path}")
            page.wait_for_timeout(300)  # plotly arrives late; its charts resize to their boxes
            if path == "/":
                page.evaluate("() => window.attnscope.settled()")
            if path == "/lens":  # every chart and the flow graph drawn, the lens in its phone layout
                page.wait_for_function("() => document.body.dataset.rendered && document.body.dataset.flowRendered"
                                       " && document.getElementById('lens').dataset.layout === 'narrow'")
            assert page.evaluate("() => document.documentElement.scrollWidth") <= width, path
            nav = page.evaluate("() => { const n = document.querySelector('nav.nav'); return [n.getBoundingClientRect().height, parseFloat(getComputedStyle(n).lineHeight) || 24]; }")
            assert nav[0] < 2 * nav[1], f"{path}: the navigation wraps ({nav[0]} px)"
            assert page.locator(".modebar").count() == 0, f"{path}: plotly's mode bar on a touch screen"
            page.shot(f"phone-{width}-{path.strip('/') or 'explorer'}")
        assert page.errors == [], page.errors
    finally:
        ctx.close()


LENS_TEXT = "The capital of France is Paris, and the capital of Italy is"


@pytest.mark.parametrize("width", [320, 390])
def test_on_a_phone_the_logit_lens_is_turned_and_readable(browser, server, width):
    """Positions down the side, a few layer boundaries across (the first and the last, the model's own
    output, always), a top token in every cell, each the API's; wide again on a desktop."""
    import httpx

    lens = httpx.post(server + "/api/lens", json={"text": LENS_TEXT, "top_k": 5}, timeout=60).json()
    ctx = browser.new_context(viewport={"width": width, "height": 800}, is_mobile=True, has_touch=True)
    try:
        page = Page(ctx.new_page())
        page.open(f"{server}/lens")
        page.wait_for_function(f"() => document.body.dataset.rendered === {LENS_TEXT!r}")
        page.wait_for_function("() => document.getElementById('lens').dataset.layout === 'narrow'")
        d = page.evaluate("() => { const e = document.getElementById('lens'); return {x: e.data[0].x, y: e.data[0].y, z: e.data[0].z,"
                          " text: e.data[0].text, size: e._fullLayout._size, width: e._fullLayout.width}; }")
        names = [b if b != "embed" else "emb" for b in lens["layers"]]
        cols = [names.index(x) for x in d["x"]]
        assert 4 <= len(cols) < len(names) and cols[0] == 0 and cols[-1] == len(names) - 1 and cols == sorted(cols)
        assert len(d["y"]) == len(lens["tokens"]) and d["y"][0].startswith("0: ")  # positions down the side
        assert d["z"] == [[lens["lens"][b][i][0]["prob"] for b in cols] for i in range(len(lens["tokens"]))]
        assert all(cell for row in d["text"] for cell in row)  # a top token in every cell
        assert d["size"]["w"] / len(cols) >= 40 and d["width"] <= width  # cells wide enough to read
        note = page.text_content("#lens-note")
        assert f"{len(cols)} of the {len(names)} layer boundaries" in note and "Rome" in note
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        page.shot(f"phone-{width}-lens-turned")
        page.set_viewport_size({"width": 1280, "height": 900})  # turned back when there is room
        page.wait_for_function("() => document.getElementById('lens').dataset.layout === 'wide'")
        page.wait_for_function("() => document.getElementById('lens').data[0].y.length === 31")
        assert page.errors == [], page.errors
    finally:
        ctx.close()


def test_on_a_phone_the_heads_grid_says_it_scrolls_and_which_layers_are_in_view(browser, server):
    ctx = browser.new_context(viewport={"width": 390, "height": 800}, is_mobile=True, has_touch=True)
    try:
        page = Page(ctx.new_page())
        page.open(f"{server}/")
        page.evaluate("() => window.attnscope.settled()")
        cue = page.locator(".grid-cue")
        assert cue.is_visible() and cue.text_content().startswith("Layers 0–") and "of 0–29 in view" in cue.text_content()
        assert "scrolls" in page.get_attribute("#grid", "class").split()
        page.evaluate("() => { const g = document.getElementById('grid'); g.scrollLeft = g.scrollWidth; }")
        page.wait_for_function("() => document.querySelector('.grid-cue').textContent.includes('–29 of 0–29')")
        assert "at-end" in page.get_attribute("#grid", "class").split()
        # on a desktop the whole grid fits: no cue
        page.set_viewport_size({"width": 1400, "height": 900})
        page.wait_for_function("() => document.querySelector('.grid-cue').hidden")
        assert page.errors == [], page.errors
    finally:
        ctx.close()
