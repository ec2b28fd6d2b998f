"""Where the engine's limit is: numpy's BLAS against torch's on the forward's own matmul shapes.

A forward at a few dozen tokens spends most of its CPU time (~88% measured at 32 tokens) in these
products, one per layer with each layer's own weights (so each is read as a forward reads it, not
from a warm cache): the fused QKV, the attention output, the gated MLP's in and out. Each shape is
timed in turns, numpy's x @ W against torch's F.linear with the [out, in] weight transformers holds,
a pause before each side (bench/engine.py's interleaved_ms), with one thread and with every core.

    .venv/bin/python bench/blas.py [--tokens 8,32,128,512] [--model smollm2-135m-instruct]

Prints GFLOP/s and the ratio numpy time / torch time per shape: if the products alone are slower
than torch's, no work around them can put the whole forward far below torch. Not a timed test.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.engine import Registry  # noqa: E402
from bench.engine import blas_environment, interleaved_ms  # noqa: E402  (in turns, a pause before each side, medians in ms)

def shapes(cfg):
    """(name, in, out) of one layer's products."""
    H, KV, dh = cfg.n_heads, cfg.n_kv_heads, cfg.d_head
    gated = 2 if cfg.architecture == "llama" else 1
    return [("W_QKV", cfg.d_model, (H + 2 * KV) * dh), ("W_O", H * dh, cfg.d_model),
            ("W_in", cfg.d_model, gated * cfg.d_mlp), ("W_out", cfg.d_mlp, cfg.d_model)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", default="8,32,128,512")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    cfg = Registry.from_env(extra="").get(args.model).cfg
    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    cores = os.cpu_count()
    print(f"numpy {np.__version__} BLAS {blas}; torch {torch.__version__} ({torch.backends.mkl.is_available() and 'MKL' or 'no MKL'}); cores {cores}")
    print(blas_environment())
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (benchmark only on an idle machine: < 0.3)")
    rng = np.random.default_rng(0)
    print(f"\n{'threads':>7} {'tokens':>6} {'product':8} {'shape':>16} {'numpy GF/s':>11} {'torch GF/s':>11} {'ratio':>6}")
    for threads in sorted({1, cores}):
        torch.set_num_threads(threads)
        with threadpool_limits(threads, "blas"):
            for n in [int(t) for t in args.tokens.split(",")]:
                for name, d_in, d_out in shapes(cfg):
                    Ws = [rng.standard_normal((d_in, d_out), dtype=np.float32) for _ in range(cfg.n_layers)]
                    Wt = [torch.from_numpy(np.ascontiguousarray(W.T)) for W in Ws]  # nn.Linear's weight: [out, in]
                    x = rng.standard_normal((n, d_in), dtype=np.float32)
                    xt = torch.from_numpy(x)

                    def ours():
                        for W in Ws:
                            x @ W

                    def ref():
                        with torch.no_grad():
                            for W in Wt:
                                torch.nn.functional.linear(xt, W)

                    t = interleaved_ms({"np": ours, "torch": ref}, args.repeats)
                    gflop = 2 * n * d_in * d_out * cfg.n_layers / 1e9
                    print(f"{threads:7d} {n:6d} {name:8} {f'{n}x{d_in}x{d_out}':>16} {1000 * gflop / t['np']:11.1f} "
                          f"{1000 * gflop / t['torch']:11.1f} {t['np'] / t['torch']:6.2f}", flush=True)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
