"""Running models for HTTP requests: a bounded compute pool that sheds load instead of queueing
forever, and LRU caches (bounded by bytes) of runs and of encoded responses, so that one text is
run once for every endpoint, and identical requests in flight share one computation."""

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class Overloaded(Exception):
    """More work is waiting than the server will queue: the client should retry later."""

    def __init__(self, retry_after: int = 1):
        self.retry_after = retry_after
        super().__init__("the server is busy: too many requests are waiting; retry in a moment")


class ByteLRU:
    """A thread-safe LRU cache bounded by the total size of its values (size_of(value) bytes),
    where concurrent misses on one key wait for a single computation."""

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
        size = self.size_of(value)
        with self._lock:
            if key in self._items:
                self.bytes -= self._items.pop(key)[1]
            if size > self.max_bytes:
                return  # too large to keep: computed, served, not cached
            self._items[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
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


class ComputePool:
    """CPU-bound work off the event loop, on a few threads, with a bound on what may wait.

    numpy's BLAS already uses every core for one forward pass, so more threads than cores only
    adds contention; past max_pending waiting jobs, new work is refused (503 + Retry-After)."""

    def __init__(self, threads: int = 1, max_pending: int = 16):
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="attnscope-compute")
        self.max_pending = max_pending
        self._pending = 0
        self._lock = threading.Lock()

    async def run(self, fn: Callable, *args):
        with self._lock:
            if self._pending >= self.max_pending:
                raise Overloaded()
            self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        finally:
            with self._lock:
                self._pending -= 1

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
