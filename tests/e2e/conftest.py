"""Browser tests: a real server (uvicorn on a free loopback port) and Debian's headless Chromium
driven by Playwright. A missing browser is a failure that says what to install, never a skip."""

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.live_server import Server, ServerError

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "screenshots"


@contextmanager
def ready_server(env: dict):
    """A Server on env, ready (or the test fails with its output), closed afterwards."""
    s = Server(env)
    try:
        try:
            s.wait_ready(120)
        except ServerError as e:
            pytest.fail(str(e), pytrace=False)
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def server(cache_dir, smol, minilm):
    """The app as users get it: `uvicorn app.main:app`, both models preloaded."""
    with ready_server({**os.environ, "ATTNSCOPE_CACHE_DIR": str(cache_dir), "ATTNSCOPE_PRELOAD": "all", "WORKERS": "1"}) as s:
        yield s.url


# Every wait here ends as soon as its condition holds, so its bound costs nothing when things go
# well and only has to be beyond what a loaded machine takes: a 300-token text under CI load took
# over 60 s to render once (the suite's other server computing beside it). A hang still fails.
WAIT_MS = 180_000


class Page:
    """A page plus what went wrong on it: console errors, page errors and dialogs are collected."""

    def __init__(self, page):
        self.page, self.errors, self.dialogs = page, [], []
        page.set_default_timeout(WAIT_MS)
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def __getattr__(self, name):
        return getattr(self.page, name)

    def open(self, url: str):
        self.page.goto(url)
        return self.ready()

    def ready(self):
        self.page.wait_for_selector("body[data-ready='1']")
        return self

    def state(self) -> dict:
        return self.page.evaluate("() => ({...window.attnscope.store.state})")

    def shot(self, name: str):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = Page(ctx.new_page())
    yield p
    ctx.close()
