"""The compare view: each built-in example draws, with the API's similarities."""

import httpx
import pytest

from tests.e2e.test_explorer import page_artifact

EXAMPLES = {
    "mole": ["American shrew mole", "one mole of carbon dioxide", "take a biopsy of the mole"],
    "tower": ["the Eiffel tower", "a miniature tower"],
    "bank": ["we had a picnic on the river bank", "she deposited her salary at the bank"],
}


@pytest.mark.parametrize("word", list(EXAMPLES))
def test_each_built_in_example_draws(page, server, word):
    page.open(server + "/compare")
    page.click(f"button.example[data-word='{word}']")
    page.wait_for_function(f"() => document.body.dataset.rendered === {('|'.join([word] + EXAMPLES[word]))!r}")
    api = httpx.post(server + "/api/compare", json={"sentences": EXAMPLES[word], "word": word}, timeout=60).json()
    traces = page.evaluate("() => document.getElementById('similarity').data.map(t => t.y)")
    N = len(EXAMPLES[word])
    assert len(traces) == N * (N - 1) // 2
    assert traces[0] == [m[0][1] for m in api["similarity"]]
    assert abs(traces[0][0] - 1) < 1e-5 and traces[0][-1] < 0.99
    assert "identical" in page.text_content("#compare-notes")
    assert len(page.evaluate("() => document.getElementById('trajectory').data")) == N
    assert f"word={word}" in page.url
    page.locator("main").screenshot(path=str(page_artifact(f"compare-{word}")))
    assert not page.errors


def test_a_missing_word_is_explained(page, server):
    page.open(server + "/compare")
    page.fill("#sentences input >> nth=1", "nothing to see here")
    page.dispatch_event("#sentences input >> nth=1", "change")
    page.wait_for_selector("#error:not([hidden])")
    assert "sentence 2 " in page.text_content("#error") and "nothing to see here" in page.text_content("#error")  # as the legend counts


def test_trajectories_in_3d(page, server):
    page.open(server + "/compare")
    page.wait_for_function("() => document.getElementById('residual').data")
    page.select_option("#dims", "3")
    page.wait_for_function("() => document.getElementById('residual').data[0].type === 'scatter3d'")
    r = httpx.post(server + "/api/residual", json={"text": EXAMPLES["mole"][0], "normalize": True}, timeout=60).json()
    z = page.evaluate("() => document.getElementById('residual').data[0].z")
    assert z == [b[0][2] for b in r["pca_3d"]]
    assert not page.errors


def test_editing_a_sentence_then_clicking_another_keeps_the_focus(page, server):
    page.open(server + "/compare")
    first, second = page.locator("#sentences input").nth(0), page.locator("#sentences input").nth(1)
    first.click()
    page.keyboard.press("End")
    page.keyboard.type(" again")
    second.click()  # the first box's change event redraws the page: the click must still land
    page.keyboard.press("End")
    page.keyboard.type(" xyz")
    assert page.evaluate("() => document.activeElement === document.querySelectorAll('#sentences input')[1]")
    assert second.input_value().endswith(" xyz")
    assert first.input_value().endswith(" again")
    page.wait_for_function("(t) => document.body.dataset.rendered.includes(t)", arg=" again")
    assert not page.errors, page.errors
