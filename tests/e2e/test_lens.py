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
    # one reading at a time (weight or what moved, key 0 kept or left out): 5 patterns x the top 6
    assert len(links) == 5 * 6 and all(link.startswith("/?") and "layer=" in link for link in links)
    heads = httpx.post(server + "/api/heads", json={"text": TEXT, "top": 6}, timeout=60).json()
    first = page.eval_on_selector(".finder-top a", "a => a.textContent")
    t = heads["top"]["previous"][0]
    assert first.startswith(f"layer {t['layer']}, head {t['head']}")
    page.locator("main").screenshot(path=str(page_artifact("lens-and-head-finder")))
    for measure, sink, names in (
            ("weight", "left out", ["previous_no_sink", "first", "self_no_sink", "broad_no_sink", "induction_no_sink"]),
            ("moved", "left out", ["previous_moved_no_sink", "first_moved", "self_moved_no_sink", "broad_moved_no_sink",
                                   "induction_moved_no_sink"]),
            ("moved", "kept", ["previous_moved", "first_moved", "self_moved", "broad_moved", "induction_moved"])):
        page.check(f"input[name='finder-measure'][value='{measure}']")
        page.check(f"input[name='finder-sink'][value='{sink}']")
        page.wait_for_function(f"() => [...document.querySelectorAll('.finder')].map((s) => s.dataset.score).join() === {','.join(names)!r}")
        shown = page.eval_on_selector_all(".finder", "ss => ss.map((s) => [s.querySelector('.formula').textContent, "
                                          "[...s.querySelectorAll('.finder-top a')].map((a) => a.textContent)])")
        for name, (formula, tops) in zip(names, shown):  # each panel: its formula and the API's top heads, in order
            assert formula == heads["formulas"][name]
            assert tops == [f"layer {h['layer']}, head {h['head']}: {h['score']:.3f}" for h in heads["top"][name]]
    page.locator("#heads-out").screenshot(path=str(page_artifact("head-finder-moved-kept")))
    page.check("input[name='finder-measure'][value='weight']")
    page.check("input[name='finder-sink'][value='kept']")
    page.wait_for_function("() => document.querySelector('.finder').dataset.score === 'previous'")
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
