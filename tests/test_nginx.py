"""deploy/'s nginx recipe, run: Debian's nginx with deploy/nginx/attnscope.conf in front of a live
server (tests/live_server.py), on loopback. A second identical request is a cache HIT, errors and POSTs
never are, the ETags survive a restart of the app, and a streamed /api/generate passes through line by
line (and a client that leaves through nginx stops the generation). nginx is required, never skipped:
`apt-get install nginx` (.ci/run does)."""

import asyncio
import gzip
import json
import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.generation_steps import counted, settle  # noqa: F401 (counted: a fixture)
from tests.live_server import Server, ServerError, ThreadServer, free_port
from tests.nginx import Nginx

PROMPT = "Once upon a time"
CACHED = ["/embed/heatmap?text=a+class+of+sixty", "/?text=a+class+of+sixty", "/export/grid.json?text=a+class+of+sixty",
          "/api/attention?text=a+class+of+sixty&layers=2", "/lesson"]


def server_env(cache_dir, public_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTNSCOPE_")}
    return env | {"ATTNSCOPE_CACHE_DIR": str(cache_dir), "ATTNSCOPE_PRELOAD": "default", "ATTNSCOPE_MODELS": "",
                  "ATTNSCOPE_PUBLIC_URL": public_url, "ATTNSCOPE_FORWARDED_ALLOW_IPS": "127.0.0.1"}


def start_nginx(upstream: str, port: int) -> Nginx:
    try:
        return Nginx(upstream, port).__enter__()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


def start_server(env) -> Server:
    s = Server(env)
    try:
        s.wait_ready()
    except ServerError as e:
        s.close()
        pytest.fail(str(e), pytrace=False)
    return s


@pytest.fixture(scope="module")
def stack(cache_dir, smol, minilm):
    """nginx (the recipe) -> uvicorn (a subprocess), with the public URL nginx's, as deploy/ says."""
    port = free_port()
    server = start_server(server_env(cache_dir, f"http://127.0.0.1:{port}"))
    proxy = start_nginx(server.url.removeprefix("http://"), port)
    try:
        yield server, proxy
    finally:
        proxy.close()
        server.close()


def test_a_second_identical_request_is_a_hit(stack):
    server, proxy = stack
    with httpx.Client(base_url=proxy.url, timeout=120) as c:
        for url in CACHED:
            a, b = c.get(url), c.get(url)
            assert a.status_code == b.status_code == 200, (url, a.text[:300])
            assert (a.headers["x-cache-status"], b.headers["x-cache-status"]) == ("MISS", "HIT"), url
            assert a.content == b.content and a.headers["etag"] == b.headers["etag"], url
            assert a.headers["content-encoding"] == "gzip" or len(a.content) < 1024, url
            # the client's own revalidation is answered by nginx from its copy
            r = c.get(url, headers={"If-None-Match": a.headers["etag"]})
            assert (r.status_code, r.headers["x-cache-status"]) == (304, "HIT"), url
    logged = [(line.split(" ")[1], status, cache) for line, status, cache in proxy.logged(3 * len(CACHED))]
    for url in CACHED:
        assert [(s, k) for u, s, k in logged if u == url] == [(200, "MISS"), (200, "HIT"), (304, "HIT")], url


def test_static_files_are_revalidated_by_the_app_through_nginx(stack):
    """nginx passes a browser's If-None-Match on for the app's own files (no-cache), so they stay 304s."""
    _, proxy = stack
    with httpx.Client(base_url=proxy.url, timeout=120) as c:
        js = c.get("/static/js/main.js")
        assert js.status_code == 200 and js.headers["cache-control"] == "no-cache"
        again = c.get("/static/js/main.js", headers={"If-None-Match": js.headers["etag"]})
        assert again.status_code == 304 and "x-cache-status" not in again.headers


def test_accept_encoding_is_normalised_into_two_variants(stack):
    _, proxy = stack
    url = "/embed/grid?text=two+variants"
    with httpx.Client(base_url=proxy.url, timeout=120) as c:
        spellings = ["gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.8, *;q=0.1"]
        statuses = [c.get(url, headers={"Accept-Encoding": ae}).headers["x-cache-status"] for ae in spellings]
        assert statuses == ["MISS", "HIT", "HIT"]  # one gzip variant, however a browser spells it
        plain = [c.get(url, headers={"Accept-Encoding": ae}) for ae in ("identity", "br", "identity")]
        assert [r.headers["x-cache-status"] for r in plain] == ["MISS", "HIT", "HIT"]
        assert all("content-encoding" not in r.headers for r in plain)
        with c.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as packed:
            raw = b"".join(packed.iter_raw())
        assert gzip.decompress(raw) == plain[0].content  # the same content in both


def test_errors_and_posts_are_never_served_from_the_cache(stack):
    _, proxy = stack
    with httpx.Client(base_url=proxy.url, timeout=120) as c:
        for url in ("/embed/heatmap?text=x&layer=99", "/api/attention?text=x&layers=99", "/api/attention?text=x&model=nope",
                    "/export/nothing.json"):
            rs = [c.get(url) for _ in range(2)]
            assert all(r.status_code >= 400 and r.headers["cache-control"] == "no-store" for r in rs), url
            assert [r.headers["x-cache-status"] for r in rs] == ["MISS", "MISS"], url
        for _ in range(2):
            r = c.post("/api/attention", json={"text": "posted", "layers": [1]})
            assert r.status_code == 200 and r.headers.get("x-cache-status") in (None, "BYPASS"), r.headers


def test_etags_survive_a_restart_of_the_app(stack, cache_dir):
    """Same weights, same code, a new process: the same ETags, and its 304 for the old one."""
    server, proxy = stack
    urls = ["/embed/heatmap?text=restart", "/api/head?text=restart&layer=1&head=2", "/export/heatmap.csv?text=restart"]
    with httpx.Client(base_url=server.url, timeout=120) as c:
        before = {u: c.get(u).headers["etag"] for u in urls}
    again = start_server(server_env(cache_dir, proxy.url))
    try:
        with httpx.Client(base_url=again.url, timeout=120) as c:
            for u in urls:
                r = c.get(u, headers={"If-None-Match": before[u]})
                assert r.status_code == 304 and r.headers["etag"] == before[u], u
                assert c.get(u).headers["etag"] == before[u], u
    finally:
        again.close()


# --- streaming through nginx -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def counted_stack(registry, smol):
    """nginx -> the app under uvicorn in this process, so the test can count the generation's steps."""
    port = free_port()
    app = create_app(Settings(preload="default", public_url=f"http://127.0.0.1:{port}", forwarded_allow_ips="127.0.0.1"),
                     registry=registry)
    with ThreadServer(app) as server:
        proxy = start_nginx(server.url.removeprefix("http://"), port)
        try:
            yield app, proxy
        finally:
            proxy.close()


def read_lines_then_leave(url: str, n_lines: int) -> list[dict]:
    async def go():
        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            body = {"text": PROMPT, "max_new_tokens": 128, "stream": True}
            async with c.stream("POST", "/api/generate", json=body, headers={"Accept-Encoding": "gzip"}) as r:
                assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
                assert "content-encoding" not in r.headers
                lines = []
                async for line in r.aiter_lines():
                    if line:
                        lines.append(json.loads(line))
                    if len(lines) == n_lines:
                        return lines  # leaving the block closes the connection mid-stream
    with ThreadPoolExecutor(1) as ex:  # a loop of its own
        return ex.submit(asyncio.run, go()).result()


def test_a_stream_arrives_through_nginx_line_by_line(counted_stack, counted):
    """The start line and 3 token lines reach the client while the app is still writing: had nginx held the
    answer back (buffering: 4-8 kB a block, ~350 bytes a token line), the client would see its first lines
    only after a dozen or more steps. Leaving then closes nginx's upstream connection, and the app stops."""
    app, proxy = counted_stack
    lines = read_lines_then_leave(proxy.url, 4)
    assert [line["type"] for line in lines] == ["start", "token", "token", "token"]
    n = settle(app, counted)
    assert 3 <= n <= 6, f"{n} steps ran for a client that read 3 tokens of 128 through nginx"


def test_a_whole_stream_through_nginx_is_the_apps(counted_stack):
    _, proxy = counted_stack
    body = {"text": PROMPT, "max_new_tokens": 6, "stream": True}
    with httpx.Client(base_url=proxy.url, timeout=120) as c:
        with c.stream("POST", "/api/generate", json=body) as r:
            lines = [json.loads(line) for line in r.iter_lines() if line]
        whole = c.post("/api/generate", json=body | {"stream": False}).json()
    assert lines[0]["type"] == "start" and lines[-1]["type"] == "done"
    assert [t["id"] for t in lines[1:-1]] == lines[-1]["then"] == whole["then"]
