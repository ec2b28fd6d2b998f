"""Shared fixtures. Real models and the browser are required, never skipped: a missing one fails
with the fix."""

import os

import pytest

from fastapi.testclient import TestClient

from app.engine import Registry
from app.main import create_app
from app.settings import Settings

CHROMIUM = "/usr/bin/chromium"
# FastAPI's TestClient sends Host: testserver; the app answers only the hosts it is told to (app/security.py)
TEST_HOST = "testserver"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """Converted-weight store for the run (ATTNSCOPE_CACHE_DIR reuses one across runs)."""
    return os.environ.get("ATTNSCOPE_CACHE_DIR") or str(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def registry(cache_dir):
    return Registry.from_env(extra="", cache_dir=cache_dir)


def _require(registry, model_id):
    src = registry.sources[model_id]
    if src.path is None or not src.path.exists():
        pytest.fail(f"model {model_id!r} is missing: run `make test` (or `{src.missing_hint}`)", pytrace=False)
    return registry.get(model_id)


@pytest.fixture(scope="session")
def smol(registry):
    return _require(registry, "smollm2-135m-instruct")


@pytest.fixture(scope="session")
def minilm(registry):
    return _require(registry, "all-minilm-l6-v2")


@pytest.fixture(scope="module")
def client(registry, smol, minilm):
    """The app in-process (FastAPI's TestClient), on the session's models, lifespan run."""
    with TestClient(create_app(Settings(preload="default", allowed_hosts=TEST_HOST), registry=registry)) as c:
        yield c


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium, one for the whole run: Playwright's sync API allows one instance per
    thread, so every test that needs a browser (tests/e2e, the lesson pack) shares this one."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"browser tests need Chromium at {CHROMIUM}: apt-get install chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync", "--disable-quic"])
        yield b
        b.close()


@pytest.fixture
def forward_sizes(monkeypatch):
    """The number of tokens of every forward pass that runs from now on (the engine's forward, spied on)."""
    import app.engine.model as engine_model

    sizes, forward = [], engine_model.forward

    def spy(cfg, weights, ids, **kw):
        sizes.append(len(ids))
        return forward(cfg, weights, ids, **kw)

    monkeypatch.setattr(engine_model, "forward", spy)
    return sizes
