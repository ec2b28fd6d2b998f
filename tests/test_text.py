"""app/text.py: user text is checked once where it enters, and a refusal says what and where."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.text import Utf8Query, bytes_problem, query_problem, surrogate_problem


@pytest.mark.parametrize("value, problem", [
    ("\ud800 x", "lone surrogate U+D800 at character 0"),
    ("ab\udfff", "lone surrogate U+DFFF at character 2"),
    ("a \U0001F600 \ud83d", "lone surrogate U+D83D at character 4"),  # the emoji is one character
    ("NUL\x00 tab\t bell\x07 \u202e\u200d\ufeff", None),  # control and format characters are text
    ("", None),
])
def test_surrogate_problem(value, problem):
    assert surrogate_problem(value) == problem


@pytest.mark.parametrize("raw, problem", [
    (b"\xed\xa0\x80", "lone surrogate U+D800 at character 0"),  # what '\ud800' would be, UTF-8-style
    (b"ab\xed\xb0\x80", "lone surrogate U+DC00 at character 2"),
    ("é€".encode() + b"\xff", "invalid UTF-8 byte 0xFF at character 2"),  # characters, not bytes
    (b"\xc3", "invalid UTF-8 byte 0xC3 at character 0"),  # cut short
    ("é\x00".encode(), None),
])
def test_bytes_problem(raw, problem):
    assert bytes_problem(raw) == problem


@pytest.mark.parametrize("query, problem", [
    (b"text=%ED%A0%80", "text: lone surrogate U+D800 at character 0"),
    (b"model=x&text=a+b%FF", "text: invalid UTF-8 byte 0xFF at character 3"),
    (b"s=ok&s=%C3%A9%FF", "s: invalid UTF-8 byte 0xFF at character 1"),
    (b"%FF=1", "a parameter name: invalid UTF-8 byte 0xFF at character 0"),
    (b"text=%C3%A9%00&flag&=", None),
    ("text=é".encode(), None),  # raw UTF-8 bytes (some servers pass them on)
    ("text=é%FF", "text: invalid UTF-8 byte 0xFF at character 1"),  # a str: oEmbed's inner URL
])
def test_query_problem(query, problem):
    assert query_problem(query) == problem


SURROGATE_BODY = b'{"text": "\\ud800 x"}'


@pytest.mark.parametrize("path, body, detail", [
    ("/api/attention", SURROGATE_BODY, "text: lone surrogate U+D800 at character 0"),
    ("/api/predictions", SURROGATE_BODY, "text: lone surrogate U+D800 at character 0"),
    ("/api/residual", b'{"text": "ok \\udc00"}', "text: lone surrogate U+DC00 at character 3"),
    ("/api/attention", b'{"text": "ok", "model": "\\ud800"}', "model: lone surrogate U+D800 at character 0"),
    ("/api/compare", b'{"sentences": ["a mole", "\\ud800 mole"], "word": "mole"}',
     "sentences.1: lone surrogate U+D800 at character 0"),
    ("/api/compare", b'{"sentences": ["a mole", "b mole"], "word": "mo\\udfff"}', "word: lone surrogate U+DFFF at character 2"),
])
def test_json_lone_surrogate_is_invalid_text(client, path, body, detail):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_text" and r.json()["detail"] == detail


def test_json_surrogate_pair_and_nul_are_text(client):
    """An escaped pair is one emoji; NUL and control characters run (the parity tests include NUL)."""
    for body in (b'{"text": "\\ud83d\\ude00 ok"}', b'{"text": "NUL\\u0000 and bell\\u0007"}'):
        r = client.post("/api/attention", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("url, detail", [
    ("/?text=%ED%A0%80", "text: lone surrogate U+D800 at character 0"),
    ("/explain?text=ok%FF", "text: invalid UTF-8 byte 0xFF at character 2"),
    ("/compare?s=a&s=%FF", "s: invalid UTF-8 byte 0xFF at character 0"),
    ("/lens?text=%FF", "text: invalid UTF-8 byte 0xFF at character 0"),
    ("/embed/heatmap?text=%ED%B0%80", "text: lone surrogate U+DC00 at character 0"),
    ("/export/heatmap.csv?text=%FF", "text: invalid UTF-8 byte 0xFF at character 0"),
    ("/oembed?url=%FF", "url: invalid UTF-8 byte 0xFF at character 0"),
    ("/api/models?x=%FF", "x: invalid UTF-8 byte 0xFF at character 0"),
    ("/static/css/app.css?v=%FF", "v: invalid UTF-8 byte 0xFF at character 0"),
])
def test_query_not_utf8_is_invalid_text_everywhere(client, url, detail):
    """Starlette would decode these to U+FFFD silently; every route refuses them the same way."""
    r = client.get(url)
    assert (r.status_code, r.json()) == (422, {"error": "invalid_text", "detail": detail})
    page = client.get(url, headers={"accept": "text/html,*/*;q=0.8"})  # a browser: a page that says it
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert detail.replace("'", "&#x27;") in page.text and "content-security-policy" in page.headers


def test_oembed_checks_the_embed_urls_own_query(client):
    r = client.get("/oembed", params={"url": "http://testserver/embed/arrows?text=%FF"})
    assert (r.status_code, r.json()) == (422, {"error": "invalid_text", "detail": "url: text: invalid UTF-8 byte 0xFF at character 0"})


def test_raw_non_ascii_query_bytes_are_percent_encoded_first(client):
    """Some servers pass raw bytes on: UTF-8 ones are the text they spell (not Latin-1 mojibake, not a
    500 from Request.url); others are invalid_text like their percent-encoded form."""
    seen = {}

    async def app(scope, receive, send):
        seen["query"] = scope["query_string"]

    call = Utf8Query(app)({"type": "http", "query_string": "text=é".encode(), "headers": []}, None, None)
    with ThreadPoolExecutor(1) as pool:  # a loop of its own: an earlier test may leave one running in this thread
        pool.submit(asyncio.run, call).result()
    assert seen["query"] == b"text=%C3%A9"
    r = client.get("/export/heatmap.json", params={"text": "café"})
    assert r.status_code == 200 and r.json()["text"] == "café"
