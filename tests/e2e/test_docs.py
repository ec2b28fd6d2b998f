"""/docs (Swagger UI) draws the API from files this server sends: no CSP
violation, no page error, no request leaving the machine (the docs work offline)."""

from app.routes.api import router as api_router

# a CSP violation is also a console error; this says which directive and what it blocked
CSP_LOG = """window.cspViolations = [];
document.addEventListener("securitypolicyviolation", e => cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));"""


def open_docs(page, url: str) -> list[str]:
    """Opens url; returns every URL the page requested."""
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.add_init_script(CSP_LOG)
    page.goto(url)
    return requested


def check_clean(page, server: str, requested: list[str]) -> None:
    assert page.evaluate("() => cspViolations") == []
    assert not page.errors, page.errors
    elsewhere = [u for u in requested if not u.startswith((server + "/", "data:", "blob:"))]
    assert not elsewhere, f"requests leaving this server: {elsewhere}"


def test_swagger_ui_lists_every_endpoint(page, server):
    requested = open_docs(page, server + "/docs")
    page.wait_for_selector(".opblock-summary-path[data-path='/api/attention']", timeout=30000)
    shown = set(page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path)"))
    assert shown == {r.path for r in api_router.routes}, shown
    page.click(".opblock-summary-path[data-path='/api/attention']")  # an operation opens, with its schema
    page.wait_for_selector(".opblock.is-open .parameters-container, .opblock.is-open .opblock-section-request-body")
    check_clean(page, server, requested)


def test_redoc_is_the_swagger_ui(page, server):
    """/redoc is a redirect to /docs (app/routes/docs.py says why)."""
    requested = open_docs(page, server + "/redoc")
    page.wait_for_selector(".opblock-summary-path[data-path='/api/compare']", timeout=30000)
    assert page.url == server + "/docs"
    check_clean(page, server, requested)
