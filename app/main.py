"""The ASGI app: `uvicorn app.main:app`. Models load once, in lifespan, and live on app.state."""

import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from threadpoolctl import threadpool_limits
from fastapi.middleware.gzip import GZipMiddleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES
from starlette.middleware.trustedhost import TrustedHostMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from fastapi.staticfiles import StaticFiles

from .engine import ModelLoadError, Registry
from .http import GZIP_MIN_BYTES, BodyLimit, install_error_handlers
from .httpcache import CacheHeaders
from .runs import Runner
from .security import ANY_INTERFACE, SecurityHeaders, allowed_hosts
from .routes import api, docs, embed, export, pages
from .schemas import LESSON_SENTENCE
from .settings import Settings, get_settings
from .text import Utf8Query

log = logging.getLogger("attnscope")
ROOT = Path(__file__).resolve().parents[1]


def preload_ids(registry: Registry, preload: str) -> list[str]:
    if preload == "none":
        return []
    if preload == "all":
        return [s.id for s in registry.available()]
    if preload == "default":
        return [registry.default]
    return [i.strip() for i in preload.split(",") if i.strip()]


class RevalidatedStaticFiles(StaticFiles):
    """Module files must not be mixed across versions: browsers revalidate them (ETag) on every load."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def limit_blas_threads(settings: Settings) -> int:
    """One forward pass uses every BLAS thread it has; workers x threads must not exceed the cores,
    or OpenBLAS's spinning threads fight each other (measured here: 10-20x slower under load)."""
    n = settings.blas_threads or max(1, (os.cpu_count() or 1) // settings.workers)
    threadpool_limits(n, user_api="blas")
    return n


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        limit_blas_threads(settings)
        reg = registry or Registry.from_env(settings.models, default=settings.default_model, cache_dir=settings.cache_dir,
                                            max_tokens=settings.max_tokens, memory_budget_mb=settings.memory_budget_mb)
        reg.prepare()  # Hugging Face ids: fetched (or found in the hub cache) now, never inside a request
        for model_id in preload_ids(reg, settings.preload):
            try:
                model = reg.get(model_id)
            except ModelLoadError as e:  # "all": one broken model must not stop the others; one named: it must
                if settings.preload != "all":
                    raise
                log.error("cannot load %s (listed as failed in /api/models): %s", model_id, e)
                continue
            log.info("loaded %s (%s, %d layers x %d heads)", model.id, model.cfg.architecture,
                     model.cfg.n_layers, model.cfg.n_heads)
        app.state.registry, app.state.settings = reg, settings
        app.state.runner = Runner(reg, settings)
        versions = app.state.runner.versions  # the code version, once, at start (after the BLAS threads are set)
        for model_id in preload_ids(reg, settings.preload):
            versions.model(model_id)  # each loaded model's weight hash, once
        if settings.preload != "none":  # touch every weight page once, and cache the lesson sentence's run
            app.state.runner.run(reg.get(), LESSON_SENTENCE)
        yield
        app.state.runner.pool.shutdown()

    app = FastAPI(title="attnscope", summary="How attention moves meaning between tokens, from a real transformer.",
                  version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)  # ours: app/routes/docs.py
    app.state.settings = settings  # before lifespan too: http.public_base reads it
    app.mount("/static", RevalidatedStaticFiles(directory=ROOT / "static"), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(embed.router)
    app.include_router(export.router)
    app.include_router(docs.router)
    install_error_handlers(app)
    app.add_middleware(Utf8Query)  # innermost: its 422s get the security headers too
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders, public_url=settings.public_url)
    # HTML pages and static files; API bodies and plotly.js come compressed already and pass through
    # (never a stream: gzip would hold back its lines until a block fills)
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES, compresslevel=6,
                       exclude_content_types=DEFAULT_EXCLUDED_CONTENT_TYPES + ("application/x-ndjson",))
    hosts = allowed_hosts(settings.allowed_hosts, settings.public_url, settings.host)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False)
    if settings.host in ANY_INTERFACE and not settings.public_url:
        log.warning("listening on every interface with no ATTNSCOPE_PUBLIC_URL: links and embed snippets will use "
                    "the address each reader typed, if it is one of %s (else 400)", ", ".join(hosts))
    app.add_middleware(CacheHeaders)  # outside all that can refuse a request: no error is ever cached
    if settings.forwarded_allow_ips:  # outermost: the proxy's scheme and client address, before anything reads them
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    return app


app = create_app()
