"""The HTTP cache tier (app/httpcache.py, app/twins.py): every page, embed, export and API view has a
strong ETag made of the code, the weights and its parameters, Cache-Control public with a max-age, a
304 on If-None-Match computed before any model runs (a restarted server included), errors no-store,
/api/generate no-store; the API's GET twins answer byte for byte what its POSTs answer."""

import gzip
import json
from urllib.parse import quote, urlencode

import pytest
from fastapi.testclient import TestClient

from app import httpcache
from app.engine import Registry
from app.main import create_app
from app.routes import api
from app.settings import Settings
from app.vendor import plotly_url
from tests.conftest import TEST_HOST

GZ = {"Accept-Encoding": "gzip"}
ID = {"Accept-Encoding": "identity"}
MAX_AGE = 123

# one URL of each kind of cacheable answer
URLS = [
    "/", "/?text=a+cat+sat+on+the+mat&layer=1&head=2&measure=moved", "/explain?text=the+cat+sat", "/compare",
    "/compare?word=bank&s=the+river+bank&s=the+bank+lent+money", "/lens?text=Paris+is", "/lesson",
    "/embed/heatmap?text=hi+there", "/embed/grid?text=hi+there", "/embed/arrows?text=hi+there&measure=moved",
    "/embed/explain", "/embed/compare", "/embed/lens?text=Paris+is+the",
    "/export/heatmap.json?text=hi+there", "/export/grid.csv?text=hi+there", "/export/arrows.html?text=hi+there",
    "/oembed?url=" + quote("http://testserver/embed/grid?text=hi", safe=""),
    "/api/attention?text=hi+there&layers=2", "/api/head?text=hi+there&layer=0&head=1", "/api/predictions?text=hi+there",
    "/api/lens?text=hi+there", "/api/compare?sentences=a+mole+dug&sentences=the+mole+ran&word=mole",
]


def make_app(registry, **settings):
    return create_app(Settings(**{"preload": "default", "allowed_hosts": TEST_HOST, "cache_max_age": MAX_AGE} | settings),
                      registry=registry)


@pytest.fixture(scope="module")
def first(registry, smol, minilm):
    """One server's answers to every URL, twice: {url: (first, second)}; the server stays up for more."""
    with TestClient(make_app(registry)) as c:
        yield c, {url: (c.get(url, headers=GZ), c.get(url, headers=GZ)) for url in URLS}


def assert_cacheable(r, where=""):
    assert r.status_code == 200, (where, r.status_code, r.text[:300])
    assert r.headers["cache-control"] == f"public, max-age={MAX_AGE}", where
    assert r.headers["vary"] == "Accept-Encoding", where
    tag = r.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/"), (where, tag)  # strong
    return tag


@pytest.mark.parametrize("url", URLS)
def test_every_kind_of_answer_has_a_stable_strong_etag(first, url):
    _, answers = first
    a, b = answers[url]
    assert assert_cacheable(a, url) == assert_cacheable(b, url)
    assert a.content == b.content  # the same bytes (gzip with mtime 0), as a strong ETag promises


def test_a_restarted_server_answers_304_without_running_the_model(first, registry, forward_sizes):
    """A new app (new code version and weight hashes computed, empty caches) gives the same ETags, and
    answers If-None-Match with 304 before anything runs: no forward pass at all."""
    _, answers = first
    with TestClient(make_app(registry)) as c:
        forward_sizes.clear()  # the lifespan's warm-up run is not a request's
        for url in URLS:
            tag = answers[url][0].headers["etag"]
            r = c.get(url, headers=GZ | {"If-None-Match": tag})
            assert r.status_code == 304 and r.content == b"", (url, r.status_code)
            assert r.headers["etag"] == tag and r.headers["cache-control"] == f"public, max-age={MAX_AGE}", url
        assert forward_sizes == [], "a 304 ran the model"
        again = c.get("/embed/heatmap?text=hi+there", headers=GZ)  # and without If-None-Match: the same answer
        assert again.headers["etag"] == answers["/embed/heatmap?text=hi+there"][0].headers["etag"]
        assert forward_sizes, "the check above is not vacuous: a 200 runs the model"


def test_if_none_match_is_compared_weakly_and_may_list_tags(first):
    c, answers = first
    url = "/api/attention?text=hi+there&layers=2"
    tag = answers[url][0].headers["etag"]
    for header in (tag, f"W/{tag}", f'"other", {tag}', f'W/"x",W/{tag} ', "*"):
        assert c.get(url, headers=GZ | {"If-None-Match": header}).status_code == 304, header
    for header in ('"other"', tag.replace('"', "")):
        assert c.get(url, headers=GZ | {"If-None-Match": header}).status_code == 200, header
    assert c.get(url, headers=ID | {"If-None-Match": tag}).status_code == 200  # another representation
    assert c.get("/embed/heatmap?layer=99", headers={"If-None-Match": "*"}).status_code == 422  # * needs one to exist


def test_the_etag_follows_parameters_model_and_encoding(first):
    c, answers = first
    tag = lambda url, h=GZ: assert_cacheable(c.get(url, headers=h), url)  # noqa: E731
    base = "/api/attention?text=hi+there&layers=2"
    tags = [answers[base][0].headers["etag"], tag("/api/attention?text=hi+there&layers=3"),
            tag("/api/attention?text=hi+there&layers=2&model=all-minilm-l6-v2"), tag(base, ID),
            tag("/embed/heatmap?text=hi+there&model=all-minilm-l6-v2"), answers["/embed/heatmap?text=hi+there"][0].headers["etag"],
            tag("/export/heatmap.csv?text=hi+there"), answers["/export/heatmap.json?text=hi+there"][0].headers["etag"]]
    assert len(set(tags)) == len(tags), tags
    # what does not change the answer does not change the ETag: the order of parameters, defaults spelt out
    assert tag("/api/attention?layers=2&text=hi+there") == tags[0]
    assert tag("/api/attention?text=hi+there&layers=2&encoding=json&model=smollm2-135m-instruct") == tags[0]
    assert tag("/export/heatmap.json?text=hi+there") == tag("/export/heatmap.json?text=hi%20there")
    # the sentences' order is the answer's: repeated parameters keep their order
    s = "/compare?word=bank&s=the+river+bank&s=the+bank+lent+money"
    assert tag(s) != tag("/compare?word=bank&s=the+bank+lent+money&s=the+river+bank")
    assert tag(base, ID).endswith('"') and not tag(base, ID).endswith('-gzip"') and tags[0].endswith('-gzip"')


def test_gzip_and_identity_are_the_same_content(first):
    c, _ = first
    for url in ("/embed/heatmap?text=hi+there", "/api/attention?text=hi+there", "/export/grid.csv?text=hi+there"):
        plain = c.get(url, headers=ID)
        packed = c.get(url, headers=GZ)
        assert "content-encoding" not in plain.headers and plain.headers["vary"] == "Accept-Encoding", url  # once
        assert packed.headers["content-encoding"] == "gzip", url
        # TestClient decodes gzip for us: the same content under both ETags
        assert packed.content == plain.content, url


def test_gzip_bytes_are_the_same_on_every_request(first):
    """The raw gzip bytes (mtime 0), as a shared cache stores them, are identical: what the strong ETag names."""
    c, _ = first
    raw = []
    for _ in range(2):
        with c.stream("GET", "/lesson", headers=GZ) as r:
            assert r.headers["content-encoding"] == "gzip"
            raw.append(b"".join(r.iter_raw()))
    assert raw[0] == raw[1] and gzip.decompress(raw[0]).startswith(b"<!doctype html>")


ERRORS = [
    ("GET", "/api/attention?text=hi&layers=99", None, 422),
    ("GET", "/api/attention?text=hi&nonsense=1", None, 422),
    ("GET", "/api/attention?text=hi&model=nope", None, 404),
    ("POST", "/api/attention", {"text": "hi", "layers": [99]}, 422),
    ("POST", "/api/attention", {"text": ""}, 422),
    ("GET", "/embed/heatmap?text=hi&layer=99", None, 422),
    ("GET", "/embed/nothing", None, 404),
    ("GET", "/export/nothing.json", None, 404),
    ("GET", "/export/heatmap.json?text=hi&layer=99", None, 422),
    ("GET", "/oembed?url=http%3A%2F%2Felsewhere.example%2F", None, 404),
    ("GET", "/api/attention?text=%FF", None, 422),
    ("GET", "/nowhere", None, 404),
]


@pytest.mark.parametrize("method, url, body, status", ERRORS)
def test_errors_are_never_cacheable(first, method, url, body, status):
    c, _ = first
    r = c.request(method, url, json=body, headers=GZ)
    assert r.status_code == status, r.text
    assert r.headers["cache-control"] == "no-store" and "etag" not in r.headers


def test_refusals_before_any_route_are_not_cacheable_either(first):
    c, _ = first
    r = c.get("/embed/heatmap", headers={"Host": "evil.example"})
    assert r.status_code == 400 and r.headers["cache-control"] == "no-store"
    r = c.post("/api/attention", content=b"x" * (2 << 20), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.headers["cache-control"] == "no-store"


def test_an_overloaded_server_says_no_store(first):
    c, _ = first
    pool = c.app.state.runner.pool
    with pool._lock:
        pool._pending += pool.max_pending  # as if that much work were waiting
    try:
        r = c.get("/api/attention?text=never+seen+before+overload&layers=1")
    finally:
        with pool._lock:
            pool._pending -= pool.max_pending
    assert r.status_code == 503 and r.headers["retry-after"] and r.headers["cache-control"] == "no-store"
    assert "etag" not in r.headers


def test_a_page_showing_a_transient_error_is_not_cached(registry, cache_dir, tmp_path):
    """A model whose file is broken: the page shows the error inline (200), but no cache may keep it."""
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all")
    reg = Registry.from_env(extra=f"broken={broken}", cache_dir=cache_dir)
    with TestClient(make_app(reg, preload="none")) as c:
        r = c.get("/?model=broken&text=hi")
        assert r.status_code == 200 and "model_unavailable" in r.text
        assert r.headers["cache-control"] == "no-store" and "etag" not in r.headers
        r = c.get("/api/attention?model=broken&text=hi")
        assert r.status_code == 503 and r.headers["cache-control"] == "no-store"
        assert_cacheable(c.get("/?text=hi"))  # the working model's pages are cacheable as ever


def test_generate_is_never_cached(first):
    c, _ = first
    r = c.post("/api/generate", json={"text": "Hello", "max_new_tokens": 2})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store" and "etag" not in r.headers
    with c.stream("POST", "/api/generate", json={"text": "Hello", "max_new_tokens": 2, "stream": True}) as s:
        assert s.status_code == 200 and s.headers["cache-control"] == "no-store" and "etag" not in s.headers
        assert s.headers["x-accel-buffering"] == "no"
        s.read()
    r = c.get("/api/generate?text=Hello")  # no GET twin: sampling without a seed is not a function of the URL
    assert r.status_code == 405 and r.headers["cache-control"] == "no-store"


def test_a_post_whose_if_none_match_holds_its_etag_is_412(first):
    c, _ = first
    r = c.post("/api/head", json={"text": "hi there", "layer": 0, "head": 1}, headers=GZ)
    tag = assert_cacheable(r)
    again = c.post("/api/head", json={"text": "hi there", "layer": 0, "head": 1}, headers=GZ | {"If-None-Match": tag})
    assert again.status_code == 412 and again.json()["error"] == "precondition_failed"
    assert again.headers["cache-control"] == "no-store"


def test_static_files_keep_their_revalidation(first):
    c, _ = first
    js = c.get("/static/js/main.js")
    assert js.headers["cache-control"] == "no-cache" and js.headers["etag"]
    assert c.get("/static/js/main.js", headers={"If-None-Match": js.headers["etag"]}).status_code == 304
    assert c.get(plotly_url()).headers["cache-control"] == "public, max-age=31536000, immutable"


def test_each_models_weights_are_hashed_once(registry, monkeypatch):
    calls = []
    digest = httpcache.files_digest
    monkeypatch.setattr(httpcache, "files_digest", lambda path: calls.append(path) or digest(path))
    with TestClient(make_app(registry)) as c:
        for _ in range(3):
            for url in ("/", "/api/attention?text=hi&layers=1", "/api/attention?text=hi&model=all-minilm-l6-v2&layers=1",
                        "/export/grid.json?text=hi"):
                assert_cacheable(c.get(url))
    assert sorted(map(str, calls)) == sorted(str(s.path) for s in registry.available()), calls
    # the weight hash is the files' contents, not their names or times
    assert {c.app.state.runner.versions.model(s.id) for s in registry.available()} == {digest(s.path) for s in registry.available()}


# --- GET twins ---------------------------------------------------------------------------------------

TEXT = "a fluffy blue creature roamed"
# one body per view endpoint (lists in every form the twins read)
BODIES = {
    "/api/attention": [{"text": TEXT, "layers": [1, 3]}, {"text": TEXT, "encoding": "uint8", "measure": "moved", "pool": 8},
                       {"text": TEXT, "then": [28, 260], "layers": [0]}],
    "/api/head": [{"text": TEXT, "layer": 2, "head": 3}, {"text": TEXT, "layer": 0, "head": 1, "detail": True},
                  {"text": TEXT, "layer": 1, "head": 2, "parts": ["scores", "z"]}],
    "/api/predictions": [{"text": TEXT, "top_k": 3, "temperature": 0.5, "ablate": [[2, 3], [1, 0]], "ablate_mode": "mean"}],
    "/api/rollout": [{"text": TEXT}],
    "/api/attribution": [{"text": TEXT, "position": 2, "target": 260, "contrast": 28}],
    "/api/flow": [{"text": TEXT, "threshold": 0.1, "min_importance": 0.05, "position": 3}],
    "/api/residual": [{"text": TEXT, "normalize": True}, {"text": "a b c", "model": "all-minilm-l6-v2"}],
    "/api/lens": [{"text": TEXT, "top_k": 2, "ablate": [[0, 0]]}],
    "/api/compare": [{"sentences": ["a mole dug a hole", "the mole ran off", "one mole of gas"], "word": "mole"}],
    "/api/heads": [{"text": TEXT, "top": 3}],
}


def query_forms(body: dict) -> list[str]:
    """The body as URL queries: every list repeated, then the lists of numbers and pairs comma-separated
    (sentences stay repeated); pairs as layer.head, booleans as true/false."""
    def value(v):
        return f"{v[0]}.{v[1]}" if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else str(v)

    repeated = [(k, value(x)) for k, v in body.items() for x in (v if isinstance(v, list) else [v])]
    commas = [(k, ",".join(map(value, v))) if isinstance(v, list) and k != "sentences" else (k, value(v))
              for k, v in body.items() if k != "sentences"] + [("sentences", x) for x in body.get("sentences", [])]
    return [urlencode(repeated), urlencode(commas)]


def test_every_view_but_generate_has_a_get_twin_and_a_body_here():
    posts = {r.path for r in api.router.routes if "POST" in r.methods}
    gets = {r.path for r in api.router.routes if "GET" in r.methods}
    assert posts - gets == {"/api/generate"}
    assert set(BODIES) == posts - {"/api/generate"}


@pytest.mark.parametrize("path, body", [(p, b) for p, bodies in BODIES.items() for b in bodies])
def test_a_get_twin_answers_byte_for_byte_what_the_post_answers(first, path, body):
    c, _ = first
    post = c.post(path, json=body, headers=GZ)
    assert post.status_code == 200, post.text
    for query in query_forms(body):
        got = c.get(f"{path}?{query}", headers=GZ)
        assert got.status_code == 200, (query, got.text)
        assert got.content == post.content, query
        assert got.headers["etag"] == post.headers["etag"] and got.headers["cache-control"] == post.headers["cache-control"]
    assert json.loads(post.content)  # a real answer


BAD = [
    ("/api/attention", "text=hi&layers=99", 422, "out_of_range"),
    ("/api/attention", "text=hi&layers=1,,2", 422, "invalid_request"),
    ("/api/attention", "text=hi&encoding=png", 422, "invalid_request"),
    ("/api/attention", "layers=1", 422, "invalid_request"),  # no text
    ("/api/attention", "text=hi&text=ho", 422, "invalid_request"),  # a value given twice
    ("/api/attention", "text=+", 422, "empty_text"),
    ("/api/attention", "text=hi&model=nope", 404, "unknown_model"),
    ("/api/attention", "text=hi&then=-5", 422, "invalid_request"),
    ("/api/attention", "text=hi&then=99999", 422, "bad_token_id"),
    ("/api/attention", "text=hi&pool=2", 422, "invalid_request"),
    ("/api/head", "text=hi&layer=0&head=1&parts=scores,nothing", 422, "invalid_request"),
    ("/api/attention", "text=" + "ab+" * 2000, 422, "too_many_tokens"),
    ("/api/head", "text=hi&layer=0", 422, "invalid_request"),
    ("/api/head", "text=hi&layer=0&head=99", 422, "out_of_range"),
    ("/api/head", "text=hi&layer=0&head=1&detail=maybe", 422, "invalid_request"),
    ("/api/predictions", "text=hi&ablate=2", 422, "invalid_request"),
    ("/api/predictions", "text=hi&ablate=2.x", 422, "invalid_request"),
    ("/api/predictions", "text=hi&temperature=nan", 422, "invalid_request"),
    ("/api/predictions", "text=hi&model=all-minilm-l6-v2", 422, "not_causal"),
    ("/api/rollout", "text=hi&extra=1", 422, "invalid_request"),
    ("/api/attribution", "text=hi&position=99", 422, "out_of_range"),
    ("/api/flow", "text=hi&threshold=0.001&min_importance=0.5", 422, "invalid_request"),
    ("/api/residual", "text=hi&normalize=2", 422, "invalid_request"),
    ("/api/lens", "text=hi&top_k=0", 422, "invalid_request"),
    ("/api/compare", "sentences=a+mole&word=mole", 422, "invalid_request"),
    ("/api/compare", "sentences=a+mole&sentences=no+such+word&word=mole", 422, None),
    ("/api/heads", "text=hi&top=1000", 422, "invalid_request"),
]


@pytest.mark.parametrize("path, query, status, code", BAD)
def test_a_get_twins_bad_input_is_a_clear_4xx(first, path, query, status, code):
    c, _ = first
    r = c.get(f"{path}?{query}")
    assert r.status_code == status, (r.status_code, r.text[:300])
    err = r.json()
    assert err["detail"] and (code is None or err["error"] == code), err
    assert r.headers["cache-control"] == "no-store"


def test_the_twins_are_in_the_openapi_schema_with_their_parameters(first):
    c, _ = first
    doc = c.get("/openapi.json").json()
    for path in BODIES:
        ref = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        fields = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
        params = doc["paths"][path]["get"]["parameters"]
        assert {p["name"] for p in params} == set(fields) and all(p["in"] == "query" for p in params), path
    att = {p["name"]: p for p in doc["paths"]["/api/attention"]["get"]["parameters"]}
    assert att["text"]["required"] and not att["layers"]["required"]
    assert att["layers"]["schema"]["type"] == "array" and att["layers"]["explode"]


def test_the_recipe_renders_every_field():
    from tests.nginx import recipe
    render = recipe().render
    out = render(listen="127.0.0.1:8081", server_name="class.example")
    body = "\n".join(line for line in out.splitlines() if not line.lstrip().startswith("#"))
    assert "listen 127.0.0.1:8081;" in body and "server_name class.example;" in body and "@" not in body
    for bad in ({"listen": "80; evil"}, {"upstream": ""}, {"nonsense": "1"}):
        with pytest.raises(ValueError):
            render(**bad)


@pytest.mark.parametrize("method, url, body", [
    ("POST", "/api/predictions", {"text": "hi", "then": [10**30]}),
    ("GET", "/api/predictions?text=hi&then=-9223372036854775809", None),
    ("GET", "/export/heatmap.json?text=hi&then=99999999999999999999999", None),
    ("GET", "/embed/grid?text=hi&then=99999999999999999999999", None),
])
def test_a_token_id_past_64_bits_is_a_4xx(first, method, url, body):
    """Found by fuzzing the GET twins: JSON and URLs can spell integers that orjson cannot write back."""
    c, _ = first
    r = c.request(method, url, json=body)
    assert r.status_code == 422 and r.headers["cache-control"] == "no-store", r.text[:300]
    assert c.get("/?text=hi&then=99999999999999999999999").status_code == 200  # a page drops a bad `then`, as before


def test_pooling_no_layers_answers(first):
    """Found by the fuzz test: pool with layers [] raised StopIteration in the compute pool, which asyncio
    cannot hand to the request: it waited for ever. POST and GET twin now answer, alike."""
    c, _ = first
    body = {"text": TEXT + " over the hills and far away", "layers": [], "pool": 8}
    post = c.post("/api/attention", json=body)
    assert post.status_code == 200 and post.json()["attention"] == {}
    assert c.get("/api/attention?text=" + quote(body["text"]) + "&layers=&pool=8").content == post.content
