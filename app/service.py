"""Running models for HTTP requests: a bounded compute pool that sheds load instead of queueing
forever, and LRU caches (bounded by bytes) of runs and of encoded responses, so that one text is
run once for every endpoint, and identical requests in flight share one computation."""

import asyncio
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class Overloaded(Exception):
    """More work is waiting than the server will queue: the client should retry later."""

    def __init__(self, retry_after: int = 1):
        self.retry_after = retry_after
        super().__init__("the server is busy: too many requests are waiting; retry in a moment")


def key_nbytes(key) -> int:
    """What a cache key holds beyond references: its strings (a key carries the user's text, up to
    the request-body limit), counted with sys.getsizeof; other parts (ints, None, tuples) are small."""
    parts = key if isinstance(key, tuple) else (key,)
    return sum(key_nbytes(p) if isinstance(p, tuple) else sys.getsizeof(p) if isinstance(p, (str, bytes)) else 0
               for p in parts)


class ByteLRU:
    """A thread-safe LRU cache bounded by the total size of its entries (size_of(value) bytes plus
    its key's strings), where concurrent misses on one key wait for a single computation.

    A value larger than max_bytes is computed and returned but never kept. A value that can grow
    after it is cached (a run's logits, a body's gzip form) has an `on_grow` attribute: the cache
    sets it to a callback that re-measures the entry and evicts what no longer fits, so the bytes
    counted are the bytes held at every moment, not those at insertion."""

    def __init__(self, max_bytes: int, size_of: Callable[[Any], int]):
        self.max_bytes, self.size_of = max_bytes, size_of
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._inflight: dict[Any, Future] = {}
        self._lock = threading.Lock()
        self.bytes = self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key, value) -> None:
        size = self.size_of(value) + key_nbytes(key)
        with self._lock:
            if key in self._items:
                self.bytes -= self._items.pop(key)[1]
            if size > self.max_bytes:
                return  # too large to keep: computed, served, not cached
            if hasattr(value, "on_grow"):  # a weak reference: no cycle keeps an evicted value alive
                ref = weakref.ref(value)
                value.on_grow = lambda: self.resize(key, ref())
            self._items[key] = (value, size)
            self.bytes += size
            self._evict()

    def resize(self, key, value) -> None:
        """Re-measure key's entry after value grew; drop it if it no longer fits at all."""
        with self._lock:
            item = self._items.get(key)
            if value is None or item is None or item[0] is not value:
                return  # evicted or replaced meanwhile: nothing of ours is counted for it
            size = self.size_of(value) + key_nbytes(key)
            self.bytes += size - item[1]
            if size > self.max_bytes:
                del self._items[key]
                self.bytes -= size
            else:
                self._items[key] = (value, size)
            self._evict(keep=key)

    def _evict(self, keep=None) -> None:  # under the lock: oldest first, keep (the entry just used) last
        while self.bytes > self.max_bytes and self._items:
            oldest = next(iter(self._items))
            if oldest == keep and len(self._items) > 1:
                self._items.move_to_end(oldest)
                continue
            _, (_, s) = self._items.popitem(last=False)
            self.bytes -= s

    def get_or_compute(self, key, compute: Callable[[], Any]):
        """Blocking: returns the cached value, or computes it once however many threads ask."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return item[0]
            fut = self._inflight.get(key)
            owner = fut is None
            if owner:
                fut = self._inflight[key] = Future()
                self.misses += 1
        if not owner:
            return fut.result()
        try:
            value = compute()
        except BaseException as e:
            fut.set_exception(e)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)
        self.put(key, value)
        fut.set_result(value)
        return value

    def stats(self) -> dict:
        with self._lock:
            return {"entries": len(self._items), "bytes": self.bytes, "max_bytes": self.max_bytes,
                    "hits": self.hits, "misses": self.misses}


def _no_stop_iteration(fn: Callable, *args):
    """fn(*args), a StopIteration turned into a RuntimeError: asyncio cannot set it on a future, so the
    request would wait for ever (found by fuzzing: a 500 is reported and tested for, a hang is not)."""
    try:
        return fn(*args)
    except StopIteration as e:
        raise RuntimeError(f"StopIteration escaped {getattr(fn, '__name__', fn)}") from e


class ComputePool:
    """CPU-bound work off the event loop, on a few threads, with a bound on what may wait.

    numpy's BLAS already uses every core for one forward pass, so more threads than cores only
    adds contention; past max_pending waiting jobs, new work is refused (503 + Retry-After)."""

    def __init__(self, threads: int = 1, max_pending: int = 16):
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="attnscope-compute")
        self.max_pending = max_pending
        self._pending = 0
        self._lock = threading.Lock()

    async def run(self, fn: Callable, *args, shed: bool = True):
        """fn(*args) on a pool thread. shed=False: never refused (a later step of work already admitted,
        such as a generation's next token), but counted among what waits."""
        with self._lock:
            if shed and self._pending >= self.max_pending:
                raise Overloaded()
            self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, _no_stop_iteration, fn, *args)
        finally:
            with self._lock:
                self._pending -= 1

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
