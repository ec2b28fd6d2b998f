"""Shared fixtures. Real models are required, never skipped: a missing one fails with the fix."""

import os

import pytest

from fastapi.testclient import TestClient

from app.engine import Registry
from app.main import create_app
from app.settings import Settings


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
    with TestClient(create_app(Settings(preload="default"), registry=registry)) as c:
        yield c
