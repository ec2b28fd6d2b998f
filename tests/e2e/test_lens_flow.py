"""/lens's information flow graph: the edges drawn are the API's routes for the token and threshold
on screen (after moving the slider and picking a token too), an edge's hover text holds the API's
numbers, the URL holds the token and threshold, and at 390 px the graph scrolls inside its own box."""

import httpx

from tests.e2e.conftest import Page
from tests.e2e.test_explorer import page_artifact

TEXT = "a fluffy blue creature roamed the verdant forest"


def api_flow(server, **body):
    r = httpx.post(server + "/api/flow", json={"text": TEXT, **body}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def drawn(page):
    return {tuple(int(x) if x.isdigit() else x for x in e.split()) for e in
            page.eval_on_selector_all(".flow-edge", "es => es.map(e => e.dataset.edge)")}


def routes(j):
    return {(e["kind"], e["layer"], e["source"], e["target"]) for e in j["graph"]}


def wait_flow(page, marker):
    page.wait_for_function(f"() => document.body.dataset.flow === {marker!r}")


def test_the_graph_on_screen_is_the_api_s(page, server):
    page.open(server + "/lens?" + str(httpx.QueryParams({"text": TEXT})))
    page.wait_for_function(f"() => document.body.dataset.flowRendered === {TEXT!r}")
    j = api_flow(server)
    last = len(j["tokens"]) - 1
    wait_flow(page, f"smollm2-135m-instruct|{last}|0.04")
    assert drawn(page) == routes(j) and len(routes(j)) > 50
    assert f"{len(j['graph'])} edges" in page.text_content("#flow-note")
    assert page.get_attribute(f'.flow-pick[data-i="{last}"]', "aria-pressed") == "true"

    # the slider: a new threshold, drawn from the same response (no request), equal to the API's
    page.eval_on_selector("#flow-threshold", "e => { e.value = '0.1'; e.dispatchEvent(new Event('input')); }")
    wait_flow(page, f"smollm2-135m-instruct|{last}|0.1")
    assert drawn(page) == routes(api_flow(server, threshold=0.1))
    assert page.text_content("#flow-threshold-out") == "0.10"

    # pick 'creature' at the top
    page.click('.flow-pick[data-i="3"]')
    wait_flow(page, "smollm2-135m-instruct|3|0.1")
    j3 = api_flow(server, position=3, threshold=0.1)
    assert drawn(page) == routes(j3)
    assert "token=3" in page.url and "tau=0.1" in page.url

    # hover an attention edge between two tokens: its numbers are the API's
    edge = next(e for e in j3["graph"] if e["kind"] == "attention" and e["source"] != e["target"])
    L, src, dst = edge["layer"], edge["source"], edge["target"]
    a = j3["attention"][L]
    e = next(k for k, (q, s) in enumerate(zip(a["query"], a["key"])) if (q, s) == (dst, src))
    k = page.get_attribute(f'.flow-edge[data-edge="attention {L} {src} {dst}"]', "data-k")
    page.hover(f'.flow-hit[data-k="{k}"]', force=True)
    info = page.text_content(".flow-info")
    assert info.startswith(f"Layer {L}, attention") and f"({src}) → " in info and f"importance {a['importance'][e]:.4f}" in info
    assert ", ".join(f"H{h} {m:.4f}" for h, m in zip(a["heads"][e], a["moved"][e])) in info
    page.mouse.move(0, 0)  # off the graph (leaving a line resets the text), then a tap: its numbers stay for the picture
    page.locator(f'.flow-hit[data-k="{k}"]').dispatch_event("click")
    assert page.text_content(".flow-info") == info
    page.locator("#flow-panel").screenshot(path=str(page_artifact("flow-hover-1280")))

    # the permalink brings the same graph back
    page.open(page.url)
    wait_flow(page, "smollm2-135m-instruct|3|0.1")
    assert drawn(page) == routes(j3)
    assert not page.errors


def test_the_graph_scrolls_in_its_box_on_a_phone(browser, server):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = Page(ctx.new_page())
    try:
        long = TEXT + ", and then it sang a long song to the moon about rivers, stones and the sea"
        page.open(server + "/lens?" + str(httpx.QueryParams({"text": long})))
        page.wait_for_function(f"() => document.body.dataset.flowRendered === {long!r}")
        sizes = page.evaluate("""() => { const s = document.querySelector('.flow-scroll');
          return [document.documentElement.scrollWidth, innerWidth, s.scrollWidth, s.clientWidth, s.scrollLeft]; }""")
        page_w, inner, box_w, box_client, left = sizes
        assert page_w <= inner and box_w > 3 * box_client and left > 0  # the box scrolls, the page does not; the chosen (last) token is in view
        j = httpx.post(server + "/api/flow", json={"text": long}, timeout=120).json()
        assert drawn(page) == routes(j)
        # a tap on an edge shows its numbers
        k = page.get_attribute(".flow-edge.flow-mlp_residual", "data-k")
        page.locator(f'.flow-hit[data-k="{k}"]').dispatch_event("click")
        assert "past the MLP: importance" in page.text_content(".flow-info")
        page.locator("#flow-panel").screenshot(path=str(page_artifact("flow-390")))
        assert not page.errors
    finally:
        ctx.close()


def test_the_encoder_s_graph(page, server):
    page.open(server + "/lens?" + str(httpx.QueryParams({"text": TEXT, "model": "all-minilm-l6-v2", "token": 0})))
    wait_flow(page, "all-minilm-l6-v2|0|0.04")
    j = api_flow(server, model="all-minilm-l6-v2", position=0)
    assert drawn(page) == routes(j)
    assert any(e["source"] > e["target"] for e in j["graph"] if e["kind"] == "attention")  # later tokens reach [CLS]
    # the keyboard: Enter on a top token picks it, and the focus stays on it
    page.focus('.flow-pick[data-i="2"]')
    page.keyboard.press("Enter")
    wait_flow(page, "all-minilm-l6-v2|2|0.04")
    assert drawn(page) == routes(api_flow(server, model="all-minilm-l6-v2", position=2))
    assert page.evaluate("() => document.activeElement.dataset.i") == "2"
    assert not page.errors
