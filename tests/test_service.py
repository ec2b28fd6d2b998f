"""The caches count every byte they hold: ByteLRU's accounting on small budgets, a run's and a
body's bytes against what they really keep alive, and growth after insertion (logits, gzip)."""

import gc
import sys
import tracemalloc
import weakref

import numpy as np
import pytest

from app.analysis import full_run, retained_nbytes, tokens_nbytes
from app.runs import Body, Runner
from app.service import ByteLRU, key_nbytes
from app.settings import Settings


class Grows:
    """A cache value that can grow after insertion, as CachedRun (logits) and Body (gzip) do."""

    def __init__(self, n: int):
        self.arrays, self.on_grow = [np.zeros(n, np.uint8)], None

    @property
    def nbytes(self) -> int:
        return retained_nbytes(self.arrays)

    def grow(self, n: int):
        self.arrays.append(np.zeros(n, np.uint8))
        if self.on_grow is not None:
            self.on_grow()


def counted(cache: ByteLRU) -> int:
    """What the cache's entries hold right now, measured afresh (not the cache's running total)."""
    return sum(cache.size_of(v) + key_nbytes(k) for k, (v, _) in cache._items.items())


def lru(max_bytes: int) -> ByteLRU:
    return ByteLRU(max_bytes, lambda v: v.nbytes)


def test_counted_bytes_are_the_values_and_their_keys():
    c = lru(10_000)
    c.put(1, np.zeros(1000, np.uint8))
    c.put(("m", "a text"), np.zeros(2000, np.uint8))
    assert c.bytes == 3000 + sys.getsizeof("m") + sys.getsizeof("a text") == counted(c)


def test_least_recently_used_goes_first_and_the_total_stays_under_the_budget():
    c = lru(3000)
    for k in "abc":
        c.put(k, np.zeros(1000 - key_nbytes(k), np.uint8))
    assert c.get("a") is not None  # a is now the most recent
    c.put("d", np.zeros(500, np.uint8))
    assert c.get("b") is None and c.get("a") is not None and c.get("c") is not None
    assert c.bytes == counted(c) <= 3000


def test_a_value_larger_than_the_budget_is_returned_but_not_cached():
    c = lru(1000)
    c.put("small", np.zeros(100, np.uint8))
    big = c.get_or_compute("big", lambda: np.zeros(5000, np.uint8))
    assert big.nbytes == 5000 and c.get("big") is None
    assert c.get("small") is not None and c.bytes == counted(c)
    c.get_or_compute("big", lambda: np.zeros(5000, np.uint8))
    assert c.stats()["misses"] == 2  # computed again each time, never kept


def test_a_value_that_grows_is_counted_again_and_others_make_room():
    c = lru(10_000)
    c.put("old", Grows(3000))
    g = Grows(3000)
    c.put("new", g)
    g.grow(3000)
    assert c.bytes == counted(c) == 9000 + key_nbytes("old") + key_nbytes("new")
    g.grow(2000)  # 11 kB: the least recently used entry goes, the one that grew stays
    assert c.get("old") is None and c.get("new") is g and c.bytes == counted(c)


def test_a_value_that_outgrows_the_budget_leaves_the_cache():
    c = lru(10_000)
    g = Grows(6000)
    c.put("g", g)
    g.grow(6000)
    assert c.get("g") is None and c.bytes == 0
    g.grow(10)  # no longer cached: its growth changes nothing
    assert c.bytes == 0


def test_an_evicted_value_is_freed_at_once():
    """on_grow must not make a reference cycle: an evicted 600 MB run would wait for the cyclic GC."""
    c = lru(5000)
    g = Grows(4000)
    ref = weakref.ref(g)
    c.put("g", g)
    del g
    gc.disable()
    try:
        c.put("other", np.zeros(4000, np.uint8))
        assert ref() is None
    finally:
        gc.enable()


def test_retained_bytes_count_a_shared_base_once_and_in_full():
    base = np.zeros((10, 100), np.float32)
    assert retained_nbytes([base[:, :10], base[2:5].reshape(-1), base]) == base.nbytes
    assert retained_nbytes([base, base]) == base.nbytes
    mapped = np.frombuffer(bytearray(4000), np.float32)  # not numpy's memory: the weights' pages
    assert retained_nbytes([mapped[:10]]) == 0


def test_a_runs_counted_bytes_are_what_it_keeps_alive(smol):
    text = "every byte a cache holds is counted, and counted once"
    full_run(smol, text)  # warm: first-call allocations (tables, caches) are not the run's
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cr = full_run(smol, text)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        assert cr.nbytes == retained_nbytes(cr.run.cache.values()) + tokens_nbytes(cr.run.tokens)
        # numpy reports its buffers to tracemalloc: what the run holds, counted independently
        assert abs(held - cr.nbytes) <= 0.02 * cr.nbytes, (held, cr.nbytes)
        # the resid_pre of layer L+1 is the resid_post of layer L: one buffer, counted once
        assert cr.run["blocks.1.hook_resid_pre"] is cr.run["blocks.0.hook_resid_post"]
        assert cr.nbytes < sum(a.nbytes for a in cr.run.cache.values())
        before = tracemalloc.get_traced_memory()[0]
        n0 = cr.nbytes
        logits = cr.logits()
        gc.collect()
        assert cr.nbytes - n0 == logits.nbytes
        assert abs(tracemalloc.get_traced_memory()[0] - before - logits.nbytes) <= 0.02 * logits.nbytes
    finally:
        tracemalloc.stop()


def test_the_api_counts_logits_computed_after_the_run_was_cached(smol, registry):
    api = Runner(registry, Settings(preload="none", run_cache_mb=64))
    cr = api.run(smol, "the logits come later")
    before = api.runs.bytes
    cr.logits()
    assert api.runs.bytes - before == cr.logits().nbytes
    assert api.runs.bytes == counted(api.runs)
    api.pool.shutdown()


def test_the_api_does_not_cache_a_run_larger_than_its_budget(smol, registry):
    api = Runner(registry, Settings(preload="none", run_cache_mb=1))
    text = "a run of this text holds more than one megabyte of captured tensors"
    cr = api.run(smol, text)
    assert cr.nbytes > 1 << 20
    assert api.runs.get((smol.id, text)) is None and api.runs.bytes == 0
    api.run(smol, text)
    assert api.runs.stats()["misses"] == 2
    api.pool.shutdown()


def test_a_bodys_gzip_form_is_counted_when_it_is_made():
    c = ByteLRU(1 << 20, lambda b: b.nbytes)
    body = Body(b"x" * 50_000)
    c.put("k", body)
    assert c.bytes == sys.getsizeof(body.raw) + key_nbytes("k")
    body.gz()
    assert c.bytes == sys.getsizeof(body.raw) + sys.getsizeof(body.gz()) + key_nbytes("k") == counted(c)


@pytest.mark.parametrize("gz", [False, True])
def test_the_response_cache_counts_what_it_holds(client, gz):
    api = client.app.state.runner
    headers = {"Accept-Encoding": "gzip" if gz else "identity"}
    client.post("/api/attention", json={"text": f"counted bodies {gz}", "encoding": "uint8"}, headers=headers)
    client.post("/api/attention", json={"text": "counted bodies, gzip asked second", "encoding": "uint8"})
    client.post("/api/attention", json={"text": "counted bodies, gzip asked second", "encoding": "uint8"},
                headers={"Accept-Encoding": "gzip"})
    assert api.bodies.bytes == counted(api.bodies)
    assert api.runs.bytes == counted(api.runs)



def test_top_k_in_chunks_is_the_same_as_at_once(smol):
    """top_k works 64 rows at a time to bound its copies (16 bytes a logit): the answer must not change."""
    from app.analysis import top_k

    logits = full_run(smol, "chunks of rows, one answer " * 8).logits()
    assert top_k(smol, logits, 7, 0.7, chunk=5) == top_k(smol, logits, 7, 0.7, chunk=len(logits))
