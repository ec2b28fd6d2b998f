"""HTTP benchmark: a real `uvicorn app.main:app` (subprocess, loopback) against the bare engine
forward measured in this process, side by side in one run. Prints:

  1. latency of POST /api/attention on texts the server has never seen (a counter word makes each
     one distinct), per encoding, over the engine forward for the same texts: patterns only
     (`model.run(text, names=<every hook_pattern>, logits=None)`) and every capture the server
     keeps (`app.analysis.full_run`, what the server really runs); medians;
  2. response bytes on the wire per encoding, with and without gzip;
  3. requests/s with 1, 4 and 16 concurrent clients, distinct texts (uncached) and one text
     (cached), with how many answers were 503 (load shed);
  4. latency of a cached request repeated (p50/p95).

    .venv/bin/python bench/api.py [--workers 1] [--runs 15] [--sizes 8,32,128] [--duration 5]

The server reads its settings from the environment (ATTNSCOPE_CACHE_DIR etc., see README);
ATTNSCOPE_MODELS is cleared so that only the shipped models are served. Not a timed test: read
the ratios; the client shares the machine's cores with the server.
"""

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from app.analysis import full_run  # noqa: E402
from tests.live_server import Server as LiveServer  # noqa: E402
from app.engine import Registry  # noqa: E402

ENCODINGS = ("json", "uint8", "float16")
WORDS = ("Every token starts as a context-free embedding. A head forms queries, keys and values; the scores go "
         "through a softmax, and the weighted sum of values is added back, so that a word such as mole or tower "
         "comes to mean what its context says. The fluffy blue creature roamed the verdant forest while the river "
         "bank flooded and the money bank stayed dry.").split() * 20


# --- the server: tests/live_server.py's, shared with the tests and the other benchmarks --------------

def Server(workers: int = 1, env: dict[str, str] | None = None) -> LiveServer:  # noqa: N802 (reads as the class)
    return LiveServer(workers=workers, env_extra={"ATTNSCOPE_PRELOAD": "default", "ATTNSCOPE_MODELS": "", **(env or {})})


# --- texts --------------------------------------------------------------------------------------------

def make_text(model, n_tokens: int, tag: str) -> str:
    """A text of exactly n_tokens tokens (as the model counts them), starting with a distinct tag."""
    for variant in range(50):
        head = f"{tag}{'!' * variant}:"
        for k in range(len(WORDS) + 1):
            text = " ".join([head, *WORDS[:k]])
            n = len(model.tokenizer.encode(text))
            if n == n_tokens:
                return text
            if n > n_tokens:
                break  # overshot by a multi-token word: change the tag and try again
    raise ValueError(f"cannot make a text of {n_tokens} tokens")


class Texts:
    """Distinct texts of a given length, never repeated within the run (so never cached)."""

    def __init__(self, model):
        self.model, self.counter = model, itertools.count()

    def __call__(self, n_tokens: int) -> str:
        return make_text(self.model, n_tokens, f"Sample {next(self.counter)}")


# --- measurements -------------------------------------------------------------------------------------

def post_raw(client: httpx.Client, body: dict, gz: bool = True) -> bytes:
    """POST /api/attention and read the body as sent (no decompression, no JSON parsing)."""
    headers = {"Accept-Encoding": "gzip" if gz else "identity"}
    with client.stream("POST", "/api/attention", json=body, headers=headers) as r:
        raw = b"".join(r.iter_raw())
    if r.status_code != 200:
        raise RuntimeError(f"{r.status_code}: {raw[:300]!r}")
    return raw


# OpenBLAS worker threads spin for a while after each call before they sleep: a forward timed
# right after the server's (or the server's right after ours) would share the cores with them.
SETTLE_S = 0.3


def timed(fn, *args) -> float:
    time.sleep(SETTLE_S)
    s = time.perf_counter()
    fn(*args)
    return time.perf_counter() - s


def torch_forward(model, threads: int):
    """transformers' bare forward (eager, float32, no attentions asked, as many threads as ours) on a text's
    ids, for the issue's target: /api/attention as the explorer asks it, end to end, against this."""
    import torch
    from engine import load_hf

    torch.set_num_threads(threads)
    hf = load_hf(model)

    def run(text):
        with torch.no_grad():
            hf(torch.tensor([[t.id for t in model.tokenize(text)]]))
    return run


def latency(client, model, texts: Texts, sizes, runs: int, threads: int) -> list[tuple]:
    """Per size, median ms of: HTTP per encoding (gzip accepted), the explorer's one-layer request, forward
    (patterns only), full run, torch's bare forward. Interleaved run by run, so drift during the run hits
    every column alike, with a pause before each (SETTLE_S) so no side shares the cores with the other's
    spinning BLAS threads."""
    names = {f"blocks.{L}.attn.hook_pattern" for L in range(model.cfg.n_layers)}
    ref = torch_forward(model, threads)
    rows = []
    for n in sizes:
        t = {k: [] for k in (*ENCODINGS, "explorer", "forward", "full_run", "torch")}
        for i in range(runs + 1):  # the first round warms up, and is dropped
            for enc in ENCODINGS:
                t[enc].append(timed(post_raw, client, {"text": texts(n), "encoding": enc}))
            # what the explorer's arrows and heatmap ask for a new text: one layer, JSON (static/js/explorer/data.js)
            t["explorer"].append(timed(post_raw, client, {"text": texts(n), "layers": [model.cfg.n_layers // 2]}))
            t["forward"].append(timed(lambda text: model.run(text, names=names, logits=None), texts(n)))
            t["full_run"].append(timed(full_run, model, texts(n)))
            timed(ref, texts(n))  # untimed: torch's timed run follows its own, not ours (bench/engine.py's interleaved_ms)
            t["torch"].append(timed(ref, texts(n)))
        rows.append((n, {k: 1000 * statistics.median(v[1:]) for k, v in t.items()}))
    return rows


def sizes_on_the_wire(client, texts: Texts, sizes) -> list[tuple]:
    rows = []
    for n in sizes:
        text = texts(n)
        for enc in ENCODINGS:
            rows.append((n, enc, len(post_raw(client, {"text": text, "encoding": enc}, gz=False)),
                         len(post_raw(client, {"text": text, "encoding": enc}, gz=True))))
    return rows


async def throughput(url: str, texts: Texts, n_tokens: int, clients: int, cached: bool, duration: float,
                     encoding: str) -> dict:
    """`clients` coroutines each send requests back to back for `duration` s; counts by status."""
    counts: dict[int, int] = {}
    lat: list[float] = []
    same = texts(n_tokens)
    pool = [texts(n_tokens) for _ in range(0 if cached else 400)]  # made before the clock starts
    pool_it = iter(pool)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits,
                                 headers={"Accept-Encoding": "gzip"}) as client:
        if cached:
            await client.post("/api/attention", json={"text": same, "encoding": encoding})
        stop = time.perf_counter() + duration

        async def one():
            while time.perf_counter() < stop:
                text = same if cached else next(pool_it, None) or texts(n_tokens)
                s = time.perf_counter()
                async with client.stream("POST", "/api/attention", json={"text": text, "encoding": encoding}) as r:
                    async for _ in r.aiter_raw():
                        pass
                lat.append(time.perf_counter() - s)
                counts[r.status_code] = counts.get(r.status_code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    ok = counts.get(200, 0)
    return {"ok_per_s": ok / elapsed, "n": sum(counts.values()), "n_503": counts.get(503, 0),
            "other": {k: v for k, v in counts.items() if k not in (200, 503)},
            "p50_ms": 1000 * float(np.percentile(lat, 50)), "p95_ms": 1000 * float(np.percentile(lat, 95)),
            "max_ms": 1000 * max(lat)}


def cached_latency(client, texts: Texts, n_tokens: int, encoding: str, repeats: int) -> tuple[float, float]:
    body = {"text": texts(n_tokens), "encoding": encoding}
    post_raw(client, body)
    lat = []
    for _ in range(repeats):
        s = time.perf_counter()
        post_raw(client, body)
        lat.append(time.perf_counter() - s)
    return 1000 * float(np.percentile(lat, 50)), 1000 * float(np.percentile(lat, 95))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--runs", type=int, default=15, help="uncached requests per size and encoding (medians)")
    ap.add_argument("--sizes", default="8,32,128")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per throughput measurement")
    ap.add_argument("--tokens", type=int, default=32, help="text length for the throughput and cached runs")
    ap.add_argument("--encoding", default="uint8", choices=ENCODINGS, help="encoding for the throughput and cached runs")
    ap.add_argument("--blas-threads", type=int, default=0,
                    help="BLAS threads per server worker (ATTNSCOPE_BLAS_THREADS) and for the forward timed here; "
                         "0: the app's default, cores // workers")
    ap.add_argument("--sections", default="1,2,3,4", help="which measurements to make (numbers above)")
    args = ap.parse_args()
    sections = {int(x) for x in args.sections.split(",")}
    sizes = [int(s) for s in args.sizes.split(",")]

    from threadpoolctl import threadpool_info, threadpool_limits

    # the forward timed here gets as many BLAS threads as one server worker has (like for like)
    threads = args.blas_threads or max(1, (os.cpu_count() or 1) // args.workers)
    threadpool_limits(threads, user_api="blas")
    blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    model = Registry.from_env(extra="").get()
    texts = Texts(model)
    print(f"model {model.id}; numpy {np.__version__} BLAS {blas}; cores {os.cpu_count()}; "
          f"uvicorn workers {args.workers}, BLAS threads per worker {threads}; client and server on one machine")
    from engine import blas_environment  # bench/engine.py (bench/ is on the path)

    print(blas_environment())

    env = {"ATTNSCOPE_BLAS_THREADS": str(args.blas_threads)} if args.blas_threads else None
    with Server(args.workers, env) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        if 1 in sections:
            print_latency(client, model, texts, sizes, args.runs, threads)
        if 2 in sections:
            print_sizes(client, texts, sizes)
        if 3 in sections:
            print_throughput(server, texts, args)
        if 4 in sections:
            print_cached(client, texts, args)


def print_latency(client, model, texts, sizes, runs, threads):
    print(f"\n1. POST /api/attention, uncached (a new text each time), gzip accepted: median ms of {runs}")
    print(f"{'tokens':>6} {'json':>8} {'uint8':>8} {'float16':>8} {'forward':>8} {'full_run':>8}"
          f"   {'json/fwd':>8} {'u8/fwd':>7} {'f16/fwd':>7}   {'json/full':>9} {'u8/full':>7} {'f16/full':>8}")
    rows = latency(client, model, texts, sizes, runs, threads)
    for n, m in rows:
        f, fr = m["forward"], m["full_run"]
        print(f"{n:6d} {m['json']:8.1f} {m['uint8']:8.1f} {m['float16']:8.1f} {f:8.1f} {fr:8.1f}"
              f"   {m['json'] / f:8.2f} {m['uint8'] / f:7.2f} {m['float16'] / f:7.2f}"
              f"   {m['json'] / fr:9.2f} {m['uint8'] / fr:7.2f} {m['float16'] / fr:8.2f}", flush=True)
    print("   forward = model.run(text, names=<every hook_pattern>, logits=None) in this process;"
          " full_run = every capture the server keeps (app.analysis.full_run); all layers asked")
    print(f"\n1b. the explorer's request (one layer, JSON), end to end, over torch's bare forward (eager, float32)")
    print(f"{'tokens':>6} {'explorer':>9} {'torch':>8} {'ratio':>6}")
    for n, m in rows:
        print(f"{n:6d} {m['explorer']:9.1f} {m['torch']:8.1f} {m['explorer'] / m['torch']:6.2f}", flush=True)


def print_sizes(client, texts, sizes):
    print("\n2. response bytes on the wire (all layers)")
    print(f"{'tokens':>6} {'encoding':>8} {'identity':>11} {'gzip':>10} {'gzip/identity':>14}")
    for n, enc, plain, gz in sizes_on_the_wire(client, texts, sizes):
        print(f"{n:6d} {enc:>8} {plain:11,d} {gz:10,d} {gz / plain:14.3f}", flush=True)


def print_throughput(server, texts, args):
    print(f"\n3. throughput: {args.tokens}-token texts, encoding {args.encoding}, gzip, {args.duration:g} s each")
    print(f"{'clients':>7} {'texts':>9} {'ok req/s':>9} {'requests':>8} {'503s':>5} {'p50 ms':>8} {'p95 ms':>8}"
          f" {'max ms':>8}  other")
    for cached in (False, True):
        for c in (1, 4, 16):
            r = asyncio.run(throughput(server.url, texts, args.tokens, c, cached, args.duration, args.encoding))
            print(f"{c:7d} {'same' if cached else 'distinct':>9} {r['ok_per_s']:9.1f} {r['n']:8d} {r['n_503']:5d}"
                  f" {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['max_ms']:8.1f}  {r['other'] or ''}", flush=True)


def print_cached(client, texts, args):
    print(f"\n4. cached request repeated ({args.tokens} tokens, one client, 200 times)")
    print(f"{'encoding':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for enc in ENCODINGS:
        p50, p95 = cached_latency(client, texts, args.tokens, enc, 200)
        print(f"{enc:>8} {p50:8.2f} {p95:8.2f}", flush=True)


if __name__ == "__main__":
    main()
