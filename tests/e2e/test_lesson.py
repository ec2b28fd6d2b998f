"""The guided lesson renders with the live model's numbers, from a phone to a desktop: the numbers on
screen are the API's, and its token chips focus on hover as the explorer's do."""

import json

import httpx
import numpy as np
import pytest

from app.lesson import paragraphs
from tests.e2e.conftest import Page
from tests.e2e.test_explorer import page_artifact

LESSON = "a fluffy blue creature roamed the verdant forest"


def api(server, path, **body):
    r = httpx.post(server + path, json=body, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def open_lesson(browser, server, width) -> Page:
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    p = Page(ctx.new_page())
    p.open(server + "/lesson")
    p.wait_for_function("() => document.getElementById('france-chart').data && document.getElementById('mole-chart').data")
    return p


def initial(p) -> dict:
    return p.evaluate("() => JSON.parse(document.getElementById('initial').textContent).lesson")


@pytest.mark.parametrize("width", [390, 1280])
def test_lesson_renders(browser, server, width):
    p = open_lesson(browser, server, width)
    assert p.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 1
    assert p.eval_on_selector_all("#fluffy-arrows svg path[data-head]", "ps => ps.length") > 0
    text = p.text_content("main")
    assert "attention sink" in text and "Paris" in text
    lesson = initial(p)
    for section in lesson["sections"].values():  # every word of the lesson is app/lesson.py's, shown once
        for para in [section["title"], section["try"]] + paragraphs(section) + section.get("sentences", []):
            assert text.count(para) == 1, para
    # the mole sentences by name, in the list and in the chart's legend
    legend = p.evaluate("() => document.getElementById('mole-chart').data.map((t) => t.name)")
    assert legend == ["the animal vs the unit", "the animal vs the skin mark", "the unit vs the skin mark"]
    # the ablation numbers in the text are the API's
    heads = lesson["france"]["heads_to_france"]
    top = api(server, "/api/predictions", text="The capital of France is", top_k=5,
              ablate=[[h["layer"], h["head"]] for h in heads])["predictions"][-1][0]
    assert f"{round(100 * top['prob'])}%" in p.text_content("#france-text")
    p.screenshot(path=str(page_artifact(f"lesson-{width}")), full_page=True)
    assert not p.errors
    p.context.close()


def cells(p, selector) -> list[list[str]]:
    return p.eval_on_selector_all(f"{selector} tbody tr", "rs => rs.map((r) => [...r.cells].map((c) => c.textContent))")


def test_the_numbers_on_screen_are_the_apis(browser, server):
    p = open_lesson(browser, server, 1280)
    lesson = initial(p)
    c = lesson["fluffy"]["card"]
    d = api(server, "/api/head", text=LESSON, layer=c["layer"], head=c["head"], detail=True)
    i = c["query"]
    rows = cells(p, "#card table")
    assert len(rows) == i + 1
    for j, row in enumerate(rows):  # the card's table: q·k, the scaled score, the softmax, the value size, what moved
        dot = float(np.dot(d["q"][i], d["k"][j]))
        moved = d["pattern"][i][j] * d["v_out_norm"][j]
        total = sum(d["pattern"][i][k] * d["v_out_norm"][k] for k in range(i + 1))
        assert float(row[1]) == pytest.approx(dot, abs=0.011)
        assert float(row[2]) == pytest.approx(d["scores"][i][j], abs=0.006)
        assert float(row[3]) == pytest.approx(d["pattern"][i][j], abs=6e-4)
        assert float(row[4]) == pytest.approx(d["v_out_norm"][j], abs=0.006)
        assert float(row[5]) == pytest.approx(moved, abs=0.006)
        assert row[6] == f"{round(100 * moved / total)}%"
    card = p.text_content("#card")
    assert f"{d['e'][i][0]:.3f}".replace("-", "−") in card and f"({len(d['e'][i])} numbers)" in card
    assert f"{d['q_pre_rope'][i][0]:.3f}".replace("-", "−") in card and f"√{len(d['q'][i])}" in card
    # the heads that move 'fluffy' and 'blue' into 'creature': /api/attention's moved, as shares of each row
    a = api(server, "/api/attention", text=LESSON, measure="moved")["attention"]
    M = np.stack([np.array(a[str(L)])[:, i] for L in range(len(a))])
    M /= M.sum(-1, keepdims=True)
    share = M[..., lesson["fluffy"]["keys"]].sum(-1)
    order = np.argsort(-share, axis=None, kind="stable")
    for row, k in zip(cells(p, "#movers"), order):
        L, h = divmod(int(k), share.shape[1])
        assert row[0] == f"L{L}H{h}" and row[1] == f"{round(100 * share[L, h])}%"
    assert not p.errors
    p.context.close()


def test_token_chips_focus_on_hover_as_in_the_explorer(browser, server):
    p = open_lesson(browser, server, 1280)
    lesson = initial(p)
    f = lesson["fluffy"]
    vectors = lesson["sections"]["tokens"]["vectors"]
    assert p.text_content("#tokens-vector") == vectors[f["query"]]  # nothing in focus: the lesson's 'creature'
    p.hover("#tokens-chips .chip[data-index='1']")
    p.wait_for_function("() => document.querySelector('#tokens-chips .chip[data-index=\"1\"]').classList.contains('focus')")
    assert p.text_content("#tokens-vector") == vectors[1]
    p.mouse.move(5, 5)
    p.wait_for_function(f"() => document.getElementById('tokens-vector').textContent === {json.dumps(vectors[f['query']])}")

    # the arrows: hovering 'blue' shows where 'blue' looks in this head, by weight, then by what moved
    rows = f["rows"]
    p.hover("#fluffy-arrows .chip[data-index='2']")
    p.wait_for_function("() => [...document.querySelectorAll('#fluffy-arrows path[data-query]')].every((e) => e.dataset.query === '2')")
    weights = p.eval_on_selector_all("#fluffy-arrows path[data-query]", "ps => Object.fromEntries(ps.map((e) => [e.dataset.key, Number(e.dataset.weight)]))")
    for k, w in weights.items():
        assert w == pytest.approx(rows["pattern"][2][int(k)], abs=1e-4)
    p.click("#fluffy-arrows .chip[data-index='2']")  # locks it
    p.mouse.move(5, 5)
    p.check("input[name='fluffy-measure'][value='moved']")
    p.wait_for_function(f"() => Number(document.querySelector('#fluffy-arrows path[data-query=\"2\"][data-key=\"0\"]').dataset.weight) === {rows['moved'][2][0]}")
    assert "‘blue’ (token 2)" in p.text_content("#fluffy-caption")
    p.keyboard.press("Escape")  # released: back to 'creature'
    p.wait_for_function(f"() => [...document.querySelectorAll('#fluffy-arrows path[data-query]')].every((e) => e.dataset.query === '{f['query']}')")

    # each tower figure is its own: hovering in one leaves the other alone
    t = lesson["towers"]
    p.hover("#tower-cases figure:nth-child(1) .chip[data-index='0']")
    p.wait_for_function("() => document.querySelector('#tower-cases figure:nth-child(1) .chip[data-index=\"0\"]').classList.contains('focus')")
    second = p.eval_on_selector_all("#tower-cases figure:nth-child(2) path[data-query]", "ps => [...new Set(ps.map((e) => e.dataset.query))]")
    assert second == [str(t[1]["query"])]
    assert not p.errors
    p.context.close()


def test_try_your_own_sentence_opens_the_explorer(browser, server):
    p = open_lesson(browser, server, 1280)
    lesson = initial(p)
    p.fill("#try-adjectives", "a tiny red dragon slept")
    p.click(".try-box[data-try='adjectives'] button")
    p.wait_for_url("**/?*")
    p.ready()
    s = p.state()
    c = lesson["fluffy"]["card"]
    assert s["text"] == "a tiny red dragon slept" and (s["layer"], s["head"]) == (c["layer"], c["head"])
    assert not p.errors
    p.context.close()
