"""A class at once, with and without the HTTP cache tier (deploy/): the app (tests/live_server.py's
Server, --workers uvicorn processes) alone, then Debian's nginx in front of it with deploy/'s recipe
(tests/nginx.py: a temporary prefix, loopback only), a fresh server for each so both start cold.

Each of --students students (asyncio + httpx, at most --concurrency requests in flight in all):
1. opens the lesson page and two embeds (the same for the whole class, as a teacher's slides hold
   them), each as a browser with an empty cache does: the document, then its stylesheets, scripts and
   ES modules (the whole import graph) and plotly.js; what a browser may reuse it reuses (max-age and
   immutable: no request; no-cache: If-None-Match);
2. opens the explorer and types its own sentence: for each of --keystrokes prefixes, the explorer's
   requests for the new text (static/js/explorer/data.js's NEEDS: attention for the layer, the head,
   the grid in uint8, the predictions), --think seconds apart.

Prints, per setting: the hit rate (nginx's $upstream_cache_status, from its access log), goodput
(200/304 answers per second, and the time until every student is done), p50/p95 latency per kind of
request (measured from when it is sent: the wait for a slot under --concurrency is not counted), and
failures: anything but a 200, a 304 or a 503 with Retry-After (time-outs and unfinished students
included). Bounded: each setting stops after --deadline seconds, every request after --timeout.
Run it on an idle machine (it waits up to --wait-idle s for `uptime` load < 1.5 and says what it got).

    .venv/bin/python bench/classroom.py [--students 60] [--workers 2] [--concurrency 24] [--keystrokes 3]
"""

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from urllib.parse import quote, urljoin, urlsplit

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from app.lesson import DEFAULT_HEAD, DEFAULT_LAYER, LESSON_SENTENCE  # noqa: E402
from tests.live_server import Server, free_port  # noqa: E402
from tests.nginx import Nginx  # noqa: E402

IDLE_LOAD = 1.5
GRID_POOL = 64  # static/js/explorer/data.js's
EMBEDS = [f"/embed/heatmap?text={quote(LESSON_SENTENCE)}&layer={DEFAULT_LAYER}&head={DEFAULT_HEAD}",
          f"/embed/arrows?text={quote(LESSON_SENTENCE)}&layer={DEFAULT_LAYER}&head={DEFAULT_HEAD}&token=3"]
SUBJECTS = ("my cat", "the old river", "a tired robot", "our teacher", "the blue whale", "a small dragon", "the new moon",
            "my sister", "the city bus", "a quiet forest")
VERBS = ("found", "painted", "followed", "forgot", "carried", "imagined")
OBJECTS = ("a golden key under the bridge", "the last train home", "seven red apples", "a map of the stars",
           "the noisy market", "an empty castle")
RESOURCE = re.compile(r'<script\b[^>]*\bsrc="(/[^"]+)"|<link\b[^>]*\brel="(?:stylesheet|icon)"[^>]*\bhref="(/[^"]+)"'
                      r'|<link\b[^>]*\bhref="(/[^"]+)"[^>]*\brel="(?:stylesheet|icon)"')
IMPORT = re.compile(r'''(?:^|[;\s])(?:import|export)\s[^'"`;]*?from\s*["']([^"']+)["']|(?:^|[;\s])import\s*\(?\s*["']([^"']+)["']''',
                    re.M)


def sentence(i: int) -> str:
    """Student i's own sentence (distinct for every i below 360)."""
    return f"{SUBJECTS[i % 10]} {VERBS[i // 10 % 6]} {OBJECTS[i // 60 % 6]} on day {i}"


def keystrokes(text: str, n: int) -> list[str]:
    """The last n prefixes of the text at word ends: what the explorer runs as the student types (debounced)."""
    words = text.split(" ")
    return [" ".join(words[:k]) for k in range(max(1, len(words) - n + 1), len(words) + 1)]


def explorer_requests(text: str) -> list[tuple[str, dict]]:
    """static/js/explorer/data.js's NEEDS for the default state with this text."""
    base = {"text": text, "model": "smollm2-135m-instruct"}
    return [("/api/attention", base | {"layers": [DEFAULT_LAYER], "measure": "weight"}),
            ("/api/head", base | {"layer": DEFAULT_LAYER, "head": DEFAULT_HEAD, "parts": ["scores"]}),
            ("/api/attention", base | {"encoding": "uint8", "measure": "weight", "pool": GRID_POOL}),
            ("/api/predictions", base | {"top_k": 10, "temperature": 1, "ablate": [], "ablate_mode": "zero"})]


class Record:
    def __init__(self):
        self.rows: list[tuple[str, str, int | str, float, bool]] = []  # kind, url, status, seconds, retry-after
        self.done = 0

    def ok(self, status, retry_after) -> bool:
        return status in (200, 304) or (status == 503 and retry_after)


class Browser:
    """One student's browser: an HTTP cache of its own (fresh for max-age/immutable, else revalidated)."""

    def __init__(self, client: httpx.AsyncClient, slots: asyncio.Semaphore, record: Record):
        self.client, self.slots, self.record = client, slots, record
        self.fresh: set[str] = set()
        self.etags: dict[str, str] = {}
        self.modules: dict[str, str] = {}

    async def fetch(self, kind: str, url: str, json_body=None) -> httpx.Response | None:
        if json_body is None and url in self.fresh:
            return None
        headers = {"Accept-Encoding": "gzip, deflate, br"}
        if json_body is None and url in self.etags:
            headers["If-None-Match"] = self.etags[url]
        async with self.slots:
            t0 = time.perf_counter()
            try:
                if json_body is None:
                    r = await self.client.get(url, headers=headers)
                else:
                    r = await self.client.post(url, json=json_body, headers=headers)
                await r.aread()
            except httpx.HTTPError as e:
                self.record.rows.append((kind, url, type(e).__name__, time.perf_counter() - t0, False))
                return None
            self.record.rows.append((kind, url, r.status_code, time.perf_counter() - t0, "retry-after" in r.headers))
        cc = r.headers.get("cache-control", "")
        if json_body is None and r.status_code == 200:
            if "max-age" in cc and "max-age=0" not in cc and "no-cache" not in cc and "no-store" not in cc:
                self.fresh.add(url)
            elif "etag" in r.headers:
                self.etags[url] = r.headers["etag"]
        return r

    async def document(self, kind: str, url: str) -> None:
        """The document, then what it loads, each URL once (a document's module map)."""
        r = await self.fetch(kind, url)
        if r is None or r.status_code != 200:
            return
        found = [next(g for g in m.groups() if g) for m in RESOURCE.finditer(r.text)]
        seen = set()
        await asyncio.gather(*(self.resource(u, seen) for u in dict.fromkeys(found)))

    async def resource(self, url: str, seen: set[str]) -> None:
        if url in seen:
            return
        seen.add(url)
        r = await self.fetch("static", url)
        if r is not None and r.status_code == 200 and urlsplit(url).path.endswith(".js") and "/vendor/" not in url:
            self.modules[url] = r.text
        text = self.modules.get(url)
        if text is None:
            return
        imports = [urljoin(url, next(g for g in m.groups() if g)) for m in IMPORT.finditer(text)]
        await asyncio.gather(*(self.resource(u, seen) for u in dict.fromkeys(imports) if u.startswith("/")))


async def student(i: int, client, slots, record: Record, args, rng: random.Random) -> None:
    await asyncio.sleep(rng.uniform(0, args.arrival))  # a class opens the lesson within a few seconds
    b = Browser(client, slots, record)
    await b.document("page", "/lesson")
    for url in EMBEDS:
        await b.document("embed", url)
    await b.document("page", "/")
    for text in keystrokes(sentence(i), args.keystrokes):
        await asyncio.gather(*(b.fetch("api", path, body) for path, body in explorer_requests(text)))
        await asyncio.sleep(args.think)
    record.done += 1


async def play(url: str, args) -> tuple[Record, float]:
    record, rng = Record(), random.Random(args.seed)
    slots = asyncio.Semaphore(args.concurrency)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits) as client:
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(student(i, client, slots, record, args, rng)) for i in range(args.students)]
        _, pending = await asyncio.wait(tasks, timeout=args.deadline)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return record, time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else (values or [float("nan")])[0]


def report(title: str, record: Record, wall: float, args, cache: list[tuple[str, int, str]] | None) -> None:
    rows = record.rows
    good = [r for r in rows if r[2] in (200, 304)]
    shed = [r for r in rows if r[2] == 503 and r[4]]
    failed = [r for r in rows if not record.ok(r[2], r[4])]
    print(f"\n== {title}: {args.students} students, {len(rows)} requests in {wall:.1f} s "
          f"({record.done}/{args.students} students done)")
    print(f"goodput {len(good) / wall:.1f} answers/s (200/304: {len(good)}), shed 503+Retry-After {len(shed)}, "
          f"failures {len(failed) + args.students - record.done} ({len(failed)} requests"
          f"{', ' + str(dict(Counter(str(r[2]) for r in failed))) if failed else ''}; {args.students - record.done} students unfinished)")
    api = [r for r in rows if r[0] == "api"]
    api_ok = [r for r in api if r[2] == 200]
    print(f"the explorer's requests answered: {len(api_ok)}/{len(api)} ({len(api_ok) / wall:.1f}/s; the rest shed with 503 "
          f"+ Retry-After or failed)")
    by_kind = defaultdict(list)
    for kind, _, status, seconds, _ in rows:
        by_kind[kind].append((status, seconds))
    print(f"{'kind':8} {'n':>5} {'p50 ms':>8} {'p95 ms':>8}  statuses")
    for kind in ("page", "embed", "static", "api"):
        got = by_kind.get(kind, [])
        secs = [s for st, s in got if st in (200, 304)]
        if got:
            print(f"{kind:8} {len(got):5d} {pct(secs, 50) * 1e3:8.0f} {pct(secs, 95) * 1e3:8.0f}  "
                  f"{dict(sorted(Counter(str(st) for st, _ in got).items()))}")
    secs = [r[3] for r in good]
    print(f"{'all':8} {len(rows):5d} {pct(secs, 50) * 1e3:8.0f} {pct(secs, 95) * 1e3:8.0f}")
    if cache is not None:
        gets = [(line, status, c) for line, status, c in cache if line.startswith("GET ")]
        cacheable = [c for line, _, c in gets if not line.startswith("GET /static/")]
        hits = lambda cs: sum(c in ("HIT", "STALE", "UPDATING", "REVALIDATED") for c in cs)  # noqa: E731
        print(f"nginx: hit rate {hits(cacheable) / max(1, len(cacheable)):.1%} of {len(cacheable)} GETs of pages, embeds, "
              f"plotly and the API ({dict(Counter(cacheable))}); static files revalidate at the app (no-cache): "
              f"{dict(Counter(c for line, _, c in gets if line.startswith('GET /static/')))}; all GETs "
              f"{hits([c for _, _, c in gets]) / max(1, len(gets)):.1%}")


def load() -> float:
    return os.getloadavg()[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", type=int, default=60)
    p.add_argument("--workers", type=int, default=2, help="uvicorn processes (WORKERS)")
    p.add_argument("--concurrency", type=int, default=24, help="requests in flight at most, all students together")
    p.add_argument("--keystrokes", type=int, default=3)
    p.add_argument("--think", type=float, default=0.3, help="seconds between keystrokes (the explorer debounces 220 ms)")
    p.add_argument("--arrival", type=float, default=5.0, help="students arrive within this many seconds")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a request may take before it is a failure")
    p.add_argument("--deadline", type=float, default=300.0, help="seconds a setting may run in all")
    p.add_argument("--wait-idle", type=float, default=300.0, help="seconds to wait for load < 1.5 before starting")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", choices=("app", "nginx"), help="one setting only")
    args = p.parse_args()

    waited = 0.0
    while load() >= IDLE_LOAD and waited < args.wait_idle:
        time.sleep(10)
        waited += 10
    start_load = load()
    print(f"load average at start {start_load:.2f}" + ("" if start_load < IDLE_LOAD else
          f" (BUSY: >= {IDLE_LOAD} after waiting {waited:.0f} s; the figures below are from a loaded machine)"))
    env = {k: v for k, v in os.environ.items() if k != "ATTNSCOPE_MODELS"}
    for setting in ("app", "nginx"):
        if args.only and setting != args.only:
            continue
        if setting == "app":
            with Server(env, workers=args.workers) as server:
                record, wall = asyncio.run(play(server.url, args))
            report(f"the app alone ({args.workers} workers)", record, wall, args, None)
        else:
            port = free_port()
            extra = {"ATTNSCOPE_PUBLIC_URL": f"http://127.0.0.1:{port}", "ATTNSCOPE_FORWARDED_ALLOW_IPS": "127.0.0.1"}
            with Server(env, workers=args.workers, env_extra=extra) as server, Nginx(server.url.removeprefix("http://"), port) as proxy:
                record, wall = asyncio.run(play(proxy.url, args))
                cache = proxy.logged(sum(1 for r in record.rows if isinstance(r[2], int)))
            report(f"nginx (deploy/ recipe) in front of the app ({args.workers} workers)", record, wall, args, cache)
        print(f"load average now {load():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
