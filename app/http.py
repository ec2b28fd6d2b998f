"""HTTP plumbing: errors as JSON 4xx, a request-body limit, fast JSON, gzip by negotiation."""

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import Response

from .engine import (ChatTemplateError, EmptyInputError, EngineError, InputTooLongError, ModelLoadError, NotCausalError,
                     TokenIdError, UnknownModelError)
from .service import Overloaded
from .text import TEXT_ERRORS

GZIP_MIN_BYTES = 1024


def gzip_level(n_bytes: int) -> int:
    """Measured on attention payloads (bench/api.py): level 6 saves ~8% over level 1 on the compact
    encodings for ~10 ms; on megabyte JSON bodies it costs 7x level 1's time for ~20%."""
    return 6 if n_bytes < 256 << 10 else 1


def public_base(request: Request) -> str:
    """The address every link this server writes starts with: ATTNSCOPE_PUBLIC_URL when it is set,
    else the request's own scheme and Host (which TrustedHostMiddleware has checked): no trailing slash."""
    return request.app.state.settings.public_url or str(request.base_url).rstrip("/")


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
    if isinstance(e, TokenIdError):
        return 422, "bad_token_id", {"token_id": e.token_id}
    if isinstance(e, NotCausalError):
        return 422, "not_causal", {}
    if isinstance(e, ChatTemplateError):
        return 422, "no_chat", {}
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
        code = "invalid_text" if problems_public and all(p["type"] in TEXT_ERRORS for p in problems_public) else "invalid_request"
        return error_response(422, code, detail, problems=problems_public)


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
