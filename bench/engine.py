"""Engine benchmark: our numpy forward against torch eager (transformers), same model, same ids,
measured side by side in one run. Prints ratios (ours / torch), medians of repeated runs, plus
cold and warm load times and peak memory of a fresh process.

    .venv/bin/python bench/engine.py [--sizes 8,32,128,512] [--models smollm2-135m-instruct,all-minilm-l6-v2]

Not a timed test: the numbers depend on the machine; the ratios are what to read.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.engine import Registry, forward  # noqa: E402

TEXT = " ".join([
    "Every token starts as a context-free embedding. A head forms queries, keys and values;",
    "the scores go through a softmax, and the weighted sum of values is added back, so that",
    "a word such as mole or tower comes to mean what its context says. The fluffy blue creature",
    "roamed the verdant forest while the river bank flooded and the money bank stayed dry.",
] * 40)


def ids_of(model, n):
    """n real token ids from real text (for BERT, framed by [CLS] ... [SEP])."""
    ids = model.tokenizer.tk.encode(TEXT, add_special_tokens=False).ids
    if model.cfg.architecture == "bert":
        cls_, sep = model.tokenizer.tk.token_to_id("[CLS]"), model.tokenizer.tk.token_to_id("[SEP]")
        return [cls_] + ids[: n - 2] + [sep]
    return ids[:n]


# OpenBLAS worker threads spin for a while after each call before they sleep: a side timed right after
# the other would share the cores with them (the issue measured it). So each timing starts after a pause.
SETTLE_S = 0.5


def interleaved_ms(fns: dict, repeats: int) -> dict:
    """Median ms of each fn, timed in turns (one of each per round), so drift over the run hits every side
    alike; a first round warms up and is dropped. Each timed call follows an untimed call of its own side,
    a pause before each: measured here, a forward right after the other library's ran slower, pause or not
    (MiniLM, 8 tokens: ours 15.1 ms after torch's against 4.7 after its own, torch's 20.5 against 19.6;
    SmolLM2, 32 tokens: torch's 166 against 132, ours 60 against 58), and a server runs one of them only."""
    times = {k: [] for k in fns}
    for r in range(repeats + 1):
        for k, fn in fns.items():
            time.sleep(SETTLE_S)
            fn()  # untimed: what this side left in the caches and thread pools, not what the other side did
            time.sleep(SETTLE_S)
            t = time.perf_counter()
            fn()
            if r:
                times[k].append(time.perf_counter() - t)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def blas_environment() -> str:
    """The variables that steer the BLAS libraries' kernels and threads, as this run sees them: one shell set
    OPENBLAS_CORETYPE=Haswell, which on an AVX-512 machine made numpy's products ~1.7x slower than the
    kernels OpenBLAS picks itself (so a result is only read with this line)."""
    prefixes = ("OPENBLAS_", "OMP_", "MKL_", "KMP_", "GOMP_")
    found = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(prefixes)]
    return "environment: " + (" ".join(found) if found else f"no {', '.join(p + '*' for p in prefixes)} variable set")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def load_hf(model):
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    if model.source.is_file():
        hf = AutoModelForCausalLM.from_pretrained(model.source.parent, gguf_file=model.source.name,
                                                  dtype=torch.float32, attn_implementation="eager")
    else:
        cls = AutoModelForCausalLM if model.cfg.causal else AutoModel
        hf = cls.from_pretrained(model.source, dtype=torch.float32, attn_implementation="eager")
    return hf.eval()


def bench_forward(model, sizes):
    import torch

    hf = load_hf(model)
    names = {f"blocks.{L}.attn.hook_pattern" for L in range(model.cfg.n_layers)}
    rows = []
    for n in sizes:
        ids = ids_of(model, n)
        t_ids = torch.tensor([ids])
        repeats = 15 if n <= 32 else 9 if n <= 128 else 5

        def ref():
            with torch.no_grad():
                model_out = hf(t_ids, output_attentions=True)
            return model_out

        def ours_attention():
            return forward(model.cfg, model.weights, ids, names=names, logits=None)

        def ours_full():
            return forward(model.cfg, model.weights, ids, names=None, logits="all")

        t = interleaved_ms({"ref": ref, "att": ours_attention, "full": ours_full}, repeats)
        t_ref, t_att, t_full = t["ref"], t["att"], t["full"]
        rows.append((model.id, n, "attention (patterns only)", t_att, t_ref))
        rows.append((model.id, n, "full (all captures + logits)", t_full, t_ref))
    return rows


LOAD_SCRIPT = """
import json, sys, time
t = time.perf_counter()
from app.engine import load_model
m = load_model(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3])
loaded = time.perf_counter() - t
m.run("a fluffy blue creature roamed the verdant forest")
ran = time.perf_counter() - t
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"load_s": loaded, "load_and_first_run_s": ran, "peak_rss_mb": hwm / 1024}))
"""  # VmHWM, not ru_maxrss: that one keeps the forked parent's peak across exec


def bench_load(model):
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as d:
        out = []
        for kind in ("cold", "warm"):
            p = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(model.source), model.id, d],
                               cwd=root, capture_output=True, text=True, check=True)
            out.append((kind, json.loads(p.stdout.strip().splitlines()[-1])))
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="8,32,128,512")
    ap.add_argument("--models", default="smollm2-135m-instruct,all-minilm-l6-v2")
    ap.add_argument("--no-load", action="store_true", help="skip the cold/warm load measurements")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    import torch
    from threadpoolctl import threadpool_info

    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"numpy {np.__version__} BLAS {blas}; torch {torch.__version__} threads {torch.get_num_threads()}; cores {os.cpu_count()}")
    print(blas_environment())
    print(f"load average at the start: {load_average()} (benchmark only on an idle machine: < 0.3)")
    reg = Registry.from_env(extra="")
    print(f"\n{'model':24} {'tokens':>6}  {'what':30} {'ours ms':>9} {'torch ms':>9} {'ratio':>6}")
    for mid in args.models.split(","):
        model = reg.get(mid)
        for mid_, n, what, ours, ref in bench_forward(model, sizes):
            print(f"{mid_:24} {n:6d}  {what:30} {ours:9.1f} {ref:9.1f} {ours / ref:6.2f}", flush=True)
    print(f"load average at the end: {load_average()}")
    if not args.no_load:
        print(f"\n{'model':24} {'start':6} {'load s':>7} {'load+first run s':>17} {'peak RSS MB':>12}")
        for mid in args.models.split(","):
            for kind, r in bench_load(reg.get(mid)):
                print(f"{mid:24} {kind:6} {r['load_s']:7.2f} {r['load_and_first_run_s']:17.2f} {r['peak_rss_mb']:12.0f}", flush=True)


if __name__ == "__main__":
    main()
