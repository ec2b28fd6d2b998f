"""Worst-case differences between our numpy forward and Hugging Face transformers, per tensor kind,
with 1 and with 2 BLAS threads: the measurements behind the tolerances of tests/engine/test_parity_*.

Runs every sentence of the parity tests through both models with numpy's BLAS (threadpoolctl) and
torch's intra-op pool set to the same thread count, and prints, for each kind of tensor, the worst
value of the metric the test uses, where it occurred, and the test's limit.

    .venv/bin/python bench/parity.py [--threads 1,2] [--tiny]

Metrics (the same functions the tests call, from tests/engine/tolerances.py):
  pattern         max |ours - ref| over [head, query, key] (absolute: weights are in [0, 1])
  resid (row)     max over positions i of max_j |ours - ref|_ij / max_j |ref|_ij (each row against its own scale)
  resid (global)  max |ours - ref| / max |ref| over the whole tensor (what the tests used before: the
                  huge first-token row of SmolLM2 sets the scale and hides every other row's error)
  logits          max |ours - ref| / max |ref|
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from app.engine import Registry  # noqa: E402
from tests.engine import tolerances as tol  # noqa: E402
from tests.sentences import SENTENCES  # noqa: E402


def worst(acc: dict, kind: str, value: float, where: str) -> None:
    if kind not in acc or value > acc[kind][0]:
        acc[kind] = (value, where)


def measure_smol(model, hf, acc):
    from tests.engine.test_parity_real import reference

    for s, text in enumerate(SENTENCES):
        run = model.run(text)
        out = reference(hf, run.ids)
        for L in range(model.cfg.n_layers):
            where = f"sentence {s}, layer {L}"
            worst(acc, "smollm2 pattern", tol.abs_err(run[f"blocks.{L}.attn.hook_pattern"], out.attentions[L][0].numpy()), where)
            a, b = run[f"blocks.{L}.hook_resid_pre"], out.hidden_states[L][0].numpy()
            worst(acc, "smollm2 resid_pre (row)", tol.row_rel_err(a, b), where)
            worst(acc, "smollm2 resid_pre (global)", tol.global_rel_err(a, b), where)
        ref = out.logits[0].numpy()
        worst(acc, "smollm2 logits", tol.global_rel_err(run.logits, ref), f"sentence {s}")
        top2 = np.sort(ref, -1)[:, -2:]  # how close the reference's top-1 comes to a tie, over its error
        worst(acc, "smollm2 err / top-1 gap", float((np.abs(run.logits - ref).max(-1) / (top2[:, 1] - top2[:, 0])).max()),
              f"sentence {s}")


def measure_minilm(model, hf, acc):
    from tests.engine.test_parity_real import reference

    for s, text in enumerate(SENTENCES):
        run = model.run(text)
        out = reference(hf, run.ids)
        worst(acc, "minilm embeddings (row)", tol.row_rel_err(run["blocks.0.hook_resid_pre"], out.hidden_states[0][0].numpy()),
              f"sentence {s}")
        for L in range(model.cfg.n_layers):
            where = f"sentence {s}, layer {L}"
            worst(acc, "minilm pattern", tol.abs_err(run[f"blocks.{L}.attn.hook_pattern"], out.attentions[L][0].numpy()), where)
            a, b = run[f"blocks.{L}.hook_resid_post"], out.hidden_states[L + 1][0].numpy()
            worst(acc, "minilm resid_post (row)", tol.row_rel_err(a, b), where)
            worst(acc, "minilm resid_post (global)", tol.global_rel_err(a, b), where)


def measure_tiny(acc):
    import tempfile

    from app.engine import load_model
    from tests.engine import test_parity_tiny as tiny
    from transformers import PreTrainedTokenizerFast  # noqa: F401 (the builders need it loaded)

    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, overrides) in tiny.VARIANTS.items():
            folder = Path(tmp) / name
            folder.mkdir()
            hf = build(folder, **overrides)
            ours = load_model(folder, name, cache_dir=Path(tmp) / "store")
            for s, text in enumerate(tiny.TEXTS):
                run = ours.run(text)
                out = tiny.reference(hf, run.ids)
                for L in range(ours.cfg.n_layers):
                    where = f"{name} text {s} L{L}"
                    worst(acc, "tiny pattern", tol.abs_err(run[f"blocks.{L}.attn.hook_pattern"], out.attentions[L][0].numpy()), where)
                    worst(acc, "tiny pattern vs f64 recompute",
                          tol.abs_err(run[f"blocks.{L}.attn.hook_pattern"], tiny.recompute_pattern(run, ours.cfg, L)), where)
                    worst(acc, "tiny resid_pre (row)", tol.row_rel_err(run[f"blocks.{L}.hook_resid_pre"],
                                                                       out.hidden_states[L][0].numpy()), where)
                if ours.cfg.causal:
                    worst(acc, "tiny logits", tol.global_rel_err(run.logits, out.logits[0].numpy()), f"{name} text {s}")
                else:
                    worst(acc, "tiny resid_post last (row)", tol.row_rel_err(run[f"blocks.{ours.cfg.n_layers - 1}.hook_resid_post"],
                                                                             out.hidden_states[-1][0].numpy()), f"{name} text {s}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--tiny", action="store_true", help="also the tiny random checkpoints of test_parity_tiny.py")
    args = ap.parse_args()
    from transformers import AutoModel, AutoModelForCausalLM

    reg = Registry.from_env(extra="")
    smol, minilm = reg.get("smollm2-135m-instruct"), reg.get("all-minilm-l6-v2")
    hf_smol = AutoModelForCausalLM.from_pretrained(smol.source.parent, gguf_file=smol.source.name, dtype=torch.float32,
                                                   attn_implementation="eager").eval()
    hf_minilm = AutoModel.from_pretrained(minilm.source, dtype=torch.float32, attn_implementation="eager").eval()
    results = {}
    for n in map(int, args.threads.split(",")):
        torch.set_num_threads(n)
        with threadpool_limits(n, user_api="blas"):
            acc = {}
            measure_smol(smol, hf_smol, acc)
            measure_minilm(minilm, hf_minilm, acc)
            if args.tiny:
                measure_tiny(acc)
        results[n] = acc
    limits = {"smollm2 pattern": tol.ATOL_PATTERN, "minilm pattern": tol.ATOL_PATTERN, "tiny pattern": tol.ATOL_PATTERN,
              "smollm2 resid_pre (row)": tol.rtol_resid(smol.cfg), "minilm resid_post (row)": tol.rtol_resid(minilm.cfg),
              "minilm embeddings (row)": tol.rtol_embed(minilm.cfg), "smollm2 logits": tol.rtol_logits(smol.cfg),
              "tiny pattern vs f64 recompute": tol.ATOL_RECOMPUTE, "tiny resid_pre (row)": tol.RTOL_TINY,
              "tiny logits": tol.RTOL_TINY, "tiny resid_post last (row)": tol.RTOL_TINY}
    ns = list(results)
    print(f"{'tensor':30}" + "".join(f" {f'{n} thread(s)':>12} {'where':>22}" for n in ns) + f" {'limit':>9} {'margin':>7}")
    for kind in results[ns[0]]:
        cells = "".join(f" {results[n][kind][0]:12.3g} {results[n][kind][1]:>22}" for n in ns)
        lim = limits.get(kind)
        margin = f"{lim / max(results[n][kind][0] for n in ns):7.1f}x" if lim else ""
        print(f"{kind:30}{cells} {f'{lim:.2g}' if lim else '(info)':>9} {margin}")


if __name__ == "__main__":
    main()
