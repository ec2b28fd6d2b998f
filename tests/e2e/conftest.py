"""Browser tests: a real server (uvicorn on a free loopback port) and Debian's headless Chromium
driven by Playwright. A missing browser is a failure that says what to install, never a skip."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(cache_dir, smol, minilm):
    """The app as users get it: `uvicorn app.main:app`, both models preloaded."""
    port = free_port()
    env = {**os.environ, "ATTNSCOPE_CACHE_DIR": cache_dir, "ATTNSCOPE_PRELOAD": "all"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{proc.stdout.read()}", pytrace=False)
        try:
            if httpx.get(url + "/api/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"the server did not come up in 120 s:\n{proc.stdout.read()}", pytrace=False)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"browser tests need Chromium at {CHROMIUM}: apt-get install chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync", "--disable-quic"])
        yield b
        b.close()


class Page:
    """A page plus what went wrong on it: console errors, page errors and dialogs are collected."""

    def __init__(self, page):
        self.page, self.errors, self.dialogs = page, [], []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def __getattr__(self, name):
        return getattr(self.page, name)

    def open(self, url: str):
        self.page.goto(url)
        return self.ready()

    def ready(self):
        self.page.wait_for_selector("body[data-ready='1']", timeout=30000)
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
