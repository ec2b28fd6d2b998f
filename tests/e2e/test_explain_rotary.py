"""Explain a head on Pythia's kind of model (GPT-NeoX, a tiny random checkpoint): rotary positions on
part of each head only. The RoPE step is there, says which dimensions turn, and its before/after q
are /api/head's own (the turned dimensions change, the rest do not)."""

import os

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import ARTIFACTS, ready_server
from tests.engine.test_parity_tiny import build_gpt_neox

TEXT = "The quick brown fox jumps"


@pytest.fixture(scope="module")
def pythia_server(tmp_path_factory, cache_dir):
    folder = tmp_path_factory.mktemp("pythia")
    build_gpt_neox(folder)  # d_head 16, rotary_pct 0.25: the first 4 dimensions turn
    env = {**os.environ, "ATTNSCOPE_CACHE_DIR": str(cache_dir), "ATTNSCOPE_MODELS": f"pythia={folder}",
           "ATTNSCOPE_PRELOAD": "none"}
    with ready_server(env) as s:
        yield s.url


@pytest.mark.parametrize("width", [390, 1280])
def test_the_rope_step_of_a_partial_rotary_model(browser, pythia_server, width):
    from tests.e2e.conftest import Page

    ctx = browser.new_context(viewport={"width": width, "height": 1000})
    page = Page(ctx.new_page())
    try:
        page.open(pythia_server + f"/explain?model=pythia&text={TEXT.replace(' ', '+')}&layer=1&head=3&step=3")
        assert page.evaluate("() => document.body.dataset.step") == "rope"
        formula = page.locator("#step p.formula").first.text_content()
        assert "d < 2" in formula and "base^(−2d/4)" in formula and "dimensions 4 to 15 are not turned" in formula, formula
        api = httpx.post(pythia_server + "/api/head", json={"text": TEXT, "model": "pythia", "layer": 1, "head": 3, "detail": True},
                         timeout=60).json()
        models = httpx.get(pythia_server + "/api/models", timeout=60).json()["models"]
        assert {m["id"]: m["d_rotary"] for m in models}["pythia"] == 4
        q, q0 = np.array(api["q"]), np.array(api["q_pre_rope"])
        i = len(q) - 1  # the query token the page shows (the last)
        assert not np.allclose(q[i, :4], q0[i, :4]) and np.array_equal(q[i, 4:], q0[i, 4:])
        text = page.locator("#step").text_content()
        assert "Step 3 of 9" in text  # the RoPE step and the causal mask's, beside the 7 every model has
        assert f"before, q·k_0 = {np.dot(q0[i], np.array(api['k_pre_rope'])[0]):.4f}" in text, text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"explain-rope-partial-{width}.png"), full_page=True)
        assert not page.errors
    finally:
        ctx.close()
