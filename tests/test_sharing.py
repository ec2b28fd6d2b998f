"""Sharing beyond this machine: the public URL that links and embed snippets use, the Host names the
server answers to (a Host header must never choose the address an iframe points at), forwarded headers
only from proxies the operator names, and embeds that a slide deck opened from a file may frame."""

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.main import create_app
from app.security import allowed_hosts
from app.settings import Settings

PUBLIC = "https://attnscope.school.example"


@pytest.fixture(scope="module")
def make_client(registry, smol, minilm):
    clients = []

    def make(base_url: str = "http://localhost", **settings) -> TestClient:
        c = TestClient(create_app(Settings(preload="none", **settings), registry=registry), base_url=base_url)
        clients.append(c.__enter__())
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def test_the_issue_case_a_foreign_host_cannot_poison_oembed(make_client):
    """Host: evil.example used to get 200 with an iframe pointing at evil.example, which a shared cache
    would have handed to everyone. It is refused before any route runs."""
    c = make_client()
    r = c.get("/oembed?url=" + quote("http://evil.example/embed/heatmap?text=x", safe=""), headers={"Host": "evil.example"})
    assert r.status_code == 400 and "evil.example" not in r.text
    for path in ("/", "/embed/heatmap", "/api/models", "/lesson"):
        assert c.get(path, headers={"Host": "evil.example"}).status_code == 400
    # the local names are served as before
    for name in ("localhost", "127.0.0.1", "localhost:8000"):
        assert c.get("/api/models", headers={"Host": name}).status_code == 200


def test_with_a_public_url_only_it_counts(make_client):
    c = make_client(base_url="http://127.0.0.1:8000", public_url=PUBLIC + "/")
    o = c.get("/oembed", params={"url": f"{PUBLIC}/embed/heatmap?text=a+b"}).json()
    assert o["provider_url"] == f"{PUBLIC}/" and f'src="{PUBLIC}/embed/heatmap?text=a+b' in o["html"]
    # the address the server listens on is not what readers use: not an attnscope URL any more
    assert c.get("/oembed", params={"url": "http://127.0.0.1:8000/embed/heatmap"}).status_code == 404
    # discovery links and the page's base for its own snippets (static/js/dom.js publicOrigin)
    page = c.get("/?text=a+b").text
    assert f'href="{PUBLIC}/oembed?url={quote(PUBLIC, safe="")}%2F%3Ftext%3Da%2Bb' in page
    assert f'<meta name="attnscope-base" content="{PUBLIC}">' in page
    embed = c.get("/embed/heatmap?text=a+b").text
    assert f'<meta name="attnscope-base" content="{PUBLIC}">' in embed
    assert f"{PUBLIC}/oembed?url={quote(PUBLIC, safe='')}%2Fembed%2Fheatmap" in embed
    # a proxy that forwards the public name is answered
    assert c.get("/api/models", headers={"Host": "attnscope.school.example"}).status_code == 200


def test_without_a_public_url_links_use_the_allowed_address_the_reader_typed(make_client):
    c = make_client(base_url="http://localhost:8000")
    o = c.get("/oembed", params={"url": "http://localhost:8000/embed/grid"}).json()
    assert 'src="http://localhost:8000/embed/grid' in o["html"]
    assert '<meta name="attnscope-base" content="http://localhost:8000">' in c.get("/").text


def test_allowed_hosts_default_and_explicit():
    default = allowed_hosts("", None, "127.0.0.1")
    assert {"localhost", "127.0.0.1", "::1"} <= set(default) and "evil.example" not in default
    assert "10.1.2.3" in allowed_hosts("", None, "10.1.2.3")  # the address it listens on
    assert "a.example" in allowed_hosts("", "https://a.example:8443", "0.0.0.0")
    # an explicit list replaces the default (the public URL's host is always added)
    assert allowed_hosts("class.local, *.school.example", "https://a.example", "127.0.0.1") == ["class.local", "*.school.example", "a.example"]


def test_explicit_allowed_hosts_and_star(make_client):
    only = make_client(allowed_hosts="class.local")
    assert only.get("/api/models", headers={"Host": "class.local"}).status_code == 200
    assert only.get("/api/models", headers={"Host": "localhost"}).status_code == 400
    anyone = make_client(allowed_hosts="*")
    assert anyone.get("/api/models", headers={"Host": "whatever.example"}).status_code == 200


def test_forwarded_headers_count_only_when_the_operator_names_the_proxy(make_client):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    url = {"url": "https://localhost/embed/heatmap"}
    plain = make_client()
    assert plain.get("/oembed", params=url, headers=headers).json()["provider_url"] == "http://localhost/"  # ignored
    proxied = make_client(forwarded_allow_ips="*")  # TestClient's peer is "testclient": '*' trusts it
    o = proxied.get("/oembed", params=url, headers=headers).json()
    assert o["provider_url"] == "https://localhost/" and 'src="https://localhost/embed/heatmap' in o["html"]


@pytest.mark.parametrize("bad", ["attnscope.example", "ftp://a.example", "https://a.example/sub/path", "https://a.example/?x=1",
                                 "https://"])
def test_a_public_url_that_cannot_be_a_base_is_refused_at_start(bad):
    with pytest.raises(ValidationError, match="ATTNSCOPE_PUBLIC_URL"):
        Settings(public_url=bad)


def test_embeds_may_be_framed_from_a_file_and_pages_only_by_themselves(client):
    csp = client.get("/embed/heatmap").headers["content-security-policy"]
    assert "frame-ancestors * file:" in csp
    assert "frame-ancestors 'self'" in client.get("/").headers["content-security-policy"]

