"""The app starts, loads the default model in lifespan, and serves the explorer page with its
first view's data inline, under a CSP that forbids inline scripts."""

import json
import re


def initial_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="initial">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def test_explorer_page_carries_the_first_view(client):
    page = client.get("/")
    assert page.status_code == 200
    data = initial_data(page.text)
    assert data["state"]["text"] == "a fluffy blue creature roamed the verdant forest"
    assert {m["id"] for m in data["models"]} == {"smollm2-135m-instruct", "all-minilm-l6-v2"}
    d = data["data"]
    layer = str(data["state"]["layer"])
    assert list(d["attention"]["attention"]) == [layer]
    assert d["head"]["layer"] == data["state"]["layer"] and len(d["grid"]["attention"]) == 30
    assert len(d["predictions"]["predictions"]) == len(d["attention"]["tokens"])
    assert client.app.state.registry.loaded()[0] == "smollm2-135m-instruct"


def test_csp_forbids_inline_scripts_and_every_script_is_a_file(client):
    page = client.get("/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'self'" in csp
    for tag in re.findall(r"<script[^>]*>", page.text):
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_hostile_text_in_the_url_stays_data(client):
    hostile = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"
    page = client.get("/", params={"text": hostile})
    assert "<script>alert(1)" not in page.text and "<img src=x" not in page.text
    assert initial_data(page.text)["state"]["text"] == hostile


def test_bad_url_state_falls_back_and_errors_are_shown(client):
    data = initial_data(client.get("/", params={"layer": "99", "head": "x", "model": "nope"}).text)
    assert data["state"]["model"] == "smollm2-135m-instruct" and data["state"]["layer"] == 29 and data["state"]["head"] == 3
    data = initial_data(client.get("/", params={"text": "word " * 3000}).text)
    assert data["data"] is None and data["error"]["error"] == "too_many_tokens"


def test_plotly_is_served_by_us_compressed_and_cacheable(client):
    page = client.get("/")
    # the explorer preloads it and runs it after the first paint (templates/explorer.html); other pages load it async
    src = re.search(r'<link rel="preload" href="(/vendor/plotly-[0-9a-f]+\.min\.js)" as="script"', page.text).group(1)
    assert re.search(r'<script src="/vendor/plotly-[0-9a-f]+\.min\.js" id="plotly-js" async>', client.get("/lens").text)
    js = client.get(src, headers={"Accept-Encoding": "gzip"})
    assert js.status_code == 200 and js.headers["content-encoding"] == "gzip"
    assert "immutable" in js.headers["cache-control"]
    assert js.text.lstrip().startswith("/**") and "plotly.js" in js.text[:200]
    assert client.get("/vendor/plotly-000000000000.min.js").status_code == 404


def test_static_files_are_served(client):
    css = client.get("/static/css/app.css")
    assert css.status_code == 200 and "prefers-color-scheme" in css.text
    assert client.get("/static/js/main.js").headers["content-type"].startswith("text/javascript")


def test_pages_and_static_files_are_compressed_and_revalidated(client):
    page = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert page.headers["content-encoding"] == "gzip" and int(page.headers["content-length"]) < len(page.content) / 1.5
    js = client.get("/static/js/main.js", headers={"Accept-Encoding": "gzip"})
    assert js.headers["cache-control"] == "no-cache" and js.headers["content-encoding"] == "gzip"
    api = client.post("/api/attention", json={"text": "hello there"}, headers={"Accept-Encoding": "gzip"})
    assert api.headers["content-encoding"] == "gzip" and api.json()["tokens"]  # compressed once, not twice
