"""What a keystroke costs on the wire, and what a first load draws before plotly.js has run (issue 15)."""

import re

from tests.e2e.test_explorer import type_text, wait_rendered
from tests.e2e.wire import exact_head, post

WORDS = ("the fluffy blue creature roamed the verdant forest while the river bank flooded and the money bank "
         "stayed dry; every token starts as a context-free embedding, then a head forms queries, keys and "
         "values, and the weighted sum of values is added back so that a word such as mole or tower comes to "
         "mean what its context says").split()
MAX_KEYSTROKE_BYTES = 1_000_000  # issue 15: at most 1 MB (gzip) per keystroke for a 400-token text


def text_of(model, n_tokens):
    """A text of about n_tokens tokens (the words above, varied a little as they repeat), counted by the
    model's own tokenizer."""
    words = WORDS[:8]
    while len(model.tokenize(" ".join(words))) < n_tokens:
        words += [w if len(words) % 7 else w.upper() for w in WORDS[:8]] if len(words) % 3 else WORDS[:8]
    return " ".join(words)


def test_a_400_token_keystroke_is_under_a_megabyte_and_asks_for_bytes(page, server, smol):
    page.open(server + "/")
    text = text_of(smol, 400)
    n = len(post(server, "/api/attention", text=text, layers=[])["tokens"])
    assert 400 <= n <= 420, n
    page.evaluate("() => { performance.clearResourceTimings(); performance.setResourceTimingBufferSize(10000); }")
    asked = []
    page.on("request", lambda r: r.url.startswith(server + "/api/") and asked.append((r.url[len(server):], r.post_data_json)))
    type_text(page, text)
    wait_rendered(page, text)
    bodies = {(path, tuple(sorted(k for k in b if k not in ("text", "model")))) for path, b in asked if b["text"] == text}
    s = page.state()
    assert bodies == {("/api/attention", ("encoding", "layers", "measure")), ("/api/head", ("head", "layer", "parts")),
                      ("/api/predictions", ("ablate", "ablate_mode", "temperature", "top_k")),
                      ("/api/attention", ("encoding", "measure", "pool"))}, bodies
    by_path = {(p, b.get("pool")): b for p, b in asked if b["text"] == text}
    assert by_path[("/api/attention", None)]["encoding"] == "uint8" and by_path[("/api/attention", None)]["layers"] == [s["layer"]]
    assert by_path[("/api/head", None)]["parts"] == ["pattern"]
    sizes = page.evaluate("""() => performance.getEntriesByType('resource').filter((e) => e.initiatorType === 'fetch')
        .map((e) => [new URL(e.name).pathname, e.transferSize, e.encodedBodySize])""")
    assert len(sizes) == 4 and all(body > 0 for _, _, body in sizes), sizes
    total = sum(t for _, t, _ in sizes)
    assert total <= MAX_KEYSTROKE_BYTES, sizes


def test_the_first_views_are_drawn_before_plotly_runs_then_the_chart(browser, server):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    held = []
    ctx.route(re.compile(r".*/vendor/plotly-\w+\.min\.js$"), lambda route: held.append(route))  # answered below
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(server + "/?token=3")
        page.wait_for_function("() => window.attnscope.painted && window.attnscope.painted.preview")
        assert held, "plotly.js was not asked for at once (preloaded)"
        assert page.evaluate("() => [window.attnscope.rendered, typeof window.Plotly]") == [None, "undefined"]
        s = page.evaluate("() => ({...window.attnscope.store.state})")
        # arrows and predictions are drawn; the heatmap is its picture, in place, its row highlighted
        assert page.locator("#arrows .chip").count() > 0 and page.locator(".pred-list li").count() == 10
        assert page.get_attribute("#heatmap canvas.hm-preview", "aria-label").startswith(f"heatmap of layer {s['layer']}, head {s['head']}")
        assert page.get_attribute("#heatmap .hm-highlight", "data-token") == "3"
        assert page.evaluate("() => document.querySelectorAll('.updating').length") == 0  # drawn, not waiting
        page.locator("#heatmap-panel").screenshot(path="artifacts/screenshots/wire-preview.png")
        for route in held:
            route.continue_()
        page.wait_for_function("() => window.attnscope.rendered && window.attnscope.rendered.grid")
        assert page.locator("#heatmap canvas.hm-preview").count() == 0  # the chart took its place
        z = page.evaluate("() => document.getElementById('heatmap').data[0].z")
        exact = exact_head(server, s["layer"], s["head"], text=s["text"])
        assert all((v is None) if j > i else v == exact[i][j] for i, row in enumerate(z) for j, v in enumerate(row))
        assert page.evaluate("() => window.attnscope.painted.preview") is False
        assert not errors, errors
    finally:
        ctx.close()


def test_a_hovers_late_number_is_never_written_into_another_heads_chart(page, server):
    """The score a hover asks for arrives after the head was changed: the tooltip of the new chart never
    shows it; hovering again asks for the new head's and shows exactly that."""
    held = []

    def route(r):
        body = r.request.post_data_json or {}
        if body.get("parts") == ["scores"]:
            held.append(r)  # the hover's request: answered below, late
        else:
            r.continue_()

    page.route("**/api/head", route)
    page.open(server + "/")
    wait_rendered(page, page.state()["text"])
    s = page.state()
    n = page.locator("#arrows .chip").count()
    area = page.evaluate("() => window.attnscope.geometry('heatmap')")
    page.locator("#heatmap").scroll_into_view_if_needed()
    box = page.locator("#heatmap").bounding_box()
    at = (box["x"] + area["l"] + 0.5 * area["w"] / n, box["y"] + area["t"] + (n - 0.5) * area["h"] / n)  # last query, key 0
    page.mouse.move(*at)
    page.wait_for_function("() => document.querySelector('#heatmap .hm-tip')?.textContent.includes('…')")
    assert len(held) == 1 and held[0].request.post_data_json["head"] == s["head"]
    other = (s["head"] + 1) % 9
    page.select_option("#head", str(other))
    wait_rendered(page, s["text"], head=other)
    old = held.pop(0)
    assert old.request.post_data_json["head"] == s["head"]
    old.continue_()  # the old head's scores, now
    page.evaluate("() => window.attnscope.settled()")
    tip = page.locator("#heatmap .hm-tip")
    assert tip.count() == 0 or tip.is_hidden() or "…" in tip.text_content()  # never the old head's number
    page.mouse.move(1, 1)
    page.mouse.move(*at)
    page.wait_for_function("() => { const t = document.querySelector('#heatmap .hm-tip'); return t && !t.hidden; }")
    assert held and all(r.request.post_data_json["head"] == other for r in held)
    for r in held:
        r.continue_()
    page.wait_for_function("() => !document.querySelector('#heatmap .hm-tip').textContent.includes('…')")
    want = post(server, "/api/head", text=s["text"], layer=s["layer"], head=other, parts=["scores"])["scores"][n - 1][0]
    assert f"score (q·k/√d) {want:.3f}" in page.text_content("#heatmap .hm-tip")
