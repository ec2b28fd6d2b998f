"""HTTP plumbing: errors as JSON 4xx, a request-body limit, fast JSON, gzip by negotiation, and
the `Runner` object that runs each request's work off the event loop with caching and load shedding."""

import gzip
from collections.abc import Callable

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import Response

from .analysis import CachedRun, full_run
from .engine import EmptyInputError, EngineError, InputTooLongError, Model, ModelLoadError, Registry, UnknownModelError
from .service import ByteLRU, ComputePool, Overloaded
from .settings import Settings

GZIP_MIN_BYTES = 1024


def gzip_level(n_bytes: int) -> int:
    """Measured on attention payloads (bench/api.py): level 6 saves ~8% over level 1 on the compact
    encodings for ~10 ms; on megabyte JSON bodies it costs 7x level 1's time for ~20%."""
    return 6 if n_bytes < 256 << 10 else 1


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, **extra):
        self.status, self.error, self.detail, self.extra = status, error, detail, extra
        super().__init__(detail)


def dumps(obj) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


def error_response(status: int, error: str, detail: str, headers: dict | None = None, **extra) -> Response:
    return Response(dumps({"error": error, "detail": detail, **extra}), status, headers=headers, media_type="application/json")


def _engine_error(e: EngineError) -> tuple[int, str, dict]:
    if isinstance(e, UnknownModelError):
        return 404, "unknown_model", {"known": e.known}
    if isinstance(e, InputTooLongError):
        return 422, "too_many_tokens", {"n_tokens": e.n_tokens, "limit": e.limit}
    if isinstance(e, EmptyInputError):
        return 422, "empty_text", {}
    if isinstance(e, ModelLoadError):
        return 503, "model_unavailable", {}
    return 422, "bad_input", {}


def error_body(e: EngineError | ApiError) -> dict:
    """The JSON an error becomes, for pages that show it inline rather than answer with it."""
    if isinstance(e, ApiError):
        return {"error": e.error, "detail": e.detail, **e.extra}
    _, code, extra = _engine_error(e)
    return {"error": code, "detail": str(e), **extra}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError):
        return error_response(e.status, e.error, e.detail, **e.extra)

    @app.exception_handler(EngineError)
    async def engine_error(_: Request, e: EngineError):
        status, code, extra = _engine_error(e)
        return error_response(status, code, str(e), **extra)

    @app.exception_handler(Overloaded)
    async def overloaded(_: Request, e: Overloaded):
        return error_response(503, "overloaded", str(e), headers={"Retry-After": str(e.retry_after)})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException):
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
        detail = "the body is not valid UTF-8 JSON" if e.status_code == 400 and "parsing the body" in str(e.detail) else str(e.detail)
        return error_response(e.status_code, codes.get(e.status_code, "http_error"), detail, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError):
        problems = []
        for err in e.errors():
            if err.get("type") == "json_invalid":
                problems.append(f"the body is not valid JSON ({(err.get('ctx') or {}).get('error', 'cannot parse')})")
                continue
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        detail = "; ".join(problems) or "the request is not valid"
        # the offending input is not echoed back: it may be huge, or not representable in JSON
        problems_public = [{"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")),
                            "type": str(err.get("type", ""))} for err in e.errors()]
        return error_response(422, "invalid_request", detail, problems=problems_public)


class BodyLimit:
    """Pure ASGI middleware: refuse request bodies over max_bytes with 413, declared or streamed."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._refuse(send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send):
        body = dumps({"error": "body_too_large", "detail": f"the request body is over {self.max_bytes} bytes"})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


class Body:
    """An encoded response body, with its gzip form made once, when first asked for."""

    __slots__ = ("raw", "_gz")

    def __init__(self, raw: bytes):
        self.raw, self._gz = raw, None

    def gz(self) -> bytes:
        if self._gz is None:
            self._gz = gzip.compress(self.raw, gzip_level(len(self.raw)), mtime=0)
        return self._gz

    @property
    def nbytes(self) -> int:
        return len(self.raw) + (len(self._gz) if self._gz else 0)


class Runner:
    """What the API routes share: the models, the caches and the compute pool (on app.state)."""

    def __init__(self, registry: Registry, settings: Settings):
        self.registry, self.settings = registry, settings
        self.runs = ByteLRU(settings.run_cache_mb << 20, lambda cr: cr.nbytes)
        self.bodies = ByteLRU(settings.response_cache_mb << 20, lambda b: b.nbytes)
        self.pool = ComputePool(settings.compute_threads, settings.max_pending)

    def model(self, model_id: str | None) -> Model:
        return self.registry.get(model_id)

    def run(self, model: Model, text: str) -> CachedRun:
        """Blocking: the one full run of this text (every capture), cached and shared by all endpoints."""
        return self.runs.get_or_compute((model.id, text), lambda: full_run(model, text))

    async def respond(self, request: Request, key: tuple, build: Callable[[], object]) -> Response:
        """Serve a cached body for key, or build the payload off the event loop, encode and cache it."""
        key = (self.registry.resolve(key[0]),) + key[1:]
        want_gz = accepts_gzip(request)
        body = self.bodies.get(key)
        if body is None or (want_gz and body._gz is None and len(body.raw) >= GZIP_MIN_BYTES):
            body = await self.pool.run(self._build, key, build, want_gz)
        if want_gz and len(body.raw) >= GZIP_MIN_BYTES:
            return Response(body.gz(), media_type="application/json",
                            headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return Response(body.raw, media_type="application/json", headers={"Vary": "Accept-Encoding"})

    def _build(self, key: tuple, build: Callable[[], object], want_gz: bool) -> Body:
        body = self.bodies.get_or_compute(key, lambda: Body(dumps(build())))
        if want_gz and len(body.raw) >= GZIP_MIN_BYTES:
            body.gz()
        return body
