"""The guided lesson renders with the live model's numbers, from a phone to a desktop."""

import httpx
import pytest

from tests.e2e.conftest import WAIT_MS
from tests.e2e.test_explorer import page_artifact


@pytest.mark.parametrize("width", [390, 1280])
def test_lesson_renders(browser, server, width):
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    p = ctx.new_page()
    p.set_default_timeout(WAIT_MS)  # the first /lesson computes every example: slow on a loaded machine
    errors = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.on("console", lambda m: m.type == "error" and errors.append(m.text))
    p.goto(server + "/lesson")
    p.wait_for_selector("body[data-ready='1']", timeout=60000)
    p.wait_for_function("() => document.getElementById('france-chart').data && document.getElementById('mole-chart').data")
    assert p.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 1
    assert p.eval_on_selector_all("#fluffy-arrows svg path[data-head]", "ps => ps.length") > 0
    text = p.text_content("main")
    assert "attention sink" in text and "Paris" in text
    sections = p.evaluate("() => JSON.parse(document.getElementById('initial').textContent).lesson.sections")
    for section in sections.values():  # every word of the lesson is app/lesson.py's, shown once
        for para in [section["title"]] + section["p"] + section.get("captions", []):
            assert text.count(para) == 1, para
    # the ablation numbers in the text are the API's
    france = "The capital of France is"
    heads = p.evaluate("() => JSON.parse(document.getElementById('initial').textContent).lesson.france.heads_to_france")
    api = httpx.post(server + "/api/predictions", json={"text": france, "top_k": 5,
                     "ablate": [[h["layer"], h["head"]] for h in heads]}, timeout=60).json()
    top = api["predictions"][-1][0]
    assert f"{round(100 * top['prob'])}%" in p.text_content("#france-text")
    p.screenshot(path=str(page_artifact(f"lesson-{width}")), full_page=True)
    assert not errors
    ctx.close()
