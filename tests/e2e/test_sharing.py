"""Sharing beyond this machine, in Chromium: an embed framed by a slide deck opened from a file renders
(the explorer still refuses to be framed), and with ATTNSCOPE_PUBLIC_URL set the Embed dialog's snippet,
its link and the embed's own "open in attnscope" link use the public address, not the one the page was
opened at."""

import os
from urllib.parse import urlencode

import httpx
import pytest

from tests.e2e.test_embed import embed_frame
from tests.e2e.conftest import ready_server

DECK = """<!doctype html>
<html><head><meta charset="utf-8"><title>slides</title></head>
<body><section><h1>Attention</h1><iframe id="f" src="{src}" style="border:0;width:100%;height:420px" title="embed"></iframe></section></body></html>"""


def test_an_embed_renders_in_a_deck_opened_from_a_file(page, server, tmp_path):
    deck = tmp_path / "deck.html"
    deck.write_text(DECK.format(src=f"{server}/embed/heatmap?" + urlencode({"text": "the cat sat on the mat", "layer": 3, "head": 1})))
    page.goto(deck.as_uri())
    frame = embed_frame(page)
    frame.wait_for_selector("#view .main-svg")
    api = httpx.post(f"{server}/api/attention", json={"text": "the cat sat on the mat", "layers": [3], "encoding": "json"}).json()
    shown = frame.evaluate("() => document.getElementById('view').data[0].z")
    row = [v for v in shown[-1] if v is not None]
    assert row == pytest.approx(api["attention"]["3"][1][-1], abs=1e-4)  # the API's json rounds to 4 places
    assert frame.evaluate("() => document.getElementById('error').hidden")
    assert page.errors == [], page.errors


def test_the_explorer_is_not_framed_by_a_file_either(page, server, tmp_path):
    deck = tmp_path / "deck-explorer.html"
    deck.write_text(DECK.format(src=f"{server}/"))
    with page.expect_console_message(lambda m: "frame-ancestors" in m.text):
        page.goto(deck.as_uri())
    frame = page.frames[1]
    frame.wait_for_url(lambda url: not url.startswith(server))  # Chromium's error page replaces the refused one
    assert frame.evaluate("() => document.getElementById('initial') === null")


PUBLIC = "http://attnscope.test"


@pytest.fixture(scope="module")
def public_server(cache_dir, smol):
    """A second server whose public URL is http://attnscope.test (a name the test's browser context routes
    to it, as a reverse proxy would) while the browser also opens it at http://127.0.0.1:PORT: two
    origins of one server, so every link can be told apart."""
    env = {**os.environ, "ATTNSCOPE_CACHE_DIR": str(cache_dir), "ATTNSCOPE_PRELOAD": "default", "ATTNSCOPE_PUBLIC_URL": PUBLIC}
    with ready_server(env) as s:
        yield s.url, PUBLIC


def test_with_a_public_url_snippets_and_links_use_it(page, public_server):
    local, public = public_server
    # the proxy: requests for the public name reach the server (with its own Host, which it allows)
    page.context.route(f"{public}/**", lambda route: route.fulfill(response=route.fetch(url=route.request.url.replace(public, local, 1))))
    page.open(f"{local}/?" + urlencode({"text": "a fluffy blue creature", "layer": 4, "head": 2}))
    page.click("#embed-open")
    page.wait_for_selector("#share[open]")
    page.wait_for_function("() => document.getElementById('share-html').value.includes('/embed/heatmap')")
    snippet, link = page.input_value("#share-html"), page.input_value("#share-link")
    assert f'src="{public}/embed/heatmap?' in snippet and local not in snippet
    assert link.startswith(f"{public}/?") and "layer=4" in link
    # the preview is that very iframe, served from the public address, and it still resizes itself
    frame = page.frame_locator("#share-preview iframe")
    frame.locator("body[data-ready='1']").wait_for()
    page.wait_for_function("() => parseInt(document.querySelector('#share-preview iframe').style.height) > 150")
    embed = next(f for f in page.frames if "/embed/" in f.url)
    assert embed.url.startswith(f"{public}/embed/heatmap")
    assert embed.get_attribute("#explorer-link", "href").startswith(f"{public}/?")
    assert page.errors == [], page.errors
