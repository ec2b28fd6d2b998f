"""HTTP caching of what is a pure function of its URL: strong ETags, Cache-Control, 304s.

Every page, embed, export and API view is computed from three things only: the request's parameters,
the models' weights and the code. So its ETag is a hash of exactly those, and it can be computed from
the request alone, before any model runs: a client (or nginx revalidating, deploy/) that sends it
back in If-None-Match gets a 304 and no forward pass.

- the code version: the package's version, a hash of app/'s Python sources, static/ and templates/,
  plotly.js's, and the versions of the libraries whose output we send (numpy, tokenizers, orjson, ...),
  and the BLAS library, kernel and thread count (float32 sums are split by thread, so two hosts with a
  different BLAS may differ in a last digit: they must not share an ETag). Computed once, at start.
- a model's weights: a sha256 of its source files' bytes (the GGUF, or the folder's files), the
  files the converted-weight store is keyed by (app/engine/loaders.py's source_key, which names them
  by path, size and time). A hash of the contents, not of the path, so that every host of a
  deployment serving the same weights gives the same ETags. Computed once per model and process,
  when it loads; the conversion (STORE_VERSION, the converters) is app/ code, in the code version.
- the parameters, canonical: a POST body as its validated request's JSON with sorted keys (so
  defaults spelt out or left out are one ETag) and the model's resolved id; a URL's query as its
  pairs sorted by name (a stable sort: repeated names keep their order, since /compare's sentences
  are ordered); the public base for HTML and oEmbed, whose links start with it.

A response that is gzipped for a client that accepts gzip is another representation of the same
resource: its ETag ends in -gzip (RFC 9110 8.8.3: a strong validator names one byte sequence), and
the bytes are made with gzip's mtime at 0, so they are the same on every request and every host.

`Cache-Control: public, max-age=ATTNSCOPE_CACHE_MAX_AGE` (default 300 s: long enough for a class to
open a lesson from one copy, short enough that a redeployed server's pages reach readers within
minutes; expiry costs one 304, computed without the model). Errors (4xx, 5xx) are `no-store`
(CacheHeaders, every route), so no cache keeps a refusal or an overload as if it were the answer.
"""

import asyncio
import gzip
import hashlib
import importlib.metadata
import json
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import orjson
from fastapi import Request
from fastapi.responses import Response
from threadpoolctl import threadpool_info

from .engine import ModelLoadError, Registry
from .http import GZIP_MIN_BYTES, accepts_gzip, error_response, gzip_level, public_base
from .vendor import plotly_bundle

ROOT = Path(__file__).resolve().parents[1]
CODE_TREES = (("app", "*.py"), ("static", "*"), ("templates", "*"))
# the libraries whose output reaches a response byte for byte (numbers, tokens, figures, HTML)
LIBRARIES = ("attnscope", "numpy", "tokenizers", "orjson", "plotly", "jinja2", "gguf", "safetensors", "pydantic",
             "fastapi", "starlette")
CHUNK = 1 << 20


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def code_version(max_tokens: int) -> str:
    """The code that turns a request into bytes, and the numeric environment it runs in (see above)."""
    h = hashlib.sha256(b"attnscope-code-1\0")
    for package in LIBRARIES:
        h.update(f"{package}={_version(package)}\0".encode())
    for folder, pattern in CODE_TREES:
        for p in sorted((ROOT / folder).rglob(pattern)):
            if p.is_file() and "__pycache__" not in p.parts:
                h.update(f"{p.relative_to(ROOT).as_posix()}\0".encode())
                h.update(p.read_bytes())
    h.update(f"plotly.js={plotly_bundle()[0]}\0python={sys.version_info[:2]}\0numpy={np.__version__}\0".encode())
    for lib in threadpool_info():  # after limit_blas_threads: the thread count the forward passes use
        h.update(orjson.dumps({k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}))
    h.update(f"max_tokens={max_tokens}".encode())
    return h.hexdigest()


def files_digest(path: Path) -> str:
    """sha256 of a model's source: a file's bytes, or a folder's files (relative names and bytes, sorted)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.relative_to(path).as_posix() if path.is_dir() else p.name}\0{p.stat().st_size}\0".encode())
        with open(p, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    return h.hexdigest()


class Versions:
    """The code version (computed at construction, i.e. at start) and each model's weight hash (once per
    model, at load or first use); etag() combines them with a request's canonical parameters."""

    def __init__(self, registry: Registry, max_tokens: int):
        self.registry = registry
        self.code = code_version(max_tokens)
        self._models: dict[str, str] = {}
        self._registry: str | None = None
        self._lock = threading.Lock()

    def model(self, model_id: str) -> str:
        """Blocking the first time (the source files are read once): the model's weight hash."""
        if (d := self._models.get(model_id)) is not None:
            return d
        with self._lock:
            if (d := self._models.get(model_id)) is None:
                src = self.registry.sources[model_id]
                if (why := self.registry.missing(model_id)) is not None:
                    raise ModelLoadError(why)
                try:
                    d = self._models[model_id] = files_digest(src.path)
                except OSError as e:
                    raise ModelLoadError(f"model {model_id!r} cannot be read: {e}") from None
            return d

    def known(self, model_id: str) -> bool:
        return model_id in self._models

    def everything(self) -> str:
        """Blocking the first time: what the pages depend on beyond their URL: every available model
        (the model menus list them all), the default one."""
        if self._registry is not None:
            return self._registry
        parts, complete = [], True
        for src in self.registry.available():
            try:
                parts.append((src.id, src.name, self.model(src.id)))
            except ModelLoadError:  # left out of the menus (payloads.models_public); not kept: it may be mended
                parts.append((src.id, src.name, None))
                complete = False
        digest = hashlib.sha256(orjson.dumps([self.registry.default, parts])).hexdigest()
        if complete:
            self._registry = digest
        return digest

    def etag(self, scope: str, params, gz: bool) -> str:
        """A strong ETag: the code, the weights' part (scope) and the canonical parameters (JSON-able)."""
        # the standard library's JSON: orjson refuses integers beyond 64 bits, which a schema may still accept
        canonical = json.dumps(params, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        h = hashlib.sha256(f"{self.code}\0{scope}\0{canonical}".encode())
        return f'"{h.hexdigest()[:32]}{"-gzip" if gz else ""}"'


def canonical_query(query: str) -> list[tuple[str, str]]:
    """A URL's query as its pairs sorted by name; repeated names keep their order (stable sort)."""
    return sorted(parse_qsl(query, keep_blank_values=True), key=lambda kv: kv[0])


ETAG = re.compile(r'\s*(?:W/)?("[^"]*")\s*(?:,|$)')


def if_none_match(request: Request) -> tuple[set[str], bool]:
    """(the opaque tags listed, whether it is '*'); comparison is weak (RFC 9110 13.1.2): W/ is dropped."""
    value = request.headers.get("if-none-match")
    if value is None:
        return set(), False
    if value.strip() == "*":
        return set(), True
    return {m.group(1) for m in ETAG.finditer(value)}, False


def cache_headers(tag: str, max_age: int) -> dict[str, str]:
    return {"ETag": tag, "Cache-Control": f"public, max-age={max_age}", "Vary": "Accept-Encoding"}


def not_modified(request: Request, tag: str, max_age: int) -> Response | None:
    """304 for GET/HEAD whose If-None-Match holds tag; for other methods 412 (RFC 9110 13.1.2); else None."""
    tags, _ = if_none_match(request)
    if tag not in tags:
        return None
    if request.method in ("GET", "HEAD"):
        return Response(status_code=304, headers=cache_headers(tag, max_age))
    return error_response(412, "precondition_failed", f"If-None-Match holds this answer's ETag {tag}: a {request.method} "
                          "is not performed when it matches (RFC 9110 13.1.2)")


def finish(request: Request, response: Response, tag: str, max_age: int) -> Response:
    """A built response made cacheable: gzipped here (mtime 0) when the client accepts it, so its bytes
    are those its ETag names; with the cache headers. A response that is not a 200, or that marked
    itself no-store (a page showing a transient error), is left uncacheable. If-None-Match: * is
    answered here, once it is known that the resource exists."""
    if response.status_code != 200 or "no-store" in response.headers.get("cache-control", ""):
        response.headers["Cache-Control"] = "no-store"
        return response
    _, star = if_none_match(request)
    if star and request.method in ("GET", "HEAD"):
        return Response(status_code=304, headers=cache_headers(tag, max_age))
    body = response.body
    if tag.endswith('-gzip"') and "content-encoding" not in response.headers and len(body) >= GZIP_MIN_BYTES:
        response.body = gzip.compress(body, gzip_level(len(body)), mtime=0)
        response.headers["Content-Encoding"] = "gzip"
        response.headers["Content-Length"] = str(len(response.body))
    response.headers.update(cache_headers(tag, max_age))
    return response


def page_tag(request: Request, versions: Versions) -> str:
    """Blocking the first time (the models' hashes): the ETag of an HTML page, embed or oEmbed answer,
    from its path, its canonical query and the public base its links start with."""
    params = [request.url.path, canonical_query(request.url.query), public_base(request)]
    return versions.etag(versions.everything(), params, accepts_gzip(request))


def cached_page(request: Request, build: Callable[[], Response]) -> Response:
    """A sync route (a page, an embed, oEmbed): 304 before any work when If-None-Match holds the ETag,
    else build() made cacheable."""
    runner = request.app.state.runner
    tag = page_tag(request, runner.versions)
    max_age = runner.settings.cache_max_age
    return not_modified(request, tag, max_age) or finish(request, build(), tag, max_age)


async def model_tag(request: Request, versions: Versions, model_id: str, params) -> str:
    """The ETag of something computed from one model (an API view, an export): that model's weight hash
    (hashed off the event loop the first time), the path and the canonical parameters."""
    digest = versions.model(model_id) if versions.known(model_id) else await asyncio.to_thread(versions.model, model_id)
    return versions.etag(f"{model_id}:{digest}", [request.url.path, params], accepts_gzip(request))


class CacheHeaders:
    """Pure ASGI middleware, outside the others: every error response (status >= 400: a refusal, an
    overload's 503, a 413 from the body limit, a Host the server does not answer) says `Cache-Control:
    no-store` and carries no ETag, whichever layer made it, so that no cache serves it in place of the
    answer; and Vary names each header once (the gzip middleware appends its own to ours)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_final(message):
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                vary = [v.strip() for k, value in headers if k.lower() == b"vary" for v in value.split(b",") if v.strip()]
                drop = (b"vary", b"cache-control", b"etag") if message["status"] >= 400 else (b"vary",)
                headers = [(k, v) for k, v in headers if k.lower() not in drop]
                if vary:
                    headers.append((b"vary", b", ".join(dict.fromkeys(vary))))
                if message["status"] >= 400:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_final)
