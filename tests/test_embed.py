"""Embeds (/embed/{view}) and oEmbed (/oembed): the inline data is the API's, only embeds may be
framed by other sites, bad URLs say what is wrong inside the frame."""

import json
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from tests.client import post_ok as api


TEXT = "the cat sat on the mat because it was tired"
HEAD_VIEWS = ["arrows", "heatmap", "grid"]
VIEWS = HEAD_VIEWS + ["explain", "compare", "lens"]
MOLE = ["American shrew mole", "one mole of carbon dioxide", "take a biopsy of the mole"]


def initial_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="initial">(.*?)</script>', html, re.S)
    assert m, "the embed carries no inline data"
    return json.loads(m.group(1))


def embed(client, view, **params):
    return client.get(f"/embed/{view}?{urlencode(params)}")


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


@pytest.mark.parametrize("view", HEAD_VIEWS)
def test_head_embeds_show_what_moved_with_measure_moved(client, view):
    """measure=moved (the explorer's "what it moved" toggle): the inline data is /api/attention's with
    "measure": "moved", and the link back, the oEmbed snippet and its title keep the measure."""
    params = {"text": TEXT, "layer": 5, "head": 1, "token": 7, "measure": "moved"}
    r = embed(client, view, **params)
    assert r.status_code == 200, r.text
    d = initial_data(r.text)
    assert d["error"] is None and d["state"]["measure"] == "moved"
    if view == "grid":
        att = api(client, "/api/attention", text=TEXT, encoding="uint8", measure="moved")
        assert d["data"]["grid"]["attention"] == att["attention"] and d["data"]["grid"]["measure"] == "moved"
    else:
        att = api(client, "/api/attention", text=TEXT, layers=[5], measure="moved")
        assert d["data"]["attention"]["attention"] == att["attention"] and d["data"]["attention"]["measure"] == "moved"
    link = re.search(r'<a id="explorer-link" href="([^"]+)"', r.text).group(1).replace("&amp;", "&")
    assert urlsplit(link).path == "/" and parse_qs(urlsplit(link).query)["measure"] == ["moved"]
    o = client.get("/oembed", params={"url": f"http://testserver/embed/{view}?{urlencode(params)}"}).json()
    assert "measure=moved" in o["html"] and "(what it moved)" in o["title"]
    # the weights stay the default, and say nothing of it
    w = initial_data(embed(client, view, text=TEXT, layer=5, head=1).text)
    assert w["state"]["measure"] == "weight"
    assert "measure" not in client.get("/oembed", params={"url": f"http://testserver/embed/{view}?text=x"}).json()["html"]


def test_an_explorer_url_in_moved_mode_embeds_what_moved(client):
    url = "http://testserver/?" + urlencode({"text": TEXT, "layer": 2, "head": 3, "measure": "moved"})
    o = client.get("/oembed", params={"url": url}).json()
    src = re.search(r'src="([^"]+)"', o["html"]).group(1).replace("&amp;", "&")
    assert urlsplit(src).path == "/embed/heatmap" and parse_qs(urlsplit(src).query)["measure"] == ["moved"]


@pytest.mark.parametrize("view", HEAD_VIEWS)
def test_a_bad_measure_says_so_in_the_frame(client, view):
    r = embed(client, view, measure="norms")
    assert r.status_code == 422
    assert initial_data(r.text)["error"] == {"error": "bad_parameter", "detail":
                                             "measure must be weight (where it looks) or moved (what it moved), not 'norms'"}


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
    if view in HEAD_VIEWS:
        assert urlsplit(link).path == "/" and q["text"] == [TEXT] and q["layer"] == ["1"] and q["head"] == ["2"]
    else:  # their own full page (see test_the_embed_links_back_to_its_full_page)
        assert urlsplit(link).path == f"/{view}"
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
@pytest.mark.parametrize("view", HEAD_VIEWS + ["explain"])
def test_bad_parameters_show_a_message_in_the_frame(client, view, params, code, words):
    r = embed(client, view, **params)
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    d = initial_data(r.text)
    assert d["error"]["error"] == code and d["data"] is None
    error = re.search(r'<p id="error"[^>]*>(.*?)</p>', r.text, re.S)
    assert "hidden" not in error.group(0).split(">")[0] and words in error.group(1)  # visible without any script
    assert "frame-ancestors *" in r.headers["content-security-policy"]


OEMBED_CASES = {  # view: (its URL parameters, the iframe's default size)
    "arrows": ({"text": TEXT, "layer": 4, "head": 0, "theme": "light"}, (640, 300)),
    "heatmap": ({"text": TEXT, "layer": 4, "head": 0, "theme": "light"}, (640, 600)),
    "grid": ({"text": TEXT, "layer": 4, "head": 0, "theme": "light"}, (640, 440)),
    "explain": ({"text": TEXT, "layer": 4, "head": 0, "token": 2, "step": 3, "theme": "light"}, (640, 640)),
    "compare": ({"word": "mole", "sentences": MOLE, "theme": "light"}, (640, 860)),
    "lens": ({"text": TEXT, "theme": "light"}, (640, 780)),
}


@pytest.mark.parametrize("view", VIEWS)
def test_oembed_for_every_embed_view(client, view):
    params, size = OEMBED_CASES[view]
    url = f"http://testserver/embed/{view}?{urlencode(params, doseq=True)}"
    r = client.get("/oembed", params={"url": url, "format": "json"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    o = r.json()
    assert o["type"] == "rich" and o["version"] == "1.0" and (o["width"], o["height"]) == size
    assert o["provider_name"] == "attnscope" and o["provider_url"] == "http://testserver/" and o["cache_age"] > 0
    assert (TEXT if view != "compare" else "“mole” in 3 sentences") in o["title"]
    assert {"type", "version", "html", "width", "height"} <= set(o)  # oEmbed 1.0's required fields for type rich
    m = re.fullmatch(r'<iframe src="([^"]+)" width="(\d+)" height="(\d+)" title="([^"]+)" loading="lazy" '
                     r'style="border:0;width:100%"></iframe>', o["html"])
    assert m and (int(m.group(2)), int(m.group(3))) == size
    src = urlsplit(m.group(1).replace("&amp;", "&"))
    assert src.path == f"/embed/{view}"
    assert parse_qs(src.query) == {k: [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in params.items()}
    page = client.get(f"{src.path}?{src.query}")  # the iframe's page renders, without an error
    assert page.status_code == 200 and initial_data(page.text)["error"] is None


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
                                 "http://testserver/lesson", "http://testserver/docs", "http://testserver/embed/lines", "javascript:alert(1)", ""])
def test_oembed_refuses_urls_that_are_not_ours(client, url):
    r = client.get("/oembed", params={"url": url})
    assert r.status_code == 404 and r.json()["error"] == "not_found" and r.json()["detail"]


def test_oembed_xml_is_not_implemented(client):
    r = client.get("/oembed", params={"url": "http://testserver/embed/heatmap", "format": "xml"})
    assert r.status_code == 501 and set(r.json()) == {"error", "detail"}


def test_explain_embed_carries_the_apis_head_detail(client):
    d = initial_data(embed(client, "explain", text=TEXT, layer=5, head=1, token=7, step=4).text)
    head = api(client, "/api/head", text=TEXT, layer=5, head=1, detail=True)
    assert d["error"] is None and d["data"]["head"] == head
    assert (d["state"]["token"], d["state"]["step"], d["state"]["all"]) == (7, 4, False)
    # no token: the lesson sentence's 'creature', any other text's last token (as on /explain)
    assert initial_data(embed(client, "explain").text)["state"]["token"] == 3
    assert initial_data(embed(client, "explain", text=TEXT).text)["state"]["token"] == len(head["tokens"]) - 1


def test_compare_embed_carries_the_apis_similarities(client):
    r = client.get("/embed/compare?" + urlencode({"word": "mole", "sentences": MOLE[:2], "model": "all-minilm-l6-v2"}, doseq=True))
    d = initial_data(r.text)
    assert d["error"] is None and d["data"]["compare"] == api(client, "/api/compare", word="mole", sentences=MOLE[:2],
                                                              model="all-minilm-l6-v2")
    # the compare page's own parameter (s) works too, and no sentences at all means the mole example
    d = initial_data(client.get("/embed/compare?" + urlencode({"word": "mole", "s": MOLE}, doseq=True)).text)
    assert d["state"]["sentences"] == MOLE and d["error"] is None
    assert initial_data(embed(client, "compare").text)["state"]["sentences"] == MOLE


def test_lens_embed_carries_the_apis_lens(client):
    d = initial_data(embed(client, "lens", text=TEXT).text)
    assert d["error"] is None and d["data"]["lens"] == api(client, "/api/lens", text=TEXT, top_k=5)


@pytest.mark.parametrize("view, params, code, words", [
    ("compare", {"word": "mole", "sentences": ["one mole"]}, "bad_parameter", "compare needs 2 to 4 sentences"),
    ("compare", {"word": "bank", "sentences": MOLE[:2]}, "word_not_found", "American shrew mole"),
    ("compare", {"word": "x" * 101, "sentences": ["a", "b"]}, "bad_parameter", "word"),
    ("compare", {"word": "mole", "sentences": MOLE[:2], "model": "gpt-9"}, "unknown_model", "unknown model"),
    ("lens", {"text": TEXT, "model": "all-minilm-l6-v2"}, "not_causal", "is an encoder"),
    ("lens", {"text": ""}, "bad_parameter", "the text is empty"),
    ("explain", {"text": TEXT, "step": 10}, "bad_parameter", "step 10 is out of range: this model's explanation has steps 1-9"),
    ("explain", {"text": TEXT, "model": "all-minilm-l6-v2", "step": 8}, "bad_parameter", "steps 1-7"),
    ("explain", {"text": TEXT, "token": -1, "step": 0}, "bad_parameter", "step 0 is out of range"),
])
def test_lesson_embeds_explain_bad_parameters_in_the_frame(client, view, params, code, words):
    r = client.get(f"/embed/{view}?{urlencode(params, doseq=True)}")
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    d = initial_data(r.text)
    assert d["error"]["error"] == code and d["data"] is None and words in d["error"]["detail"]
    assert re.search(r'<p id="error" class="error embed-error" role="alert" >', r.text)  # shown without script


@pytest.mark.parametrize("path, view", [("/", "heatmap"), ("/explain", "explain"), ("/compare", "compare"), ("/lens", "lens")])
def test_pages_with_an_embed_carry_the_oembed_discovery_link(client, path, view):
    r = client.get(path + "?" + urlencode({"text": TEXT, "layer": 4, "head": 1}))
    alt = re.search(r'<link rel="alternate" type="application/json\+oembed" href="([^"]+)"', r.text)
    assert alt, f"{path} has no oEmbed discovery link"
    oe = client.get(alt.group(1).replace("&amp;", "&").replace("http://testserver", ""))
    assert oe.status_code == 200 and f'src="http://testserver/embed/{view}' in oe.json()["html"]
    assert 'id="embed-open"' in r.text and 'id="share"' in r.text  # the Embed button and its dialog
    lesson = client.get("/lesson").text
    assert "application/json+oembed" not in lesson and 'id="share"' in lesson  # per-section buttons, no single view


def test_the_embed_links_back_to_its_full_page(client):
    def back(view, **params):
        html = client.get(f"/embed/{view}?{urlencode(params, doseq=True)}").text
        link = re.search(r'<a id="explorer-link" href="([^"]+)"', html).group(1).replace("&amp;", "&")
        return urlsplit(link).path, parse_qs(urlsplit(link).query)
    assert back("compare", word="mole", sentences=MOLE) == ("/compare", {"word": ["mole"], "model": ["smollm2-135m-instruct"], "s": MOLE})
    assert back("lens", text=TEXT) == ("/lens", {"text": [TEXT], "model": ["smollm2-135m-instruct"]})
    path, q = back("explain", text=TEXT, layer=1, head=2, token=3, step=5)
    assert path == "/explain" and (q["layer"], q["token"], q["step"]) == (["1"], ["3"], ["5"])
