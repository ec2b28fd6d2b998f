"""Static images of a plotly figure, offline: kaleido if it is installed and works, otherwise Debian's
headless Chromium driven by Playwright (never `playwright install`), which asks plotly.js itself
for the image (Plotly.toImage), so PNG and SVG look exactly like the interactive figure."""

import base64
import importlib.util
import os
import urllib.parse

from app.settings import Settings

CHROMIUM = Settings().chromium


class NoRenderer(RuntimeError):
    pass


def _kaleido(fig, fmt: str) -> bytes | None:
    if importlib.util.find_spec("kaleido") is None:
        return None
    try:
        return fig.to_image(format=fmt)
    except Exception:  # kaleido present but unable to run (no browser for it, sandbox...): try Chromium
        return None


def _chromium(fig, fmt: str) -> bytes | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not os.path.exists(CHROMIUM):
        return None
    page_html = fig.to_html(full_html=True, include_plotlyjs=True, div_id="fig")
    width = int(fig.layout.width or 800)
    height = int(fig.layout.height or 600)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width + 40, "height": height + 40})
            page.set_content(page_html, wait_until="load")
            page.wait_for_function("() => window.Plotly && document.getElementById('fig')._fullLayout", timeout=30000)
            url = page.evaluate("([f, w, h]) => Plotly.toImage(document.getElementById('fig'), "
                                "{format: f, width: w, height: h, scale: f === 'png' ? 2 : 1})", [fmt, width, height])
        finally:
            browser.close()
    head, _, body = url.partition(",")
    return base64.b64decode(body) if head.endswith(";base64") else urllib.parse.unquote(body).encode("utf-8")


def render(fig, fmt: str) -> tuple[bytes, str]:
    """(image bytes, how it was made). fmt: 'png' or 'svg'."""
    data = _kaleido(fig, fmt)
    if data is not None:
        return data, "kaleido"
    data = _chromium(fig, fmt)
    if data is not None:
        return data, f"headless Chromium ({CHROMIUM}) via Playwright, Plotly.toImage"
    raise NoRenderer(f"{fmt.upper()} export needs kaleido (pip install kaleido) or Playwright with Chromium "
                     f"(pip install playwright; apt install chromium, or set ATTNSCOPE_CHROMIUM)")
