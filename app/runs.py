"""The `Runner`: what the HTTP layer runs models with. One full run of a text (every capture) serves
every endpoint from a run cache; encoded responses are cached too; the work runs off the event loop
in a bounded compute pool that sheds load (503) instead of queueing forever."""

import gzip
import sys
from collections.abc import Callable, Sequence
from functools import cached_property

from fastapi import Request
from fastapi.responses import Response

from .analysis import CachedRun, full_run
from .engine import Model, Registry
from .http import GZIP_MIN_BYTES, accepts_gzip, dumps, gzip_level
from .httpcache import Versions
from .service import ByteLRU, ComputePool
from .settings import Settings


class Body:
    """An encoded response body, with its gzip form made once, when first asked for (which grows
    it: on_grow, set by the cache that holds it, re-counts its bytes)."""

    __slots__ = ("raw", "_gz", "on_grow", "__weakref__")

    def __init__(self, raw: bytes):
        self.raw, self._gz, self.on_grow = raw, None, None

    def gz(self) -> bytes:
        if self._gz is None:
            self._gz = gzip.compress(self.raw, gzip_level(len(self.raw)), mtime=0)
            if self.on_grow is not None:
                self.on_grow()
        return self._gz

    @property
    def nbytes(self) -> int:  # the bytes objects as Python holds them (header included)
        return sys.getsizeof(self.raw) + (sys.getsizeof(self._gz) if self._gz is not None else 0)


class Runner:
    """What the API routes share: the models, the caches and the compute pool (on app.state)."""

    def __init__(self, registry: Registry, settings: Settings):
        self.registry, self.settings = registry, settings
        self.runs = ByteLRU(settings.run_cache_mb << 20, lambda cr: cr.nbytes)
        self.bodies = ByteLRU(settings.response_cache_mb << 20, lambda b: b.nbytes)
        self.pool = ComputePool(settings.compute_threads, settings.max_pending)
        self.writing = 0  # generations writing now (app/generation.py; on the event loop, no lock needed)

    @cached_property
    def versions(self) -> Versions:
        """The code version and the models' weight hashes that ETags are made of (app/httpcache.py)."""
        return Versions(self.registry, self.settings.max_tokens)

    def model(self, model_id: str | None) -> Model:
        return self.registry.get(model_id)

    def run(self, model: Model, text: str, then: Sequence[int] = ()) -> CachedRun:
        """Blocking: the one full run of this text (and of the ids written after it: Model.read), every
        capture, cached and shared by all endpoints."""
        then = tuple(then)
        return self.runs.get_or_compute((model.id, text, then), lambda: full_run(model, text, then))

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
