"""Hostile text sent to every route of the app, in process: no 5xx, errors in the documented JSON
shape (API, exports, oEmbed) or a readable page (pages, embeds), no forward pass beyond the token
limit, and the server still answering after. The routes are read from the app itself: a new route
with no requests below fails `test_every_route_gets_hostile_requests`, naming it."""

import json
import re
from urllib.parse import quote, quote_plus, urlencode

import pytest
from fastapi import routing

from app.routes.embed import VIEWS as EMBED_VIEWS

HOSTILE = {
    "lone high surrogate": "\ud800 x",
    "lone low surrogate": "x \udc00",
    "NUL": "a\x00b",
    "100 kB": "ab " * 34_000,
    "RTL override": "abc \u202egnp.exe\u202c def",
    "combining marks x 1000": "e" + "\u0301" * 1000,
    "zero-width joiners": "\U0001F469\u200d\U0001F4BB a\u200d\u200db",
    "script tag": "<script>alert(1)</script>",
    "emoji": "\U0001F917 \U0001F680\U0001F600",
    "invalid UTF-8 bytes": None,  # only bytes can say it: %FF... in a URL, \xff in a body
}
# httpx refuses URLs over 64 kB (uvicorn's request-line limit is lower still), and a URL below holds up to
# three values: in a URL, the long text is cut to 20 kB (still thousands of tokens over the limit)
URL_TEXT_MAX = 20_000
BAD_QUERY_VALUE = "%FF%C3%28ok"
BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
API = {"accept": "application/json"}


def q(value: str | None) -> str:
    """A query value as a browser or client would write it; lone surrogates as their UTF-8-style bytes."""
    return BAD_QUERY_VALUE if value is None else quote_plus(value[:URL_TEXT_MAX].encode("utf-8", "surrogatepass"), safe="")


def body(**fields) -> bytes:
    """JSON as a client sends it (ensure_ascii: a lone surrogate is the escape \\ud800); None fields are
    the invalid UTF-8 byte, which no JSON string can hold."""
    raw = json.dumps({k: "\x00XFF\x00" if v is None else v for k, v in fields.items()}).encode()
    return raw.replace(b"\\u0000XFF\\u0000", b"\xff")


def post(path, **fields):
    return [("POST", path, {"content": body(**fields), "headers": {"content-type": "application/json", **API}})]


def get(path_and_query: str, headers=API):
    return [("GET", path_and_query, {"headers": headers})]


TEXT = {"/api/attention": {}, "/api/head": {"layer": 0, "head": 0}, "/api/predictions": {}, "/api/residual": {},
        "/api/lens": {}, "/api/heads": {}, "/api/rollout": {}, "/api/attribution": {}, "/api/flow": {},
        "/api/generate": {"max_new_tokens": 2}}


def requests_for(path: str, text: str | None) -> list[tuple[str, str, dict]]:
    """The requests that carry `text` to the route at `path` (a route template, as the app lists it)."""
    v = q(text)
    if path in TEXT:
        twins = [] if path == "/api/generate" else (  # the GET twins (app/twins.py) read the same text from the URL
            get(f"{path}?text={v}&{urlencode(TEXT[path])}") + get(f"{path}?text=ok&model={v}&{urlencode(TEXT[path])}"))
        return post(path, text=text, **TEXT[path]) + post(path, text="ok", model=text, **TEXT[path]) + twins
    if path == "/api/compare":
        return post(path, sentences=[text, "a mole"], word="mole") + post(path, sentences=["a mole", "b mole"], word=text) \
            + get(f"{path}?sentences={v}&sentences=a+mole&word=mole") + get(f"{path}?sentences=a+mole&sentences=b+mole&word={v}")
    if path in ("/api/models", "/openapi.json"):
        return get(f"{path}?x={v}")
    if path in ("/", "/explain", "/lens"):
        return get(f"{path}?text={v}&model={v}", BROWSER)
    if path == "/compare":
        return get(f"{path}?word={v}&s={v}&s={v}", BROWSER) + get(f"{path}?word=mole&s=a+mole&s={v}", BROWSER)
    if path in ("/lesson", "/docs", "/redoc"):
        return get(f"{path}?text={v}", BROWSER)
    if path == "/static":
        return get(f"/static/css/app.css?x={v}", BROWSER) + get(f"/static/{v}", BROWSER)
    if path == "/vendor/docs/{name}":
        return get(f"/vendor/docs/swagger-ui.css?x={v}", BROWSER) + get(f"/vendor/docs/{v}", BROWSER)
    if path == "/vendor/plotly-{digest}.min.js":
        return get(f"/vendor/plotly-{v}.min.js?x={v}", BROWSER)
    if path == "/embed/{view:path}":
        return [r for view in EMBED_VIEWS for r in get(f"/embed/{view}?text={v}&word={v}&sentences={v}&sentences=a", BROWSER)] \
            + get(f"/embed/{v}", BROWSER)
    if path == "/oembed":
        return get(f"{path}?url={quote('http://testserver/embed/heatmap?text=' + v, safe='')}") + get(f"{path}?url={v}")
    if path == "/export/{name}":
        return [r for name in EXPORTS for r in get(f"/export/{name}?text={v}&model={v}")] + get(f"/export/{v}.json")
    raise KeyError(path)


EXPORTS = [f"{view}.{fmt}" for view in ("heatmap", "grid", "arrows", "embeddings") for fmt in ("json", "csv", "html")]


def app_routes(app) -> list[str]:
    """Every route template the app serves, once (FastAPI >= 0.160 keeps included routers nested; a POST view
    and its GET twin share a path)."""
    contexts = routing.iter_route_contexts(app.routes) if hasattr(routing, "iter_route_contexts") else app.routes
    return list(dict.fromkeys(c.path for c in contexts))


def test_every_route_gets_hostile_requests(client):
    missing = []
    for path in app_routes(client.app):
        try:
            requests_for(path, "x")
        except KeyError:
            missing.append(path)
    assert not missing, f"routes that test_hostile.py sends nothing to (add them to requests_for): {missing}"


def test_exports_are_every_view_and_format(client):
    error = client.get("/export/nothing").json()
    assert sorted(EXPORTS) == sorted(f"{v}.{f}" for v in error["views"] for f in error["formats"])


def check_response(r, where: str) -> None:
    assert r.status_code < 500, f"{where}: {r.status_code} {r.text[:300]}"
    media = r.headers.get("content-type", "")
    if "text/html" in media:
        assert "<html" in r.text[:300], where
        assert "<script>alert(1)</script>" not in r.text, f"{where}: user text reached the page unescaped"
        if r.status_code >= 400:
            assert re.search(r'role="alert"[^>]*>[^<]+<', r.text), f"{where}: an error page that does not say what is wrong"
    elif r.status_code >= 400:
        assert media.startswith("application/json"), f"{where}: {media}"
        err = r.json()
        assert isinstance(err.get("error"), str) and isinstance(err.get("detail"), str) and err["detail"], f"{where}: {err}"


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_text_on_every_route(client, forward_sizes, name):
    text = HOSTILE[name]
    for path in app_routes(client.app):
        for method, url, kw in requests_for(path, text):
            check_response(client.request(method, url, **kw), f"{name!r} {method} {url[:80]}")
    assert max(forward_sizes, default=0) <= 512, "a text over the token limit was run"
    assert client.get("/api/models").status_code == 200
    assert client.post("/api/attention", json={"text": "still alive"}).status_code == 200


@pytest.mark.parametrize("name", ["lone high surrogate", "lone low surrogate", "invalid UTF-8 bytes"])
def test_what_is_not_text_is_invalid_text(client, name):
    """Through JSON or a URL, for the API, an export or a page: a 422 invalid_text saying where."""
    text = HOSTILE[name]
    for method, url, kw in post("/api/attention", text=text) + get(f"/export/heatmap.json?text={q(text)}"):
        r = client.request(method, url, **kw)
        assert r.status_code in (400, 422) and r.json()["error"] in ("invalid_text", "bad_request"), r.text
        assert r.json()["error"] == "invalid_text" or text is None  # invalid bytes in a body: not JSON at all
    page = client.get(f"/embed/arrows?text={q(text)}", headers=BROWSER)
    assert page.status_code == 422 and "text: " in page.text and "at character " in page.text


def test_long_text_is_refused_by_its_token_count(client, forward_sizes):
    r = client.post("/api/attention", json={"text": HOSTILE["100 kB"]})
    assert (r.status_code, r.json()["error"], r.json()["limit"]) == (422, "too_many_tokens", 512)
    assert forward_sizes == []
    assert client.post("/api/attention", json={"text": "the spy sees a real run"}).status_code == 200
    assert len(forward_sizes) == 1 and 0 < forward_sizes[0] <= 512  # the check above is not vacuous
