"""Generation benchmark: our KV-cached numpy generate() against transformers' generate() with its KV
cache, side by side in one run: greedy, the same prompt ids, the same number of new tokens, the
same thread count for numpy's BLAS and torch. Prints tokens per second after the first token, time
to the first token (the prefill plus one choice) and the ratios; checks both wrote the same tokens.
A third side is the same generation over HTTP: POST /api/generate with "stream": true to a real
`uvicorn app.main:app` (tests/live_server.py, the same thread count), timed from the request to each
line: what the explorer's reader waits for.

    .venv/bin/python bench/generate.py [--new 64] [--threads N] [--repeats 3] [--attn sdpa,eager] [--no-http]

Not a timed test: read the ratios, on an idle machine (`uptime` is printed before and after).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.engine import Registry  # noqa: E402
from app.engine.generate import generate  # noqa: E402

PROMPT = ("The fluffy blue creature roamed the verdant forest. Every evening it climbed the tallest tree "
          "and watched the river below, wondering where the water went after")
PAUSE_S = 1.0  # OpenBLAS and torch threads spin for a while after a call: let them sleep between sides


def load():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def ours_once(model, ids, n, attention):
    t0 = time.perf_counter()
    out, first = [], None
    for t in generate(model, ids, n, stop_ids=(), attention=attention):
        out.append(t.id)
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return out, first - t0, end - first


def http_once(url, model_id, n):
    import json

    import httpx

    body = {"text": PROMPT, "model": model_id, "max_new_tokens": n, "stream": True}
    out, first, t0 = [], None, time.perf_counter()
    with httpx.stream("POST", url + "/api/generate", json=body, timeout=300) as r:
        for line in r.iter_lines():
            d = json.loads(line)
            if d["type"] == "token":
                out.append(d["id"])
                if first is None:
                    first = time.perf_counter()
            elif d["type"] == "error":
                raise RuntimeError(d["detail"])
    end = time.perf_counter()
    return out, first - t0, end - first


def hf_once(hf, ids, n):
    import torch
    from transformers.generation.streamers import BaseStreamer

    class Clock(BaseStreamer):  # put() gets the prompt first, then each new token as it is chosen
        def __init__(self):
            self.times = []

        def put(self, value):
            self.times.append(time.perf_counter())

        def end(self):
            pass

    clock = Clock()
    t0 = time.perf_counter()
    with torch.no_grad():
        out = hf.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                          max_new_tokens=n, do_sample=False, pad_token_id=0, streamer=clock)
    end = time.perf_counter()
    first = clock.times[1]
    return out[0, len(ids):].tolist(), first - t0, end - first


def load_hf(model, attn):
    import torch
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(model.source.parent, gguf_file=model.source.name,
                                              dtype=torch.float32, attn_implementation=attn).eval()
    hf.generation_config.eos_token_id = None  # both sides write exactly n tokens
    return hf


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="BLAS and torch threads (0: the server's default, cores / workers)")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--attn", default="sdpa,eager", help="transformers' attention implementations to compare against")
    ap.add_argument("--no-http", action="store_true", help="leave out the side over HTTP (a server subprocess)")
    args = ap.parse_args()

    import torch

    from app.settings import Settings

    threads = args.threads or Settings().blas_threads or os.cpu_count()
    torch.set_num_threads(threads)
    print(f"before: {load()}")
    model = Registry.from_env(extra="").get(args.model)
    ids = [t.id for t in model.tokenize(PROMPT)]
    print(f"{model.id}: prompt {len(ids)} tokens, {args.new} new, greedy; {threads} threads (numpy BLAS and torch); "
          f"numpy {np.__version__}, torch {torch.__version__}")
    hfs = {a: load_hf(model, a) for a in args.attn.split(",") if a}
    rows = {}
    server = None
    if not args.no_http:
        from tests.live_server import Server

        server = Server(env_extra={"ATTNSCOPE_BLAS_THREADS": str(threads), "ATTNSCOPE_MODELS": "", "WORKERS": "1"})
        server.wait_ready(300)
    try:
        _sides(args, model, ids, threads, hfs, server, rows)
    finally:
        if server is not None:
            server.close()
    print(f"\nafter: {load()}")


def _sides(args, model, ids, threads, hfs, server, rows):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads, user_api="blas"):
        sides = {"ours (with attention rows)": lambda: ours_once(model, ids, args.new, True),
                 "ours (no attention capture)": lambda: ours_once(model, ids, args.new, False)}
        if server is not None:
            sides["ours (over HTTP, streamed)"] = lambda: http_once(server.url, model.id, args.new)
        sides |= {f"transformers ({a})": (lambda hf=hf: hf_once(hf, ids, args.new)) for a, hf in hfs.items()}
        for fn in sides.values():  # warm-up: page in the weights, let each side allocate its buffers
            fn()
            time.sleep(PAUSE_S)
        results = {name: [] for name in sides}
        names = list(sides)
        for r in range(args.repeats):  # interleaved, each repeat in a rotated order, so drift hits every side alike
            for name in names[r % len(names):] + names[: r % len(names)]:
                results[name].append(sides[name]())
                time.sleep(PAUSE_S)
    reference = next(iter(results.values()))[0][0]
    for name, rs in results.items():
        same = all(r[0] == reference for r in rs)
        ttft = statistics.median(r[1] for r in rs)
        rate = statistics.median((len(r[0]) - 1) / r[2] for r in rs)
        rows[name] = (ttft, rate, same)
    print(f"\n{'side':30} {'first token ms':>15} {'tokens/s':>9}  same tokens")
    for name, (ttft, rate, same) in rows.items():
        print(f"{name:30} {1000 * ttft:15.1f} {rate:9.1f}  {'yes' if same else 'NO'}")
    print(f"\n{'ours / transformers':30} {'first-token speed-up':>21} {'tokens/s ratio':>15}")
    for ours_name in [n for n in rows if n.startswith("ours")]:
        for ref_name in [n for n in rows if n.startswith("transformers")]:
            (t_o, r_o, _), (t_r, r_r, _) = rows[ours_name], rows[ref_name]
            print(f"{ours_name.split(' (')[1][:-1] + ' vs ' + ref_name.split(' (')[1][:-1]:30} {t_r / t_o:21.2f} {r_o / r_r:15.2f}")


if __name__ == "__main__":
    main()
