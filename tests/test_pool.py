"""The heads grid's thumbnails of a long text: /api/attention with `pool` max-pools each pattern into at
most pool x pool blocks (app/payloads.py max_pool), so the bytes stop growing with the square of the
length and a sharp weight is never skipped, as sampling every k-th row would."""

import base64
import gzip
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.payloads import GRID_POOL, max_pool

LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 20)  # ~180 tokens


def post(client, **body):
    r = client.post("/api/attention", json=body)
    assert r.status_code == 200, r.text
    return r


def unpack(a) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(a["data"]), dtype=np.uint8).astype(np.float64) * a["scale"]
    H, m = a["shape"][0], a["shape"][1]
    out = np.zeros((H, m, m))
    rows, cols = np.tril_indices(m)
    out[:, rows, cols] = raw.reshape(H, -1)
    return out


def test_max_pool_is_the_block_maximum():
    rng = np.random.default_rng(0)
    p = rng.random((3, 100, 100)).astype(np.float32)
    pooled, edges = max_pool(p, 16)
    assert pooled.shape == (3, 16, 16) and edges[0] == 0 and edges[-1] == 100
    for a in range(16):
        for b in range(16):
            block = p[:, edges[a]:edges[a + 1], edges[b]:edges[b + 1]]
            assert np.array_equal(pooled[:, a, b], block.max(axis=(1, 2)))
    same, edges = max_pool(p[:, :10, :10], 16)
    assert same.shape == (3, 10, 10) and edges == list(range(11))


@pytest.mark.parametrize("measure", ["weight", "moved"])
def test_pooled_grid_equals_the_full_patterns_pooled(client, measure):
    full = post(client, text=LONG, encoding="json", measure=measure).json()
    pooled = post(client, text=LONG, encoding="uint8", measure=measure, pool=GRID_POOL).json()
    n = len(full["tokens"])
    assert n > GRID_POOL and pooled["tokens"] == full["tokens"]
    edges = pooled["pool"]["edges"]
    assert len(edges) == GRID_POOL + 1 and edges[-1] == n
    for L in ("0", "7", "29"):
        P = np.asarray(full["attention"][L], dtype=np.float64)  # 4 decimals as sent
        want = np.stack([[[P[h, edges[a]:edges[a + 1], edges[b]:edges[b + 1]].max() for b in range(GRID_POOL)]
                          for a in range(GRID_POOL)] for h in range(P.shape[0])])
        got = unpack(pooled["attention"][L])
        scale = pooled["attention"][L]["scale"]
        # uint8 rounds value / peak to 1/255 steps (error <= scale / 2); json rounds to 4 decimals
        assert np.abs(got - want).max() <= scale / 2 + 5e-5 + 1e-9


def test_a_sharp_weight_survives_the_thumbnail(client):
    """Every key a head attends to with weight >= 0.5 shows in its block at >= 0.5 (sampling rows
    0, k, 2k... of the full pattern misses the rows in between)."""
    full = post(client, text=LONG, encoding="json").json()
    pooled = post(client, text=LONG, encoding="uint8", pool=GRID_POOL).json()
    edges = np.asarray(pooled["pool"]["edges"])
    P = np.asarray(full["attention"]["3"])
    got = unpack(pooled["attention"]["3"])
    block = np.searchsorted(edges, np.arange(P.shape[1]), side="right") - 1
    h, i, j = np.nonzero(P >= 0.5)
    assert len(h) > 0
    assert np.all(got[h, block[i], block[j]] >= 0.5 - 1 / 255)


def test_pooled_bytes_stop_growing_with_the_square_of_the_length(client):
    def size(text):
        r = client.post("/api/attention", json={"text": text, "encoding": "uint8", "pool": GRID_POOL},
                        headers={"Accept-Encoding": "identity"})
        return len(gzip.compress(r.content))
    short, long = size(" ".join(["a fox"] * 40)), size(" ".join(["a fox"] * 200))  # ~80 and ~400 tokens
    assert long < 2 * short, (short, long)  # the full patterns would be 25x


def test_short_texts_are_not_pooled(client):
    r = post(client, text="a fluffy blue creature", encoding="uint8", pool=GRID_POOL).json()
    assert "pool" not in r and r["attention"]["0"]["shape"][1] == len(r["tokens"])


def test_head_parts_leave_out_what_a_view_does_not_show(client):
    full = client.post("/api/head", json={"text": LONG, "layer": 2, "head": 3}).json()
    for parts in (["scores"], ["pattern"], ["qkv", "z"]):
        some = client.post("/api/head", json={"text": LONG, "layer": 2, "head": 3, "parts": parts}).json()
        keys = {"q", "k", "v"} if "qkv" in parts else set()
        keys |= set(parts) - {"qkv"}
        assert {k for k in ("q", "k", "v", "scores", "pattern", "z") if k in some} == keys
        assert all(some[k] == full[k] for k in keys) and some["tokens"] == full["tokens"]
    r = client.post("/api/head", json={"text": "x", "layer": 0, "head": 0, "parts": ["nope"]})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"


def test_pooling_no_layers_answers(client):
    """Found by the fuzz test: pool with layers [] called next() on an empty dict inside a compute-pool job;
    asyncio cannot hand a StopIteration to the awaiting request, so it waited for ever. Now it answers."""
    r = post(client, text=LONG, layers=[], pool=GRID_POOL, encoding="uint8").json()
    assert r["attention"] == {}


def test_a_stop_iteration_in_a_pool_job_is_an_error_not_a_hang():
    import asyncio
    from app.service import ComputePool

    def stops():
        return next(iter(()))

    async def main():
        pool = ComputePool(threads=1, max_pending=2)
        try:
            await asyncio.wait_for(pool.run(stops), timeout=60)
        finally:
            pool.shutdown()

    # a loop of its own, on a thread of its own: a browser test's loop may be running on this one
    with ThreadPoolExecutor(1) as t:
        with pytest.raises(RuntimeError, match="StopIteration"):
            t.submit(asyncio.run, main()).result()
