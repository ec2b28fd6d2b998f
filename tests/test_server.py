"""The real server: `uvicorn app.main:app` in a subprocess on a loopback port, configured by
environment variables only, spoken to over real HTTP, then shut down with SIGTERM."""

import gzip
import os
import signal

import httpx
import pytest

from tests.live_server import Server, ServerError

LESSON = "a fluffy blue creature roamed the verdant forest"
# Bounds on waits that end as soon as their condition holds: only a hang reaches them, so they are
# set far above what a loaded 2-core machine takes (start ~5-12 s, shutdown < 1 s).
START_TIMEOUT_S = 120
SHUTDOWN_WAIT_S = 60


@pytest.fixture(scope="module")
def server(cache_dir, smol, minilm):
    """smol and minilm first: both weight stores exist in cache_dir, so the server only maps them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTNSCOPE_")}
    env |= {"ATTNSCOPE_CACHE_DIR": str(cache_dir), "ATTNSCOPE_PRELOAD": "default", "ATTNSCOPE_MODELS": "",
            "WORKERS": "1"}  # as started below (`make test` exports the WORKERS that `make run` uses)
    s = Server(env)
    try:
        try:
            s.wait_ready(START_TIMEOUT_S)
        except ServerError as e:
            pytest.fail(str(e), pytrace=False)
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


def test_models(client):
    r = client.get("/api/models")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    models = {m["id"]: m for m in r.json()["models"]}
    assert set(models) == {"smollm2-135m-instruct", "all-minilm-l6-v2"}
    assert models["smollm2-135m-instruct"]["default"] and not models["all-minilm-l6-v2"]["default"]
    assert (models["smollm2-135m-instruct"]["n_layers"], models["smollm2-135m-instruct"]["n_heads"]) == (30, 9)


def test_attention_gzipped_over_the_wire(client, smol):
    r = client.post("/api/attention", json={"text": LESSON, "encoding": "uint8"}, headers={"Accept-Encoding": "gzip"})
    with client.stream("POST", "/api/attention", json={"text": LESSON, "encoding": "uint8"},
                       headers={"Accept-Encoding": "gzip"}) as s:
        raw = b"".join(s.iter_raw())  # the bytes as sent (the same cached body), before httpx decodes them
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
    assert int(r.headers["content-length"]) == len(raw) < len(r.content)
    assert gzip.decompress(raw) == r.content
    body = r.json()
    assert body["model"] == "smollm2-135m-instruct" and body["encoding"] == "uint8"
    assert [t["id"] for t in body["tokens"]] == smol.run(LESSON, names=set()).ids
    assert sorted(body["attention"], key=int) == [str(L) for L in range(30)]
    n = len(body["tokens"])
    assert body["attention"]["0"]["shape"] == [9, n, n] and body["attention"]["0"]["packing"] == "tril"


def test_plain_when_gzip_is_not_accepted(client):
    r = client.post("/api/attention", json={"text": LESSON, "layers": [0]}, headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200 and "content-encoding" not in r.headers
    assert len(r.json()["attention"]["0"]) == 9


def test_unknown_model_is_a_json_404(client):
    r = client.post("/api/attention", json={"text": "hi", "model": "gpt-5"})
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == "unknown_model" and "smollm2-135m-instruct" in body["detail"]
    assert set(body["known"]) == {"smollm2-135m-instruct", "all-minilm-l6-v2"}


def test_index_page(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "smollm2-135m-instruct" in r.text and "all-minilm-l6-v2" in r.text


def test_shuts_down_cleanly_on_sigterm(server, client):
    client.close()  # an idle keep-alive connection would make uvicorn wait for it
    # uvicorn re-raises the signal it caught once shutdown is done, so SIGTERM is the exit status (a
    # SIGKILL would be -9). The wait is generous: a loaded machine is slow, a hang is forever.
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(SHUTDOWN_WAIT_S) in (0, -signal.SIGTERM), server.output()
    out = server.output()
    assert "Application startup complete" in out and "Application shutdown complete" in out, out
    assert "Traceback" not in out, out
