"""Embeds (/embed/{view}) and oEmbed (/oembed): the inline data is the API's, only embeds may be
framed by other sites, bad URLs say what is wrong inside the frame."""

import json
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest


TEXT = "the cat sat on the mat because it was tired"
VIEWS = ["arrows", "heatmap", "grid"]


def initial_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="initial">(.*?)</script>', html, re.S)
    assert m, "the embed carries no inline data"
    return json.loads(m.group(1))


def embed(client, view, **params):
    return client.get(f"/embed/{view}?{urlencode(params)}")


def api(client, path, **body):
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_heatmap_embed_carries_the_apis_pattern_and_scores(client):
    r = embed(client, "heatmap", text=TEXT, layer=5, head=1, token=7)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    d = initial_data(r.text)
    assert d["view"] == "heatmap" and d["error"] is None
    assert (d["state"]["layer"], d["state"]["head"], d["state"]["token"]) == (5, 1, 7)
    att = api(client, "/api/attention", text=TEXT, layers=[5])
    assert d["data"]["attention"]["attention"]["5"] == att["attention"]["5"]
    assert d["data"]["attention"]["tokens"] == att["tokens"]
    head = api(client, "/api/head", text=TEXT, layer=5, head=1)
    assert d["data"]["head"]["scores"] == head["scores"] and d["data"]["head"]["pattern"] == head["pattern"]
    assert re.search(r'<script src="/vendor/plotly-[0-9a-f]{12}\.min\.js" id="plotly-js" async></script>', r.text)
    assert client.get(re.search(r'src="(/vendor/plotly-[^"]+)"', r.text).group(1)).status_code == 200


def test_arrows_embed_carries_the_apis_pattern(client):
    d = initial_data(embed(client, "arrows", text=TEXT, model="all-minilm-l6-v2", layer=3, head=11).text)
    att = api(client, "/api/attention", text=TEXT, model="all-minilm-l6-v2", layers=[3])
    assert d["error"] is None and d["model"]["id"] == "all-minilm-l6-v2"
    assert d["data"]["attention"]["attention"] == att["attention"] and d["data"]["attention"]["tokens"] == att["tokens"]


def test_grid_embed_carries_every_layer_as_the_api_sends_it(client):
    d = initial_data(embed(client, "grid", text=TEXT, layer=29, head=8).text)
    grid = api(client, "/api/attention", text=TEXT, encoding="uint8")
    assert d["error"] is None and len(d["data"]["grid"]["attention"]) == 30
    assert d["data"]["grid"]["attention"] == grid["attention"]


@pytest.mark.parametrize("view", VIEWS)
def test_every_embed_is_chromeless_themeable_and_links_back(client, view):
    r = embed(client, view, text=TEXT, layer=1, head=2, theme="dark", static="1")
    assert r.status_code == 200
    assert '<html lang="en" data-theme="dark">' in r.text
    assert 'class="nav"' not in r.text and "<header" not in r.text  # no site chrome
    d = initial_data(r.text)
    assert d["state"]["static"] is True and d["state"]["theme"] == "dark"
    link = re.search(r'<a id="explorer-link" href="([^"]+)"', r.text).group(1).replace("&amp;", "&")
    q = parse_qs(urlsplit(link).query)
    assert urlsplit(link).path == "/" and q["text"] == [TEXT] and q["layer"] == ["1"] and q["head"] == ["2"]
    assert ">attnscope</a>" in r.text
    alt = re.search(r'<link rel="alternate" type="application/json\+oembed" href="([^"]+)"', r.text).group(1)
    oe = client.get(alt.replace("&amp;", "&").replace("http://testserver", ""))
    assert oe.status_code == 200 and f"/embed/{view}?" in oe.json()["html"]
    assert embed(client, view, theme="purple").text.startswith('<!doctype html>\n<html lang="en" data-theme="auto">')


def test_only_embeds_may_be_framed_by_other_sites(client):
    for view in VIEWS:
        csp = embed(client, view).headers["content-security-policy"]
        assert "frame-ancestors *" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'self'" in client.get("/").headers["content-security-policy"]
    assert "frame-ancestors 'self'" in client.get("/oembed?url=http://testserver/").headers["content-security-policy"]


def test_an_unknown_view_is_a_404_page_that_says_so(client):
    r = client.get("/embed/lines")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "there is no embed called &#39;lines&#39;: use one of arrows, heatmap, grid" in r.text
    assert initial_data(r.text)["error"]["error"] == "unknown_view"
    assert client.get("/embed/heatmap/extra").status_code == 404


@pytest.mark.parametrize("params, code, words", [
    ({"model": "gpt-9"}, "unknown_model", "unknown model &#39;gpt-9&#39;"),
    ({"text": ""}, "bad_parameter", "the text is empty"),
    ({"text": "   "}, "bad_parameter", "the text is empty"),
    ({"text": "word " * 600}, "too_many_tokens", "this model takes at most 512"),
    ({"layer": "two"}, "bad_parameter", "layer must be a whole number"),
    ({"layer": "30"}, "out_of_range", "layer 30 is out of range"),
    ({"head": "9"}, "out_of_range", "head 9 is out of range"),
    ({"token": "99"}, "bad_parameter", "token 99 is out of range"),
])
@pytest.mark.parametrize("view", VIEWS)
def test_bad_parameters_show_a_message_in_the_frame(client, view, params, code, words):
    r = embed(client, view, **params)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    d = initial_data(r.text)
    assert d["error"]["error"] == code and d["data"] is None
    error = re.search(r'<p id="error"[^>]*>(.*?)</p>', r.text, re.S)
    assert "hidden" not in error.group(0).split(">")[0] and words in error.group(1)  # visible without any script
    assert "frame-ancestors *" in r.headers["content-security-policy"]


@pytest.mark.parametrize("view, size", [("arrows", (640, 300)), ("heatmap", (640, 600)), ("grid", (640, 440))])
def test_oembed_for_every_embed_view(client, view, size):
    url = f"http://testserver/embed/{view}?{urlencode({'text': TEXT, 'layer': 4, 'head': 0, 'theme': 'light'})}"
    r = client.get("/oembed", params={"url": url, "format": "json"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    o = r.json()
    assert o["type"] == "rich" and o["version"] == "1.0" and (o["width"], o["height"]) == size
    assert o["provider_name"] == "attnscope" and o["provider_url"] == "http://testserver/" and o["cache_age"] > 0
    assert TEXT in o["title"]
    m = re.fullmatch(r'<iframe src="([^"]+)" width="(\d+)" height="(\d+)" title="([^"]+)" loading="lazy" '
                     r'style="border:0;width:100%"></iframe>', o["html"])
    assert m and (int(m.group(2)), int(m.group(3))) == size
    src = urlsplit(m.group(1).replace("&amp;", "&"))
    assert src.path == f"/embed/{view}"
    assert parse_qs(src.query) == {"text": [TEXT], "layer": ["4"], "head": ["0"], "theme": ["light"]}
    assert client.get(f"{src.path}?{src.query}").status_code == 200  # the iframe's page renders


def test_oembed_respects_maxwidth_and_maxheight(client):
    o = client.get("/oembed", params={"url": "http://testserver/embed/heatmap", "maxwidth": 320, "maxheight": 250}).json()
    assert (o["width"], o["height"]) == (320, 250) and 'width="320" height="250"' in o["html"]
    o = client.get("/oembed", params={"url": "http://testserver/embed/grid", "maxwidth": 2000}).json()
    assert (o["width"], o["height"]) == (640, 440)
    r = client.get("/oembed", params={"url": "http://testserver/embed/grid", "maxwidth": "wide"})
    assert r.status_code == 400 and r.json()["error"] == "bad_parameter"


def test_oembed_maps_an_explorer_url_to_the_heatmap_embed(client):
    url = "http://testserver/?" + urlencode({"text": TEXT, "layer": 7, "head": 2, "locked": 1, "dir": "in"})
    o = client.get("/oembed", params={"url": url}).json()
    src = urlsplit(re.search(r'src="([^"]+)"', o["html"]).group(1).replace("&amp;", "&"))
    assert src.path == "/embed/heatmap" and parse_qs(src.query) == {"text": [TEXT], "layer": ["7"], "head": ["2"]}


@pytest.mark.parametrize("url", ["http://example.com/embed/heatmap", "https://evil.testserver.com/embed/grid",
                                 "http://testserver/lens", "http://testserver/embed/lines", "javascript:alert(1)", ""])
def test_oembed_refuses_urls_that_are_not_ours(client, url):
    r = client.get("/oembed", params={"url": url})
    assert r.status_code == 404 and r.json()["error"] == "not_found" and r.json()["detail"]


def test_oembed_xml_is_not_implemented(client):
    r = client.get("/oembed", params={"url": "http://testserver/embed/heatmap", "format": "xml"})
    assert r.status_code == 501 and set(r.json()) == {"error", "detail"}
