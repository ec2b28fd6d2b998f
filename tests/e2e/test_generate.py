"""Letting the model write, in the explorer (static/js/explorer/write.js): the tokens it streams are the
API's, every step of the timeline shows the numbers the API gives for that step (the ids as written,
`then`), Stop stops, a click on a prediction writes it, and the permalink brings the same step back."""

import httpx

from tests.e2e.conftest import WAIT_MS
from tests.e2e.test_explorer import arrows, settle
from tests.e2e.wire import TO_FIXED_4, drawn_layer

PROMPT = "The capital of France is"


def api(server, path, **body):
    r = httpx.post(server + path, json=body, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def wait_shown(page, then, grid=False):
    """Until the arrows, heatmap and predictions show the text with these ids written after it."""
    page.wait_for_function(
        """([then, grid]) => { const r = window.attnscope.rendered;
            return r && JSON.stringify(r.then) === JSON.stringify(then) && (!grid || r.grid); }""",
        arg=[then, grid], timeout=WAIT_MS)


def write(page, n, **settings):
    page.fill("#write-count", str(n))
    page.dispatch_event("#write-count", "change")
    for name, value in settings.items():
        page.fill(f"#write-{name}", str(value))
        page.dispatch_event(f"#write-{name}", "change")
    page.click("#write-n")


def test_write_then_scrub_the_timeline(page, server):
    page.open(server + "/?text=" + PROMPT.replace(" ", "+"))
    page.wait_for_function("() => window.attnscope.rendered")
    write(page, 12)
    page.wait_for_function("() => window.attnscope.store.state.writing === false && window.attnscope.store.state.then.length === 12")
    expected = api(server, "/api/generate", text=PROMPT, max_new_tokens=12)
    s = page.state()
    assert s["then"] == expected["then"] and s["text"] == PROMPT
    wait_shown(page, expected["then"], grid=True)
    assert page.input_value("#text") == PROMPT + expected["text"]
    assert page.locator(".tl-chip").count() == 12
    assert "wrote 12 tokens" in page.text_content("#write-status")
    page.shot("generate-written")

    # step 4 of the timeline: every view shows prompt + the first 4 ids, as the API computes them
    page.click(".tl-chip >> nth=3")
    then = expected["then"][:4]
    wait_shown(page, then)
    s = page.state()
    assert s["upto"] == 4 and "upto=4" in page.evaluate("() => window.attnscope.store.query()")
    att = api(server, "/api/attention", text=PROMPT, then=then, layers=[s["layer"]])
    P = att["attention"][str(s["layer"])][s["head"]]
    n = len(att["tokens"])
    assert page.locator("#arrows .chip").count() == n
    z = page.evaluate("() => document.getElementById('heatmap').data[0].z")
    assert len(z) == n
    for i, row in enumerate(z):
        for j, v in enumerate(row):
            assert (v is None) if j > i else abs(v - P[i][j]) <= 1e-4
    page.hover(f".chip[data-index='{n - 1}']")  # the newest token: what it looks at
    page.wait_for_function(f"() => window.attnscope.store.state.token === {n - 1}")
    _, D = drawn_layer(server, s["layer"], text=PROMPT, then=then)  # the arrows draw the layer's bytes
    for h, q, k, w in arrows(page):
        assert q == n - 1 and abs(w - D[h][q][k]) <= TO_FIXED_4
    # the predictions after the newest token: the API's, with the token written next marked
    preds = api(server, "/api/predictions", text=PROMPT, then=then, top_k=10)["predictions"][n - 1]
    shown = page.eval_on_selector_all(".pred-list li", "ls => ls.map(l => [Number(l.dataset.id), Number(l.dataset.prob)])")
    assert shown == [[p["id"], p["prob"]] for p in preds]
    assert page.get_attribute(".pred-list li.written-next", "data-id") == str(expected["then"][4])
    assert "the likeliest token (greedy)" in page.text_content(".written-note")
    assert page.input_value("#text") == PROMPT + expected["text"][:expected["tokens"][3]["end"] - len(PROMPT)]
    page.shot("generate-step-4")

    # the permalink brings the same step back, numbers and all
    url = server + "/?" + page.evaluate("() => window.attnscope.store.query()")
    page.open(url)
    wait_shown(page, then)
    assert page.state()["then"] == expected["then"] and page.state()["upto"] == 4
    assert page.locator(".tl-chip").count() == 12 and page.get_attribute(".tl-chip >> nth=3", "aria-current") == "true"
    z2 = page.evaluate("() => document.getElementById('heatmap').data[0].z")
    assert z2 == z
    # the export links carry the ids shown
    assert "then=" + "%2C".join(map(str, then)) in page.get_attribute("a[data-export-link='heatmap.json']", "href")
    assert not page.errors and not page.dialogs


def test_a_prediction_clicked_is_written_next_and_an_edit_makes_it_typed(page, server):
    page.open(server + "/?text=" + PROMPT.replace(" ", "+"))
    page.wait_for_function("() => window.attnscope.rendered")
    second = int(page.get_attribute(".pred-list li >> nth=1", "data-id"))  # not the likeliest
    page.click(".pred-list li >> nth=1 >> .pred-append")
    wait_shown(page, [second])
    att = api(server, "/api/attention", text=PROMPT, then=[second], layers=[0])
    assert page.input_value("#text") == att["text"]
    assert page.locator(".tl-chip").count() == 1
    # the likeliest next token, one click
    page.click("#write-one")
    page.wait_for_function("() => window.attnscope.store.state.then.length === 2 && !window.attnscope.store.state.writing")
    best = api(server, "/api/generate", text=PROMPT, then=[second], max_new_tokens=1)["then"]
    assert page.state()["then"] == best
    wait_shown(page, best)
    # typing in the box: the text is now typed text, read by the tokenizer
    page.fill("#text", page.input_value("#text") + " and")
    page.wait_for_function("() => window.attnscope.store.state.then.length === 0")
    assert page.locator("#timeline").is_hidden()
    assert not page.errors


def test_stop_stops_and_sampling_replays_from_the_permalink(page, server):
    page.open(server + "/?text=" + PROMPT.replace(" ", "+"))
    page.wait_for_function("() => window.attnscope.rendered")
    write(page, 128, t=0.8, topk=40, seed=11)
    page.wait_for_function("() => window.attnscope.store.state.then.length >= 3")
    page.click("#write-stop")
    page.wait_for_function("() => window.attnscope.store.state.writing === false")
    s = page.state()
    assert 3 <= len(s["then"]) < 128 and "stopped after" in page.text_content("#write-status")
    wait_shown(page, s["then"])
    # the same seed and settings write the same tokens: the API's, from the first token on
    again = api(server, "/api/generate", text=PROMPT, max_new_tokens=len(s["then"]), temperature=0.8, top_k=40, seed=11)
    assert again["then"] == s["then"]
    q = page.evaluate("() => window.attnscope.store.query()")
    assert all(part in q for part in ("wt=0.8", "topk=40", "seed=11"))
    page.open(server + "/?" + q)
    assert page.input_value("#write-t") == "0.8" and page.input_value("#write-seed") == "11"
    settle(page)
    assert not page.errors


def test_chat_frames_the_prompt(page, server):
    page.open(server + "/?text=Name+three+colours.")
    page.wait_for_function("() => window.attnscope.rendered")
    page.check("#write-chat")
    write(page, 8)
    page.wait_for_function("() => window.attnscope.store.state.then.length === 8 && !window.attnscope.store.state.writing")
    expected = api(server, "/api/generate", text="Name three colours.", chat=True, max_new_tokens=8)
    s = page.state()
    assert s["text"] == expected["prompt"] and s["text"].startswith("<|im_start|>") and s["then"] == expected["then"]
    wait_shown(page, expected["then"])
    assert page.is_disabled("#write-chat")  # the text is framed already: a further write continues it
    assert not page.errors


def test_explain_shows_a_step_of_the_writing(page, server):
    """The explorer's "explain this head" link at a step: the head's numbers for the ids as written, also
    after choosing another layer (the page's own request carries them)."""
    d = api(server, "/api/generate", text=PROMPT, max_new_tokens=6)
    then = ",".join(map(str, d["then"]))
    page.open(f"{server}/explain?text={PROMPT.replace(' ', '+')}&then={then}&upto=3&layer=2&head=3")
    want = api(server, "/api/head", text=PROMPT, then=d["then"][:3], layer=2, head=3, detail=True)
    assert page.evaluate("() => window.attnscope.data.tokens.map(t => t.id)") == [t["id"] for t in want["tokens"]]
    assert page.input_value("#text") == PROMPT + d["text"][:d["tokens"][2]["end"] - len(PROMPT)]
    page.select_option("#layer", "5")
    want5 = api(server, "/api/head", text=PROMPT, then=d["then"][:3], layer=5, head=3, detail=True)
    page.wait_for_function("() => window.attnscope.data.layer === 5")
    assert page.evaluate("() => window.attnscope.data.z") == want5["z"]
    assert "then=" in page.evaluate("() => location.search") and "upto=3" in page.evaluate("() => location.search")
    assert not page.errors


def test_presenting_steps_through_what_was_written(page, server):
    d = api(server, "/api/generate", text=PROMPT, max_new_tokens=5)
    then = ",".join(map(str, d["then"]))
    page.open(f"{server}/?text={PROMPT.replace(' ', '+')}&then={then}&upto=2&present=1")
    wait_shown(page, d["then"][:2])
    page.keyboard.press("PageDown")
    wait_shown(page, d["then"][:3])
    assert "step 3 of 5" in page.text_content(".present-where")
    page.keyboard.press("PageDown")
    page.keyboard.press("PageDown")
    wait_shown(page, d["then"])
    assert page.state()["upto"] == -1
    page.keyboard.press("PageUp")
    wait_shown(page, d["then"][:4])
    assert not page.errors
