"""Memory of the server's workers: the peak under a stream of long texts, and whether N uvicorn
workers share the memory-mapped weights.

Peak (`--stream N`, run first): one worker; N distinct texts of --tokens tokens (512, the limit)
go through the requests the explorer sends for a new text (/api/attention for one layer,
/api/head, /api/predictions, /api/attention for the grid as uint8), one text after another; the
worker's peak RSS (VmHWM) is printed against the bound stated in the README:

    startup anonymous RSS (code, libraries, the lesson sentence's run)
    + the default model's weights (a read-only mapping of the store: file pages, shared by workers)
    + run cache budget + response cache budget                  (every cached byte is counted)
    + one run in flight: its captures + logits + top_k's chunk   (compute_threads = 1)

Starts the real server once (so the converted weight store exists and later starts only map it),
then with --workers 1 and --workers 4: waits until every worker has finished its lifespan (the
default model loaded and a first run, which touches every weight page), sends a few
/api/attention requests on fresh connections, and reads each worker's /proc/<pid>/smaps_rollup.

PSS (proportional set size) charges each shared page 1/n to each of the n processes that map
it, so the sum of PSS over processes is what they really cost together; RSS counts shared pages
in full in every process. If the workers share one copy of the weights, total PSS with 4
workers is far less than 4x one worker's.

    .venv/bin/python bench/memory.py [--stream 6] [--tokens 512] [--workers 1,4] [--requests 8]

ATTNSCOPE_* settings pass through (e.g. ATTNSCOPE_RUN_CACHE_MB=512, ATTNSCOPE_MALLOC_DEFAULTS=1).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import ROOT, Server, make_text  # noqa: E402

FIELDS = ("Rss", "Pss", "Pss_Anon", "Pss_File")


def rollup(pid: int) -> dict[str, int]:
    """/proc/<pid>/smaps_rollup, in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0]) / 1024
    return out


def weights_mapping(pid: int) -> dict[str, float]:
    """Rss and Pss of the mapped weight stores (weights.bin) alone, from /proc/<pid>/smaps, in MiB."""
    rss = pss = 0.0
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):  # a mapping's header line
            inside = line.rstrip().endswith("weights.bin")
        elif inside and head[0] == "Rss:":
            rss += int(head[1]) / 1024
        elif inside and head[0] == "Pss:":
            pss += int(head[1]) / 1024
    return {"Rss": rss, "Pss": pss}


def children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(p) for p in (task / "children").read_text().split()]
    return kids


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def worker_pids(server: Server) -> tuple[list[int], int | None]:
    """(worker pids, supervisor pid or None). One worker: uvicorn serves in the process it started;
    several: a supervisor process with one child per worker (multiprocessing spawn)."""
    if server.workers == 1:
        return [server.proc.pid], None
    kids = [p for p in children(server.proc.pid) if "resource_tracker" not in cmdline(p)]
    return kids, server.proc.pid


def touch(server: Server, n: int) -> None:
    """Requests on fresh connections, so that the kernel spreads them over the workers."""
    for i in range(n):
        with httpx.Client(base_url=server.url, timeout=120) as c:
            r = c.post("/api/attention", json={"text": f"memory check {i}: the fluffy blue creature roamed the forest",
                                               "encoding": "uint8"})
            r.raise_for_status()


def status(pid: int) -> dict[str, float]:
    """/proc/<pid>/status memory lines (VmHWM = peak RSS), in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.startswith(("Vm", "Rss")) and value.strip().endswith("kB"):
            out[key] = int(value.split()[0]) / 1024
    return out


def explorer_requests(c: httpx.Client, text: str, layer: int = 2, head: int = 3) -> None:
    """What the explorer sends when the text changes (static/js/explorer/data.js NEEDS: attention, head,
    predictions, grid)."""
    for path, body in (("/api/attention", {"layers": [layer], "measure": "weight"}),
                       ("/api/head", {"layer": layer, "head": head, "parts": ["scores"]}),
                       ("/api/predictions", {"top_k": 10, "temperature": 1, "ablate": [], "ablate_mode": "zero"}),
                       ("/api/attention", {"encoding": "uint8", "measure": "weight", "pool": 64})):
        c.post(path, json={"text": text, **body}, headers={"Accept-Encoding": "gzip"}).raise_for_status()


def stated_bound(n_tokens: int, startup_anon: float) -> dict[str, float]:
    """The README's bound for one worker, in MiB, from the settings and a run of n_tokens measured here."""
    sys.path.insert(0, str(ROOT))
    from app.analysis import full_run
    from app.engine import Registry
    from app.settings import Settings

    settings = Settings()
    model = Registry.from_env(extra="").get()
    cr = full_run(model, make_text(model, n_tokens, "Bound"))
    cr.logits()
    top_k_copies = 64 * model.cfg.d_vocab * 16  # app.analysis.top_k: 64 rows of float32, negated, int64 indices
    parts = {"startup anon": startup_anon, "weights": sum(w.nbytes for w in model.weights.values()) / 2**20,
             "run cache": settings.run_cache_mb, "response cache": settings.response_cache_mb,
             "run in flight": (cr.nbytes + top_k_copies) / 2**20}
    return parts | {"bound": sum(parts.values()), "one run + logits": cr.nbytes / 2**20}


def stream(n_texts: int, n_tokens: int) -> None:
    from app.engine import Registry

    model = Registry.from_env(extra="").get()
    texts = [make_text(model, n_tokens, f"Stream {i}") for i in range(n_texts)]
    with Server(1) as server:
        pid = server.proc.pid
        start = status(pid)
        print(f"\nstream of {n_texts} distinct {n_tokens}-token texts, 1 worker; startup RSS {start['VmRSS']:.0f} MiB"
              f" (file {start.get('RssFile', 0):.0f}, anon {start.get('RssAnon', 0):.0f})")
        print(f"{'text':>5} {'RSS MiB':>8} {'peak MiB':>9} {'anon MiB':>9}")
        with httpx.Client(base_url=server.url, timeout=600) as c:
            for i, text in enumerate(texts):
                explorer_requests(c, text)
                st = status(pid)
                print(f"{i:5d} {st['VmRSS']:8.0f} {st['VmHWM']:9.0f} {st.get('RssAnon', 0):9.0f}")
        peak = status(pid)["VmHWM"]
    bound = stated_bound(n_tokens, start.get("RssAnon", 0))
    print("bound = " + " + ".join(f"{k} {bound[k]:.0f}" for k in ("startup anon", "weights", "run cache", "response cache",
                                                                   "run in flight"))
          + f" = {bound['bound']:.0f} MiB (a {n_tokens}-token run with its logits: {bound['one run + logits']:.0f} MiB)")
    print(f"peak RSS {peak:.0f} MiB: {'within' if peak <= bound['bound'] else 'OVER'} the bound "
          f"({peak / bound['bound']:.2f} of it)")


def measure(workers: int, requests: int) -> dict:
    with Server(workers) as server:
        pids, supervisor = worker_pids(server)
        if len(pids) != workers:
            raise RuntimeError(f"expected {workers} worker processes, found {pids}")
        touch(server, requests)
        time.sleep(0.5)
        rows = [(pid, rollup(pid), weights_mapping(pid)) for pid in pids]
        sup = rollup(supervisor) if supervisor else None
    return {"workers": workers, "rows": rows, "supervisor": sup}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,4")
    ap.add_argument("--requests", type=int, default=8, help="/api/attention requests per measurement")
    ap.add_argument("--stream", type=int, default=6, help="distinct long texts for the peak measurement (0: skip)")
    ap.add_argument("--tokens", type=int, default=512)
    args = ap.parse_args()

    t = time.monotonic()
    with Server(1) as first:  # converts the weights if the store does not exist yet
        pass
    print(f"first start (weight store made or found): {time.monotonic() - t:.1f} s; "
          f"cache dir {os.environ.get('ATTNSCOPE_CACHE_DIR') or '~/.cache/attnscope'}; cores {os.cpu_count()}")
    del first
    if args.stream:
        stream(args.stream, args.tokens)
    if not args.workers:
        return

    results = [measure(int(w), args.requests) for w in args.workers.split(",")]
    print(f"\n{'workers':>7} {'pid':>8} {'RSS MiB':>9} {'PSS MiB':>9} {'PSS anon':>9} {'PSS file':>9}"
          f" {'weights RSS':>12} {'weights PSS':>12}")
    totals = {}
    for res in results:
        for pid, r, w in res["rows"]:
            print(f"{res['workers']:7d} {pid:8d} {r['Rss']:9.1f} {r['Pss']:9.1f} {r['Pss_Anon']:9.1f} {r['Pss_File']:9.1f}"
                  f" {w['Rss']:12.1f} {w['Pss']:12.1f}")
        tot = {k: sum(r[k] for _, r, _ in res["rows"]) for k in FIELDS}
        tot["weights_Pss"] = sum(w["Pss"] for _, _, w in res["rows"])
        totals[res["workers"]] = tot
        print(f"{res['workers']:7d} {'total':>8} {tot['Rss']:9.1f} {tot['Pss']:9.1f} {tot['Pss_Anon']:9.1f} {tot['Pss_File']:9.1f}"
              f" {'':12} {tot['weights_Pss']:12.1f}")
        if res["supervisor"]:
            s = res["supervisor"]
            print(f"{res['workers']:7d} {'superv.':>8} {s['Rss']:9.1f} {s['Pss']:9.1f} {s['Pss_Anon']:9.1f} {s['Pss_File']:9.1f}"
                  "   (uvicorn's supervisor process, not a worker)")
    if 1 in totals:
        one = totals[1]["Pss"]
        print()
        for w, tot in totals.items():
            if w != 1:
                print(f"total worker PSS, {w} workers / 1 worker: {tot['Pss'] / one:.2f} (no sharing would be ~{w}); "
                      f"weights PSS total {tot['weights_Pss']:.0f} MiB vs {totals[1]['weights_Pss']:.0f} MiB with one worker")


if __name__ == "__main__":
    main()
