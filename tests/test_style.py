"""Token labels on the Python side (app/style.py and its users: figures, the static SVG, the notebook,
the CLI's exports): a byte piece of a character reads as its character and its place, with what it is
on hover, never as escapes; the '·' legend where the labels show one. The same rules as
static/js/tokens.js (tests/e2e/test_tokens.py compares the two on the same tokens)."""

import re

import pytest

import attnscope
from app.style import legend, quoted, read_bytes, token_label, token_note

EMOJI = "I love 🦊 and 日本"
ESCAPE = re.compile(r"\\x[0-9a-f]{2}")


@pytest.fixture(scope="module")
def result(smol):
    return attnscope.run(EMOJI, model=smol)


def test_labels_of_pieces_whole_tokens_and_predicted_pieces():
    piece = {"id": 1, "text": " \\xf0\\x9f", "start": 6, "end": 8, "char": " 🦊", "piece": 1, "pieces": 3}
    assert (token_label(piece), token_note(piece), quoted(piece)) == ("·🦊 (1/3)", "1 of 3 byte pieces of 🦊", "‘🦊 (1/3)’")
    whole = {"id": 2, "text": " love", "start": 1, "end": 6}
    assert (token_label(whole), token_note(whole), quoted(whole)) == ("·love", "", "‘love’")
    nxt = {"id": 3, "text": " \\xf0\\x9f", "prob": 0.1, "bytes": "20 F0 9F", "piece": 1, "range": [0x1F000, 0x1FFFF]}
    assert token_label(nxt) == "·‹F0 9F›" and token_note(nxt) == (
        "the first byte piece of a character in U+1F000–U+1FFFF: only the tokens after it would finish it")
    stray = {"id": 4, "text": "\\xa6", "prob": 0.1, "bytes": "A6", "piece": 1}
    assert token_label(stray) == "‹A6›" and "bytes A6" in token_note(stray)
    assert token_label("\n") == "⏎" and token_label("") == "∅"


@pytest.mark.parametrize("hexes,text", [("20 F0 9F", " ‹F0 9F›"), ("E6 97 A5 E6", "日‹E6›"), ("8A", "‹8A›"),
                                        ("41 F0 9F A6 8A", "A🦊"), ("F0 9F A6 8A F0", "🦊‹F0›")])
def test_bytes_read_as_text_where_whole(hexes, text):
    assert read_bytes(hexes) == text


def test_the_legend_names_the_marks_shown():
    assert legend(["·love", "I"]) == "· = a space before the word"
    assert legend(["a", "⏎"]) == "⏎ = a new line"
    assert legend(["·a", "⏎", "⇥"]) == "· = a space before the word · ⏎ = a new line · ⇥ = a tab"
    assert legend(["I", "love"]) == ""


def texts_of(fig) -> str:
    """Every string a reader sees on a figure: titles, tick labels, trace names, text and hover text."""
    j = fig.to_plotly_json()
    out = []

    def walk(x):
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
    walk(j["layout"])
    for tr in j["data"]:
        walk({k: v for k, v in tr.items() if k not in ("x", "y", "z")})
    return "\n".join(out)


@pytest.mark.parametrize("view", ["heatmap", "arrows", "embeddings", "grid"])
def test_figures_show_the_character_never_escapes(result, view):
    fig = getattr(result, view)()
    shown = texts_of(fig)
    assert not ESCAPE.search(shown), ESCAPE.findall(shown)[:5]
    if view != "grid":  # the grid shows no token but on hover
        assert "🦊 (1/3)" in shown and "1 of 3 byte pieces of 🦊" in shown
        assert "· = a space before the word" in fig.layout.title.text
    if view == "heatmap":
        assert list(fig.layout.xaxis.ticktext) == [token_label(t) for t in result.tokens]


def test_a_figure_without_marks_has_no_legend(smol):
    fig = attnscope.run("Hello", model=smol).heatmap(0, 0)
    assert "a space before" not in fig.layout.title.text


def test_arrows_query_may_be_named_by_its_character(result):
    fox = [i for i, t in enumerate(result.tokens) if t.char == " 🦊"]
    fig = result.arrows(2, 3, token="🦊")
    assert f"(token {fox[-1]})" in fig.layout.title.text  # the last piece: the one that has read the whole character


def test_notebook_and_static_svg(result):
    html = result._repr_html_()
    assert not ESCAPE.search(html.split("<script")[0]) and "🦊 (2/3)" in html and "2 of 3 byte pieces of 🦊" in html
    assert "· = a space before the word" in html
    svg = result.svg()
    assert not ESCAPE.search(svg) and "🦊 (3/3)" in svg and "3 of 3 byte pieces of 🦊" in svg
    assert "· = a space before the word" in svg
    said = result.summary(token=3)
    assert said.startswith("layer 2, head 3: '🦊 (2/3)'") and not ESCAPE.search(said)
