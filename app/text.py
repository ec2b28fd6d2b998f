"""User text, checked once where it enters: JSON string fields through the `Text` type, URL query
strings through the `Utf8Query` middleware. Both refuse with 422 `invalid_text` and say what and
where: "text: lone surrogate U+D800 at character 0".

What is refused is only what is not text: a lone surrogate (JSON can spell one, "\\ud800", but UTF-8
cannot encode it, so the tokenizer, orjson and every file we write would fail on it) and, in a URL,
bytes that are not UTF-8. Starlette would otherwise decode a query three ways: `QueryParams` turns bad
bytes into U+FFFD silently (so we would analyse a text nobody wrote), `Request.url` decodes raw bytes
strictly (a 500), and raw non-ASCII bytes reach `QueryParams` as Latin-1 mojibake.

NUL and the other control characters are allowed: they are Unicode scalar values that JSON and UTF-8
carry, the tokenizers handle them as the reference implementations do (byte-level BPE has a token
for every byte; BERT's normaliser drops control characters; the parity tests include NUL), pasted
text has tabs and carriage returns, and the front end writes user text with textContent only.
"""

import html
import re
from typing import Annotated
from urllib.parse import unquote_to_bytes

import orjson
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

SURROGATE = re.compile("[\ud800-\udfff]")
# pydantic's own error for a str it cannot convert (a lone surrogate in a key or a non-text field)
TEXT_ERRORS = ("invalid_text", "string_unicode")


def surrogate_problem(value: str) -> str | None:
    """'lone surrogate U+D800 at character 0', or None for text that UTF-8 can encode. A JSON pair
    ("\\ud83d\\ude00") is decoded to one character before we see it: any surrogate left is lone."""
    m = SURROGATE.search(value)
    return None if m is None else f"lone surrogate U+{ord(m[0]):04X} at character {m.start()}"


def _check(value):
    if isinstance(value, str) and (problem := surrogate_problem(value)):
        raise PydanticCustomError("invalid_text", problem)
    return value


Text = Annotated[str, BeforeValidator(_check)]
"""A request schema's str field of user text: a lone surrogate is a 422 invalid_text naming the field."""


def bytes_problem(raw: bytes) -> str | None:
    """What keeps raw bytes from being UTF-8, by character position of the decoded prefix, or None."""
    try:
        raw.decode("utf-8")
        return None
    except UnicodeDecodeError as e:
        at = len(raw[:e.start].decode("utf-8"))
        seq = raw[e.start:e.start + 3]
        if len(seq) == 3 and seq[0] == 0xED and 0xA0 <= seq[1] <= 0xBF:  # a surrogate, UTF-8-style (CESU)
            return f"lone surrogate U+{ord(seq.decode('utf-8', 'surrogatepass')):04X} at character {at}"
        return f"invalid UTF-8 byte 0x{raw[e.start]:02X} at character {at}"


def query_problem(query: bytes | str) -> str | None:
    """The first name or value of a URL query that is not UTF-8 once percent-decoded, said as
    'text: invalid UTF-8 byte 0xFF at character 0', or None. Split as parse_qsl splits (on '&')."""
    if isinstance(query, str):
        query = query.encode("utf-8", "surrogateescape")
    for part in query.split(b"&"):
        name, _, value = (unquote_to_bytes(p.replace(b"+", b" ")) for p in part.partition(b"="))
        if problem := bytes_problem(name):
            return f"a parameter name: {problem}"
        if problem := bytes_problem(value):
            return f"{name.decode()}: {problem}"
    return None


ERROR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>attnscope: this link cannot be read</title><link rel="stylesheet" href="/static/css/app.css"></head>
<body><main class="panel"><h2>This link cannot be read</h2><p class="error" role="alert">{detail}</p>
<p>Its URL holds characters that are not text; it may have been cut or mangled on the way.
<a href="/">Open the explorer</a> and type the sentence again.</p></main></body></html>
"""


class Utf8Query:
    """Pure ASGI middleware: a query string that is not UTF-8 is a 422 invalid_text on every route,
    before any route reads it: JSON {"error", "detail"}, or a readable page for a client that asks for
    HTML (a browser opening a page, an embed in an iframe). Raw non-ASCII bytes in the query (some
    servers pass them on) are percent-encoded first, so that Starlette's decoders all see ASCII."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("query_string"):
            return await self.app(scope, receive, send)
        query = re.sub(rb"[^\x21-\x7e]", lambda m: b"%%%02X" % m[0][0], scope["query_string"])
        problem = query_problem(query)
        if problem is None:
            return await self.app(scope if query == scope["query_string"] else {**scope, "query_string": query}, receive, send)
        accept = dict(scope.get("headers") or ()).get(b"accept", b"")
        if b"text/html" in accept:
            body, media = ERROR_PAGE.format(detail=html.escape(problem)).encode(), b"text/html; charset=utf-8"
        else:
            body, media = orjson.dumps({"error": "invalid_text", "detail": problem}), b"application/json"
        await send({"type": "http.response.start", "status": 422,
                    "headers": [(b"content-type", media), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


MAX_THEN = 4096  # as TextRequest.then


def parse_then(value: str | None) -> list[int]:
    """A URL's `then` (the ids written after the text, comma-separated: '7042,30,198') -> [7042, 30, 198];
    '' or None -> []. ValueError says what is wrong (ids' range is the model's to check)."""
    if not value:
        return []
    parts = value.split(",")
    if len(parts) > MAX_THEN:
        raise ValueError(f"then lists {len(parts)} token ids; at most {MAX_THEN}")
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError(f"then must be token ids separated by commas (such as 7042,30,198), not {value[:40]!r}")
    if any(len(p) > 18 for p in parts):  # past any vocabulary, and past the 64 bits JSON is written with here
        raise ValueError(f"then holds a token id of {max(map(len, parts))} digits: no vocabulary is that large")
    return [int(p) for p in parts]
