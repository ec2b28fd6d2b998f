"""The explain view: the lesson's steps, stepped by keyboard, showing /api/head's own numbers."""

import httpx

from tests.e2e.test_explorer import page_artifact

LESSON = "a fluffy blue creature roamed the verdant forest"


def test_steps_by_keyboard_and_numbers_equal_the_api(page, server):
    page.open(server + "/explain?layer=2&head=3&token=3")
    api = httpx.post(server + "/api/head", json={"text": LESSON, "layer": 2, "head": 3, "detail": True}, timeout=60).json()
    order = ["input", "qkv", "rope", "dot", "scale", "mask", "softmax", "sum", "out"]
    assert page.evaluate("() => document.body.dataset.step") == "input"
    page.locator("#step").screenshot(path=str(page_artifact("explain-input")))
    for expected in order[1:]:
        page.keyboard.press("ArrowRight")
        assert page.evaluate("() => document.body.dataset.step") == expected
        if expected in ("qkv", "softmax", "out"):
            page.locator("#step").screenshot(path=str(page_artifact(f"explain-{expected}")))
        if expected == "softmax":
            cells = page.eval_on_selector_all("table.nums tbody tr", "rs => rs.map(r => r.lastChild.textContent)")
            assert len(cells) == 4  # keys 0..3 for query 3
            for j, text in enumerate(cells):
                assert float(text) == round(api["pattern"][3][j], 4)
        if expected == "scale":
            scores = page.eval_on_selector_all("table.nums tbody tr", "rs => rs.map(r => r.lastChild.textContent)")
            assert [float(s) for s in scores] == [round(api["scores"][3][j], 4) for j in range(4)]
    page.keyboard.press("ArrowRight")  # past the last step: stays
    assert page.evaluate("() => document.body.dataset.step") == "out"
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("() => document.body.dataset.step") == "sum"
    assert "step=8" in page.url
    # the weighted sum says what each key moved: weight x the norm of its value as the head writes it
    rows = page.eval_on_selector_all("table.nums tbody tr", "rs => rs.map(r => [...r.children].map(c => c.textContent))")
    assert [r[0] for r in rows] == ["a", "·fluffy", "·blue", "·creature"]
    for j, r in enumerate(rows):
        w, norm = api["pattern"][3][j], api["v_out_norm"][j]
        assert float(r[2]) == round(norm, 4) and abs(float(r[3]) - w * norm) <= 1e-4
    page.locator("#step").screenshot(path=str(page_artifact("explain-sum-moved")))
    assert not page.errors


def test_all_queries_mode_and_the_encoder(page, server):
    page.open(server + "/explain?model=all-minilm-l6-v2&layer=1&head=2&step=5&all=1")
    assert page.evaluate("() => document.body.dataset.step") == "softmax"  # no RoPE, no mask steps for BERT
    page.wait_for_function("() => document.querySelector('.explain-heat') && document.querySelector('.explain-heat').data")
    z = page.evaluate("() => document.querySelector('.explain-heat').data[0].z")
    api = httpx.post(server + "/api/head", json={"text": LESSON, "model": "all-minilm-l6-v2", "layer": 1, "head": 2}, timeout=60).json()
    assert all(abs(z[i][j] - api["pattern"][i][j]) < 1e-6 for i in range(len(z)) for j in range(len(z)))
    assert not page.errors
