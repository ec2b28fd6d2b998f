"""The layer-by-layer page: the logit lens and the head finder draw the API's numbers."""

import httpx

from tests.e2e.test_explorer import page_artifact

TEXT = "The capital of France is Paris, and the capital of Italy is"


def test_lens_and_head_finder(page, server):
    page.open(server + "/lens")
    page.wait_for_function(f"() => document.body.dataset.rendered === {TEXT!r}")
    lens = httpx.post(server + "/api/lens", json={"text": TEXT, "top_k": 5}, timeout=60).json()
    z = page.evaluate("() => document.getElementById('lens').data[0].z")
    assert len(z) == 31 and z[-1] == [top[0]["prob"] for top in lens["lens"][-1]]
    assert "Rome" in page.text_content("#lens-note")
    links = page.eval_on_selector_all(".finder-top a", "as => as.map(a => a.getAttribute('href'))")
    assert len(links) == 5 * 6 and all(link.startswith("/?") and "layer=" in link for link in links)
    heads = httpx.post(server + "/api/heads", json={"text": TEXT, "top": 6}, timeout=60).json()
    first = page.eval_on_selector(".finder-top a", "a => a.textContent")
    t = heads["top"]["previous"][0]
    assert first.startswith(f"layer {t['layer']}, head {t['head']}")
    page.locator("main").screenshot(path=str(page_artifact("lens-and-head-finder")))
    page.click(".finder-top a >> nth=0")
    page.wait_for_selector("body[data-ready='1']")
    s = page.state()
    assert (s["layer"], s["head"]) == (t["layer"], t["head"])
    assert not page.errors


def test_rollout_layer_by_layer(page, server):
    page.open(server + "/lens")
    page.wait_for_function(f"() => document.body.dataset.rendered === {TEXT!r}")
    r = httpx.post(server + "/api/rollout", json={"text": TEXT}, timeout=60).json()
    assert page.evaluate("() => document.getElementById('rollout').data[0].z") == r["rollout"][-1]  # the last layer first
    page.eval_on_selector("#rollout-layer", "e => { e.value = '3'; e.dispatchEvent(new Event('input')); }")
    page.wait_for_function("() => document.getElementById('rollout').layout.title.text.startsWith('after layer 3:')")
    assert page.evaluate("() => document.getElementById('rollout').data[0].z") == r["rollout"][3]
    assert "After layer 3" in page.text_content("#rollout-note")
    page.locator("#rollout-panel").screenshot(path=str(page_artifact("rollout")))
    assert not page.errors
