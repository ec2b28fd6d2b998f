"""Lesson endpoints against one bare forward of the same text, side by side in one run:
POST /api/compare with 4 sentences, POST /api/lens and POST /api/heads at 32 tokens,
/api/predictions with heads switched off, and what moved: /api/attention measure=moved (all
layers, uint8, as the grid asks), /api/rollout, /api/attribution and /api/flow (also at 128 and 512 tokens,
with its response size). In-process (FastAPI's TestClient), caches off, a new text for every repetition, medians.

    .venv/bin/python bench/lessons.py [--runs 9]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fastapi.testclient import TestClient  # noqa: E402

from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402

BASE32 = "The quick brown fox jumps over the lazy dog while the cat sleeps by the warm fire and dreams of fish, mice and birds in the summer days ahead."
MOLE = ["American shrew mole", "one mole of carbon dioxide", "take a biopsy of the mole", "a mole on the skin"]


def median_ms(fn, runs):
    times = []
    for r in range(runs + 1):
        t = time.perf_counter()
        fn(r)
        if r:  # the first is a warm-up
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    app = create_app(Settings(preload="default", run_cache_mb=0, response_cache_mb=0, allowed_hosts="testserver"))  # TestClient's Host
    with TestClient(app) as c:
        model = app.state.registry.get()
        names = {f"blocks.{L}.attn.hook_pattern" for L in range(model.cfg.n_layers)}
        text = lambda r: f"{BASE32} {r}"  # noqa: E731  (a new text, so nothing is cached)
        print(f"model {model.id}; {len(model.tokenize(text(0)))} tokens; medians of {args.runs}, caches off\n")

        def post(path, **body):
            r = c.post(path, json=body)
            assert r.status_code == 200, r.text
            return r

        fwd32 = median_ms(lambda r: model.run(text(r), names=names, logits=None), args.runs)
        rows = [
            ("/api/lens, top 5", median_ms(lambda r: post("/api/lens", text=text(r), top_k=5), args.runs), fwd32),
            ("/api/heads (with induction probe)", median_ms(lambda r: post("/api/heads", text=text(r)), args.runs), fwd32),
            ("/api/predictions, 5 heads off", median_ms(lambda r: post("/api/predictions", text=text(r), ablate=[[29, h] for h in range(5)]), args.runs), fwd32),
            ("/api/attention weight, all, uint8", median_ms(lambda r: post("/api/attention", text=text(r), encoding="uint8"), args.runs), fwd32),
            ("/api/attention moved, all, uint8", median_ms(lambda r: post("/api/attention", text=text(r), encoding="uint8", measure="moved"), args.runs), fwd32),
            ("/api/rollout", median_ms(lambda r: post("/api/rollout", text=text(r)), args.runs), fwd32),
            ("/api/attribution (top-1, last)", median_ms(lambda r: post("/api/attribution", text=text(r)), args.runs), fwd32),
            ("/api/flow (defaults)", median_ms(lambda r: post("/api/flow", text=text(r)), args.runs), fwd32),
        ]
        sents = lambda r: [f"{s} {r}" for s in MOLE]  # noqa: E731
        fwd4 = median_ms(lambda r: [model.run(s, names=names, logits=None) for s in sents(r)], args.runs)
        fwd1 = median_ms(lambda r: model.run(sents(r)[0], names=names, logits=None), args.runs)
        comp = median_ms(lambda r: post("/api/compare", sentences=sents(r), word="mole"), args.runs)
        print(f"{'request':38} {'ms':>8} {'bare forward ms':>16} {'ratio':>6}")
        for name, ms, base in rows:
            print(f"{name + ' (32 tokens)':38} {ms:8.1f} {base:16.1f} {ms / base:6.2f}")
        print(f"{'/api/compare, 4 short sentences':38} {comp:8.1f} {fwd1:16.1f} {comp / fwd1:6.2f}   (vs one sentence's forward)")
        print(f"{'':38} {'':8} {fwd4:16.1f} {comp / fwd4:6.2f}   (vs the 4 forwards it needs)")

        # /api/flow's cost grows as n² d_model per layer (every z_ij is a d_model vector). At each length,
        # interleaved pairs (a bare forward, a pause, /api/flow, a pause) on a new text each, so a load
        # that changes during the run moves both sides of a pair alike; the ratio is the pairs' median.
        print(f"\n{'/api/flow at n tokens (pairs)':38} {'ms':>8} {'bare forward ms':>16} {'ratio':>6} {'JSON kB':>8} {'gzip kB':>8}")
        long_text = (BASE32 + " ") * 20
        for n in (34, 128, 512):
            cut = long_text[:model.tokenizer.encode(long_text)[n - 4].end]  # n - 3 tokens; "{r} " adds a few
            at = lambda r: f"{r} {cut}"  # noqa: E731  (a new text each time)
            post("/api/flow", text=at(-1))  # warm-up
            pairs = []
            for r in range(max(3, args.runs // 2)):
                t = time.perf_counter()
                model.run(at(2 * r), names=names, logits=None)
                fwd = time.perf_counter() - t
                time.sleep(0.5)
                t = time.perf_counter()
                post("/api/flow", text=at(2 * r + 1))
                pairs.append((time.perf_counter() - t, fwd))
                time.sleep(0.5)
            ms, fwd = (1000 * statistics.median(p[k] for p in pairs) for k in (0, 1))
            ratio = statistics.median(a / b for a, b in pairs)
            body = post("/api/flow", text=at(99)).content
            gz = c.post("/api/flow", json={"text": at(99)}, headers={"Accept-Encoding": "gzip"})
            print(f"{'/api/flow (' + str(len(model.tokenize(at(0)))) + ' tokens)':38} {ms:8.1f} {fwd:16.1f} {ratio:6.2f} "
                  f"{len(body) / 1e3:8.0f} {int(gz.headers.get('content-length', len(gz.content))) / 1e3:8.0f}")

if __name__ == "__main__":
    main()
