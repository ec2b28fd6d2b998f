"""Memory of the server's workers: do N uvicorn workers share the memory-mapped weights?

Starts the real server once (so the converted weight store exists and later starts only map it),
then with --workers 1 and --workers 4: waits until every worker has finished its lifespan (the
default model loaded and a first run, which touches every weight page), sends a few
/api/attention requests on fresh connections, and reads each worker's /proc/<pid>/smaps_rollup.

PSS (proportional set size) charges each shared page 1/n to each of the n processes that map
it, so the sum of PSS over processes is what they really cost together; RSS counts shared pages
in full in every process. If the workers share one copy of the weights, total PSS with 4
workers is far less than 4x one worker's.

    .venv/bin/python bench/memory.py [--workers 1,4] [--requests 8]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import Server  # noqa: E402

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
    args = ap.parse_args()

    t = time.monotonic()
    with Server(1) as first:  # converts the weights if the store does not exist yet
        pass
    print(f"first start (weight store made or found): {time.monotonic() - t:.1f} s; "
          f"cache dir {os.environ.get('ATTNSCOPE_CACHE_DIR') or '~/.cache/attnscope'}; cores {os.cpu_count()}")
    del first

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
