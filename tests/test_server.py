"""The real server: `uvicorn app.main:app` in a subprocess on a loopback port, configured by
environment variables only, spoken to over real HTTP, then shut down with SIGTERM."""

import gzip
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSON = "a fluffy blue creature roamed the verdant forest"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A uvicorn subprocess; its output goes to a file (a pipe nobody reads could fill and block it)."""

    def __init__(self, env: dict[str, str], workers: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(workers)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode} before it was ready:\n{self.output()}", pytrace=False)
            try:
                if httpx.get(self.url + "/api/models", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"the server was not ready after {timeout} s:\n{self.output()}", pytrace=False)

    def stop(self) -> int:
        """SIGTERM, a bounded wait, then SIGKILL; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(cache_dir, smol, minilm):
    """smol and minilm first: both weight stores exist in cache_dir, so the server only maps them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTNSCOPE_")}
    env |= {"ATTNSCOPE_CACHE_DIR": str(cache_dir), "ATTNSCOPE_PRELOAD": "default", "ATTNSCOPE_MODELS": ""}
    s = Server(env)
    try:
        s.wait_ready(START_TIMEOUT_S)
        yield s
    finally:
        s.stop()
        s.log.close()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
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
    t = time.monotonic()
    # uvicorn re-raises the signal it caught once shutdown is done, so SIGTERM is the exit status
    assert server.stop() in (0, -signal.SIGTERM), server.output()
    assert time.monotonic() - t < STOP_TIMEOUT_S
    out = server.output()
    assert "Application startup complete" in out and "Application shutdown complete" in out, out
    assert "Traceback" not in out, out
