"""Tokens as people read them, in Chromium: an emoji or a CJK character cut into byte pieces shows as
its character and its place ("🦊 (1/3)") with "1 of 3 byte pieces of 🦊" on hover, on every page, and no
text on screen holds a "\\xf0"-style escape; the "·" legend is there when the labels show a leading space,
and not otherwise; the page's labels are the Python side's (app/style.py) for the same tokens."""

import re
from urllib.parse import urlencode

import pytest

from app.style import legend, token_label, token_note
from tests.e2e.test_explorer import api, hover_cell, settle, type_text, wait_rendered

EMOJI = "I love 🦊 and 日本"
ESCAPE = r"\\x[0-9a-f]{2}"
# every text a reader can see or hover: elements' own text (SVG too) and their titles, no scripts' data
SHOWN = """() => {
  const out = [];
  for (const e of document.querySelectorAll('body *')) {
    if (['SCRIPT', 'STYLE', 'TEXTAREA'].includes(e.tagName)) continue;
    for (const n of e.childNodes) if (n.nodeType === 3 && n.textContent.trim()) out.push(n.textContent);
    for (const a of ['title', 'aria-label', 'data-title']) if (e.getAttribute(a)) out.push(e.getAttribute(a));
    if (e.tagName === 'OPTION') out.push(e.textContent);
  }
  return out.join('\\n');
}"""


def no_escapes(page):
    shown = page.evaluate(SHOWN)
    assert not re.search(ESCAPE, shown), re.findall(ESCAPE, shown)[:8]
    return shown


def test_the_explorer_shows_characters_and_notes_never_escapes(page, server):
    page.open(server + "/?" + urlencode({"text": EMOJI, "token": 3}))
    wait_rendered(page, EMOJI)
    page.evaluate("() => window.attnscope.settled()")
    tokens = api(server, "/api/attention", text=EMOJI, layers=[0])["tokens"]
    chips = page.eval_on_selector_all("#arrows .chip", "cs => cs.map(c => [c.textContent, c.title])")
    assert [c[0] for c in chips] == [token_label(t) for t in tokens]
    fox = [i for i, t in enumerate(tokens) if t.get("char") == " 🦊"]
    assert [chips[i][0] for i in fox] == ["·🦊 (1/3)", "·🦊 (2/3)", "·🦊 (3/3)"]
    assert all(chips[i][1].endswith(f"\n{k + 1} of 3 byte pieces of 🦊") for k, i in enumerate(fox))
    # hover the first piece: it is focused, and its note is what the browser shows on hover
    page.hover(f"#arrows .chip[data-index='{fox[0]}']")
    page.wait_for_function(f"() => window.attnscope.store.state.token === {fox[0]}")
    assert page.get_attribute(f"#arrows .chip[data-index='{fox[0]}']", "title").endswith("1 of 3 byte pieces of 🦊")
    page.wait_for_function("() => document.getElementById('describe').textContent.includes('‘🦊 (1/3)’')")
    # the heatmap's axes and hover, the lines' labels
    ticks = page.evaluate("() => document.getElementById('heatmap').layout.xaxis.ticktext")
    assert [ticks[i] for i in fox] == ["·🦊 (1/3)", "·🦊 (2/3)", "·🦊 (3/3)"]
    tip = hover_cell(page, fox[1], fox[0], len(tokens))  # the heatmap's own tooltip (views/heatmap.js)
    assert "query: 2 of 3 byte pieces of 🦊" in tip and "key: 1 of 3 byte pieces of 🦊" in tip, tip
    lines = page.eval_on_selector_all("#lines .line-token[data-side='key']", "ss => ss.map(s => [s.textContent, s.title])")
    assert lines[fox[2]] == ["·🦊 (3/3)", "3 of 3 byte pieces of 🦊"]
    # the legend, under the chips and the heatmap (the text's marks)...
    assert page.text_content("#arrows + .token-legend") == page.text_content("#heatmap + .token-legend") == "· = a space before the word"
    assert page.is_visible("#arrows + .token-legend") and page.is_visible("#heatmap + .token-legend")
    # ... and under the predictions, the marks of the guesses shown (the mouse left the chips for the heatmap:
    # they are the last token's, which may guess a new line)
    guesses = page.eval_on_selector_all("#predictions .pred-token", "ps => ps.map(p => p.textContent)")
    assert guesses and page.text_content("#predictions .token-legend") == legend(guesses)
    no_escapes(page)
    page.shot("tokens-explorer-1400")


def test_predicted_pieces_read_in_context(page, server):
    """After the second piece of 🦊 the model's guesses complete emoji: each is its character, "(3/3)",
    with its note; the why panel's contrast list reads the same."""
    tokens = api(server, "/api/attention", text=EMOJI, layers=[0])["tokens"]
    second = next(i for i, t in enumerate(tokens) if t.get("piece") == 2)
    preds = api(server, "/api/predictions", text=EMOJI, top_k=10)["predictions"][second]
    page.open(server + "/?" + urlencode({"text": EMOJI, "token": second, "locked": 1}))
    wait_rendered(page, EMOJI)
    shown = page.eval_on_selector_all("#predictions .pred-token", "bs => bs.map(b => [b.textContent, b.title])")
    assert [s[0] for s in shown] == [token_label(p) for p in preds]
    why = "why this prediction? (below)"
    assert [title for _, title in shown] == [f"{token_note(p)}\n{why}" if token_note(p) else why for p in preds]
    k = next(k for k, p in enumerate(preds) if "char" in p)  # a guess that completes a character
    assert shown[k][0].endswith("(3/3)") and shown[k][1].startswith("3 of 3 byte pieces of ")
    page.click(f"#predictions .pred-token >> nth={k}")
    page.wait_for_selector("#why .attr-summary")
    summary = page.text_content("#why .attr-summary")
    assert f"the logit of ‘{token_label(preds[k]).lstrip('·')}’ ({token_note(preds[k])})" in summary
    options = page.eval_on_selector_all("#why-vs option", "os => os.map(o => o.textContent)")
    assert options[1:] == [token_label(p) for j, p in enumerate(preds) if j != k]
    no_escapes(page)


def test_labels_are_the_python_sides(page, server):
    """static/js/tokens.js and app/style.py label, note and legend the same tokens alike: the text's
    tokens, and predicted ones of every kind (whole, completing a character, leaving one unfinished)."""
    page.open(server + "/")
    body = api(server, "/api/predictions", text=EMOJI, top_k=10)
    tokens = body["tokens"] + [p for row in body["predictions"] for p in row]
    assert {"char", "bytes"} <= {k for t in tokens for k in t}
    js = page.evaluate("""async (tokens) => {
        const t = await import('/static/js/tokens.js');
        return { labels: tokens.map(t.label), notes: tokens.map(t.note), quoted: tokens.map(t.quoted), legend: t.legend(tokens) };
    }""", tokens)
    assert js["labels"] == [token_label(t) for t in tokens]
    assert js["notes"] == [token_note(t) for t in tokens]
    assert js["legend"] == legend([token_label(t) for t in tokens])
    from app.style import quoted
    assert js["quoted"] == [quoted(t) for t in tokens]


def test_no_legend_without_a_mark(page, server):
    page.open(server + "/?text=Hello")
    wait_rendered(page, "Hello")
    settle(page)
    # one token, no space before it: no legend under the chips or the heatmap (the guesses after it, ' world'..., have one)
    assert page.is_hidden("#arrows + .token-legend") and page.is_hidden("#heatmap + .token-legend")
    preds = api(server, "/api/predictions", text="Hello", top_k=10)["predictions"][-1]
    assert page.text_content("#predictions .token-legend") == legend([token_label(p) for p in preds]) != ""
    type_text(page, "two\nlines")
    wait_rendered(page, "two\nlines")
    page.wait_for_function("() => document.querySelector('#arrows + .token-legend').textContent === '⏎ = a new line'")
    assert page.is_visible("#arrows + .token-legend")


@pytest.mark.parametrize("path", ["/explain?" + urlencode({"text": EMOJI, "token": 4, "step": 8}),
                                  "/lens?" + urlencode({"text": EMOJI}),
                                  "/compare?" + urlencode([("word", "日本"), ("s", "I love 日本"), ("s", "日本 is far")]),
                                  "/embed/arrows?" + urlencode({"text": EMOJI, "token": 4}),
                                  "/embed/heatmap?" + urlencode({"text": EMOJI, "token": 4}),
                                  "/embed/explain?" + urlencode({"text": EMOJI, "token": 4, "step": 8}),
                                  "/embed/lens?" + urlencode({"text": EMOJI})])
def test_every_page_reads_the_pieces(page, server, path):
    page.open(server + path)
    if path.startswith("/lens"):
        page.wait_for_function(f"() => document.body.dataset.rendered === {EMOJI!r} && document.body.dataset.flowRendered")
    if path.startswith("/compare"):
        page.wait_for_function("() => document.body.dataset.rendered && document.getElementById('residual').data")
    if "lens" in path or "heatmap" in path:
        page.wait_for_selector(".js-plotly-plot .main-svg")
    settle(page)
    shown = no_escapes(page)
    assert "🦊 (" in shown or "日 (" in shown, shown[:500]
    assert "· = a space before the word" in shown
    assert not page.errors, page.errors
    page.shot("tokens" + re.sub(r"[^a-z]+", "-", path.split("?")[0]))
