"""Front-end benchmark: the explorer page in headless Chromium against a real `uvicorn app.main:app`
(subprocess, free loopback port), everything measured side by side in one run.

    .venv/bin/python bench/frontend.py [--reps 9] [--sizes 8,32,128,400] [--hovers 3]
        [--loads 5] [--no-profile] [--url http://127.0.0.1:8000]

Prints:

  1. keystroke -> updated views at 8, 32, 128 and 400 tokens. A distinct text each time (the same sentence
     with one word varied, so nothing is cached) goes into the textarea as a user's input (Playwright
     `fill`: one `input` event). The clock starts at that event (performance.now() in the page) and
     stops when the page sets `window.attnscope.rendered` for that text (arrows, heatmap, predictions
     drawn), and again when `rendered.grid` is true as well. Interleaved with it, from the same page
     (fetch in page.evaluate), the API's own latency for the requests the page makes, for other fresh
     texts: the first views' requests exactly as the last keystroke sent them (recorded by a wrapper
     around fetch; today /api/attention for one layer as uint8, /api/head parts pattern,
     /api/predictions), in parallel. The bytes of every request of a keystroke (the grid's too) are
     summed from Resource Timing (transferSize: gzip bodies and headers) and listed by request. Ratio =
     (keystroke->views minus the page's 220 ms input debounce) / API latency (bodies received); the raw
     ratio (debounce included) is printed too, and a paired ratio against each keystroke's own
     three requests (same text, same moment: robust when the machine is busy). Then the page's own
     timeline of those keystrokes (Resource Timing), a CPU profile of keystrokes at the largest size,
     and the grid's decoding timed alone (decodePattern in static/js/api.js against a plain loop).
  2. hover -> highlight at 32 tokens: a `pointerenter` (pointerType mouse) dispatched on every chip
     in turn, at the start of a frame as Chromium does for a real mouse; the listener updates the DOM
     synchronously (store.token, arrows SVG, heatmap overlay, lines, predictions). Handler time, that
     frame's rendering, an idle frame for comparison, real mouse moves (CDP), how far the arrows end
     from their chips once laid out, a CPU profile and a trace (forced style/layout, by JS line).
  3. first load: bytes transferred for the page and its resources (Resource Timing transferSize),
     cold (new browser context) and warm (second navigation in the same context), and the time from
     navigation start to the first views drawn (window.attnscope.painted set: the heatmap may still be
     its picture, plotly.js not run yet), to the charts (window.attnscope.rendered) and to
     body[data-ready='1'].

The server reads its settings from the environment (ATTNSCOPE_CACHE_DIR, default ~/.cache/attnscope, holds the converted
weights; ATTNSCOPE_MODELS is cleared, ATTNSCOPE_PRELOAD defaults to `default`); --url measures an
already running server instead. Chromium is Debian's (/usr/bin/chromium), viewport 1400x1000. Not a
timed test: the browser, the server and this script share the machine's cores; read medians and
ratios, and run it twice when the machine is busy.
"""

import argparse
import gzip
import itertools
import json
import os
import random
import statistics
import sys
from pathlib import Path
from urllib.parse import urlparse

import httpx
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from app.engine import Registry  # noqa: E402
from tests.live_server import Server as LiveServer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]
DEBOUNCE_MS = 220  # TYPING_MS in static/js/explorer/controls.js
VIEWPORT = {"width": 1400, "height": 1000}
WORDS = ("the fluffy blue creature roamed the verdant forest while the river bank flooded and the money bank "
         "stayed dry; every token starts as a context-free embedding, then a head forms queries, keys and "
         "values, and the weighted sum of values is added back so that a word such as mole or tower comes to "
         "mean what its context says").split() * 10


# --- the server -------------------------------------------------------------------------------------

def Server() -> LiveServer:  # noqa: N802 (reads as the class)
    env = {"ATTNSCOPE_MODELS": "", "ATTNSCOPE_PRELOAD": os.environ.get("ATTNSCOPE_PRELOAD", "default")}
    return LiveServer(env_extra=env)


# --- texts --------------------------------------------------------------------------------------------

class Texts:
    """Texts of exactly n tokens (as the server's tokenizer counts them), never repeated: the same
    sentence with one word varied, like a person editing a word. The varied word is a word the
    tokenizer keeps whole, picked by a counter that starts at a per-run random offset, so that a
    server kept running (--url) has not seen the texts either."""

    def __init__(self, model):
        self.model = model
        vocab = model.tokenizer.tk.get_vocab()
        # byte-level BPE marks a leading space with G-dot; WordPiece vocabularies hold bare words
        words = {k[1:] if k.startswith("\u0120") else k for k in vocab}
        self.words = sorted(w for w in words if w.isalpha() and w.islower() and 4 <= len(w) <= 7)
        self.counter = itertools.count(random.randrange(len(self.words) ** 2 // 2))

    def __call__(self, n_tokens: int) -> str:
        c = next(self.counter)
        a, b = divmod(c, len(self.words))
        varied = [self.words[a % len(self.words)], self.words[b]]
        for variant in range(60):
            head = ["a" + "h" * variant, *varied]
            for k in range(len(WORDS) + 1):
                text = " ".join([*head, *WORDS[:k]])
                n = len(self.model.tokenizer.encode(text))
                if n == n_tokens:
                    return text
                if n > n_tokens:
                    break  # overshot by a multi-token word: change the first word and try again
        raise ValueError(f"cannot make a text of {n_tokens} tokens")


# --- in-page instrumentation ---------------------------------------------------------------------------

# Runs before the page's own scripts on every navigation (CDP, so the page's CSP does not apply).
# Records when window.attnscope.rendered is set (and to what), when body[data-ready] appears, when
# plotly has evaluated (it assigns window.Plotly last), and each input event on the textarea.
INIT = r"""
(() => {
  const B = window.__bench = { rendered: [], painted: [], ready: null, plotly: null, inputs: [], textSet: [], asked: [] };
  // the page's API requests as it sends them (path and body), so the API side replays exactly those
  const realFetch = window.fetch.bind(window);
  window.fetch = (input, init) => {
    const path = typeof input === "string" ? input : input.url;
    if (path.startsWith("/api/") && init && typeof init.body === "string") B.asked.push({ t: performance.now(), path, body: init.body });
    return realFetch(input, init);
  };
  let app, plotly;
  Object.defineProperty(window, "attnscope", { configurable: true, enumerable: true,
    get() { return app; },
    set(v) {
      app = v;
      for (const name of ["rendered", "painted"]) {
        let r = v && v[name];
        if (v) Object.defineProperty(v, name, { configurable: true, enumerable: true,
          get() { return r; },
          set(x) { r = x; if (x) B[name].push({ t: performance.now(), ...x }); } });
      }
      if (v && v.store) v.store.addEventListener("change", (e) => {
        if (e.detail.has("text")) B.textSet.push({ t: performance.now(), text: v.store.state.text });
      });
    } });
  Object.defineProperty(window, "Plotly", { configurable: true, enumerable: true,
    get() { return plotly; }, set(v) { plotly = v; if (B.plotly === null) B.plotly = performance.now(); } });
  document.addEventListener("input", (e) => {
    if (e.target && e.target.id === "text") B.inputs.push({ t: performance.now(), text: e.target.value });
  }, true);
  new MutationObserver(() => {
    if (B.ready === null && document.body && document.body.dataset.ready === "1") B.ready = performance.now();
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-ready"] });
})();
"""

RESET = "() => { const B = window.__bench; B.rendered.length = 0; B.inputs.length = 0; B.textSet.length = 0; B.asked.length = 0;" \
        " performance.clearResourceTimings(); performance.setResourceTimingBufferSize(10000); }"

# After a keystroke: when the input event fired, when the debounced text reached the store, when
# the page's three requests started and ended (Resource Timing), when the views were drawn.
COLLECT_KEYSTROKE = r"""
(text) => {
  const B = window.__bench;
  const input = B.inputs.find((e) => e.text === text);
  const set = B.textSet.find((e) => e.text === text);
  const views = B.rendered.find((r) => r.text === text);
  const grid = B.rendered.find((r) => r.text === text && r.grid);
  const res = performance.getEntriesByType("resource")
    .filter((e) => e.initiatorType === "fetch" && e.startTime >= input.t)
    .map((e) => ({ path: new URL(e.name).pathname, start: e.startTime, end: e.responseEnd, bytes: e.transferSize,
                   body: e.encodedBodySize, decoded: e.decodedBodySize }));
  const att = res.filter((e) => e.path === "/api/attention");
  const three = [att[0], res.find((e) => e.path === "/api/head"), res.find((e) => e.path === "/api/predictions")];
  return { input: input.t, set: set ? set.t : null, views: views.t, grid: grid.t,
           fetchStart: Math.min(...three.map((e) => e.start)), fetchEnd: Math.max(...three.map((e) => e.end)),
           attHeadEnd: Math.max(three[0].end, three[1].end), predEnd: three[2].end,
           bytes: three.reduce((a, e) => a + e.bytes, 0), decoded: three.reduce((a, e) => a + e.decoded, 0),
           gridStart: att[1] ? att[1].start : null, gridEnd: att[1] ? att[1].end : null,
           gridBytes: att[1] ? att[1].bytes : null, n: document.querySelectorAll("#arrows .chip").length,
           all: res.reduce((a, e) => a + e.bytes, 0), byRequest: res.map((e) => [e.path, e.bytes]),
           // the first views' requests as the page sent them (the grid's, asked for after them, left out)
           asks: B.asked.filter((e) => e.t >= input.t && JSON.parse(e.body).text === text)
             .map((e) => [e.path, JSON.parse(e.body)]).filter(([p, b]) => !(p === "/api/attention" && !(b.layers && b.layers.length === 1))) };
}
"""

# The API alone, from the same page: the page's own first-view requests (as a keystroke sent them,
# bodies and all) for a fresh text, in parallel.
API_FROM_PAGE = r"""
async ([text, asks]) => {
  const post = async (path, body) => {
    const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                  body: JSON.stringify(body) });
    const raw = await r.text();
    const received = performance.now();
    JSON.parse(raw);
    if (!r.ok) throw new Error(`${path}: ${r.status} ${raw.slice(0, 200)}`);
    return received;
  };
  const t0 = performance.now();
  const got = await Promise.all(asks.map(([path, body]) => post(path, { ...body, text })));
  return { received: Math.max(...got) - t0, parsed: performance.now() - t0 };
}
"""

# Hover: pointerenter (mouse) on chip i, dispatched where Chromium dispatches a real mouse's
# pointer events: at the start of a frame (input is rAF-aligned), here as the first rAF callback.
# The listener updates the DOM synchronously (handler); the same frame then runs style, layout and
# paint, after which a posted task runs (frame rendered). Then an idle frame measured the same way,
# and how far the drawn arrow ends sit from the chips they join once that frame is laid out.
HOVER = r"""
async (order) => {
  const chips = [...document.querySelectorAll("#arrows .chip")];
  const st = window.attnscope.store;
  const arrows = document.getElementById("arrows");
  const raf = () => new Promise((r) => requestAnimationFrame(r));
  // in a rAF callback: t0, work(), t1; then the time right after this frame's rendering
  const inFrame = (work) => new Promise((res) => requestAnimationFrame(() => {
    const t0 = performance.now();
    work();
    const t1 = performance.now();
    const ch = new MessageChannel();
    ch.port1.onmessage = () => res([t0, t1, performance.now()]);
    ch.port2.postMessage(0);
  }));
  const centres = () => {
    const box = arrows.getBoundingClientRect();
    return chips.map((c) => {
      const r = c.getBoundingClientRect();
      return [r.left - box.left + r.width / 2, r.top - box.top];
    });
  };
  const out = [];
  await raf(); await raf();
  for (const i of order) {
    let ok = false, paths = [];
    const before = centres();  // where the chips are when the listener measures them (clean layout: no cost)
    const [t0, t1, t3] = await inFrame(() => {
      chips[i].dispatchEvent(new PointerEvent("pointerenter", { pointerType: "mouse" }));
      paths = [...arrows.querySelectorAll("svg.arrow-layer path[data-query]")];
    });
    ok = st.state.token === i && paths.length > 0 && paths.every((p) => p.dataset.query === String(i))
      && document.querySelector("#heatmap .hm-highlight")?.dataset.token === String(i);
    // after layout: each arrow runs from its key chip's centre (x1, top y1) to its query chip's (x2)
    const c = centres();
    let off = 0;
    for (const p of paths) {
      const q = Number(p.dataset.query), k = Number(p.dataset.key);
      const v = p.getAttribute("d").match(/-?[\d.]+(e-?\d+)?/g).map(Number);
      if (q === k) off = Math.max(off, Math.abs(v[0] + 6 - c[q][0]), Math.abs(v[1] - c[q][1]));
      else off = Math.max(off, Math.abs(v[0] - c[k][0]), Math.abs(v[1] - c[k][1]), Math.abs(v[6] - c[q][0]));
    }
    const moved = c.filter((p, j) => Math.abs(p[0] - before[j][0]) > 0.5 || Math.abs(p[1] - before[j][1]) > 0.5).length;
    const rewrapped = c.some((p, j) => Math.abs(p[1] - before[j][1]) > 1);
    await raf();
    const [i0, i1, i3] = await inFrame(() => {});  // idle frame, nothing changed
    out.push({ i, ok, handler: t1 - t0, render: t3 - t1, total: t3 - t0, idle: i3 - i0, off, nPaths: paths.length,
               moved, rewrapped });
    await raf();
  }
  return out;
}
"""

# Real mouse moves (Playwright -> CDP Input.dispatchMouseEvent): for each pointerenter on a chip,
# the event's timeStamp, the end of the page's listener, and the end of the frame that follows.
MOUSE_PROBE = r"""
() => {
  const B = window.__bench;
  B.mouse = [];
  for (const chip of document.querySelectorAll("#arrows .chip")) {
    chip.addEventListener("pointerenter", (e) => {  // registered after the page's listener: runs after it
      const rec = { i: Number(chip.dataset.index), ts: e.timeStamp, handled: performance.now(), done: null };
      B.mouse.push(rec);
      requestAnimationFrame(() => {
        const ch = new MessageChannel();
        ch.port1.onmessage = () => { rec.done = performance.now(); };
        ch.port2.postMessage(0);
      });
    });
  }
}
"""

# The same hovers, without timing, for the CPU profile
HOVER_PLAIN = r"""
async (order) => {
  const chips = [...document.querySelectorAll("#arrows .chip")];
  const raf = () => new Promise((r) => requestAnimationFrame(r));
  for (const i of order) {
    chips[i].dispatchEvent(new PointerEvent("pointerenter", { pointerType: "mouse" }));
    await raf(); await raf();
  }
}
"""

# The grid's decoding (decodePattern in static/js/api.js, the page's own module) on one text's
# all-layers uint8 payload, against the same unpacking with a plain charCodeAt loop for the bytes.
DECODE = r"""
async ([text, model]) => {
  const { decodePattern } = await import("/static/js/api.js");
  const r = await fetch("/api/attention", { method: "POST", headers: { "Content-Type": "application/json" },
                                            body: JSON.stringify({ text, model, encoding: "uint8" }) });
  const layers = Object.values((await r.json()).attention);
  const loop = (a) => {
    const s = atob(a.data), bytes = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
    const [H, n] = a.shape, out = new Float32Array(H * n * n);
    let k = 0;
    for (let h = 0; h < H; h++)
      for (let i = 0; i < n; i++)
        for (let j = 0; j <= i; j++) out[(h * n + i) * n + j] = bytes[k++] * a.scale;
    return out;
  };
  const a0 = decodePattern(layers[0]), b0 = loop(layers[0]);
  const same = layers[0].packing === "tril" && a0.length === b0.length && a0.every((x, i) => x === b0[i]);
  const time = (fn) => {
    const xs = [];
    for (let k = 0; k < 5; k++) {
      const t0 = performance.now();
      for (const a of layers) fn(a);
      xs.push(performance.now() - t0);
    }
    return xs.sort((x, y) => x - y)[2];
  };
  const page = time(decodePattern), plain = time(loop), page2 = time(decodePattern);
  return { page: Math.min(page, page2), loop: plain, same, layers: layers.length,
           base64: layers.reduce((t, a) => t + a.data.length, 0) };
}
"""

COLLECT_LOAD = r"""
() => {
  const B = window.__bench;
  const nav = performance.getEntriesByType("navigation")[0];
  const entries = [nav, ...performance.getEntriesByType("resource")];
  const fcp = performance.getEntriesByType("paint").find((e) => e.name === "first-contentful-paint");
  return {
    resources: entries.map((e) => ({ path: new URL(e.name).pathname, type: e.initiatorType, transfer: e.transferSize,
      body: e.encodedBodySize, decoded: e.decodedBodySize, start: e.startTime, end: e.responseEnd })),
    docEnd: nav.responseEnd, plotlyEnd: (entries.find((e) => e.name.includes("/vendor/plotly")) || {}).responseEnd,
    dcl: nav.domContentLoadedEventStart, load: nav.loadEventEnd,
    plotly: B.plotly, views: B.painted.length ? B.painted[0].t : B.rendered.length ? B.rendered[0].t : null,
    chart: B.rendered.length ? B.rendered[0].t : null, ready: B.ready,
    fcp: fcp ? fcp.startTime : null,
  };
}
"""


# --- measurements -----------------------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def wait_text(page, text, grid=True, timeout=180000):
    # polled every 50 ms, not every frame: the times come from the page's own records, and polling
    # each frame would put the harness on the page's main thread while it works
    page.wait_for_function(
        "([t, g]) => window.__bench.rendered.some((r) => r.text === t && (!g || r.grid))", arg=[text, grid],
        timeout=timeout, polling=50)


def keystroke(page, text):
    page.evaluate(RESET)
    page.fill("#text", text)
    wait_text(page, text)
    page.wait_for_timeout(60)  # let the URL update and any trailing work finish
    return {**page.evaluate(COLLECT_KEYSTROKE, text), "text": text}


def bench_keystrokes(page, texts, sizes, reps, state):
    rows = []
    for n in sizes:
        for _ in range(2):  # warm-up: JIT, connection, first texts of this size
            asks = keystroke(page, texts(n))["asks"]
            page.evaluate(API_FROM_PAGE, [texts(n), asks])
        ks, api = [], []
        for r in range(reps):  # interleaved, the order alternating, so drift hits both alike
            for what in (("k", "a") if r % 2 == 0 else ("a", "k")):
                if what == "k":
                    ks.append(keystroke(page, texts(n)))
                    asks = ks[-1]["asks"]
                else:
                    api.append(page.evaluate(API_FROM_PAGE, [texts(n), asks]))
        assert all(k["n"] == n for k in ks), [k["n"] for k in ks]
        rows.append((n, ks, api))
        print(f"  ... {n} tokens done", file=sys.stderr, flush=True)
    return rows


KEYSTROKES_PROFILED = 3


def profile_keystrokes(page, texts, n, cdp, count=KEYSTROKES_PROFILED):
    """A sampling CPU profile of a few keystrokes (untimed): the samples with the page's own code
    (its modules, plotly) on the stack; the harness's polling and idle time are left out."""
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 100})
    cdp.send("Profiler.start")
    for _ in range(count):
        keystroke(page, texts(n))
    profile = cdp.send("Profiler.stop")["profile"]
    cdp.send("Profiler.disable")
    u = urlparse(page.url)
    origin = f"{u.scheme}://{u.netloc}/"
    return profile_breakdown(profile, lambda frames: any(f["url"].startswith(origin) for f in frames))


def bench_hover(page, texts, rounds, cdp):
    text = texts(32)
    page.evaluate(RESET)
    page.fill("#text", text)
    wait_text(page, text)
    page.wait_for_timeout(300)
    n = page.evaluate("() => document.querySelectorAll('#arrows .chip').length")
    order = [i for r in range(rounds) for i in (range(n) if r % 2 == 0 else reversed(range(n)))]
    page.evaluate(HOVER, list(range(min(n, 8))))  # warm-up
    samples = page.evaluate(HOVER, order)
    # the same with a real mouse: one move to each chip's centre (measured just before the move)
    page.evaluate(MOUSE_PROBE)
    moves = [i for k, i in enumerate(order) if k == 0 or order[k - 1] != i]  # a chip twice in a row: no new event
    for i in moves:
        seen = page.evaluate("() => window.__bench.mouse.length")
        box = page.locator(f"#arrows .chip[data-index='{i}']").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        try:
            page.wait_for_function("(k) => window.__bench.mouse.length > k && window.__bench.mouse[k].done !== null",
                                   arg=seen, timeout=5000)
        except PlaywrightTimeout:
            pass  # counted as missing in the report
        page.wait_for_timeout(20)
    mouse = page.evaluate("() => window.__bench.mouse")
    page.mouse.move(1, 1)
    # where the handler's time goes: a sampling CPU profile of the same hovers (separate, untimed) ...
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 50})
    cdp.send("Profiler.start")
    page.evaluate(HOVER_PLAIN, order)
    profile = cdp.send("Profiler.stop")["profile"]
    cdp.send("Profiler.disable")
    prof = profile_breakdown(profile, lambda frames: any(f["functionName"] == "drawFocus" for f in frames))
    # ... and a trace of them: style recalculation and layout forced inside the listener vs. in the frame
    page.context.browser.start_tracing(page=page, categories=[
        "devtools.timeline", "disabled-by-default-devtools.timeline", "disabled-by-default-devtools.timeline.stack"])
    page.evaluate(HOVER_PLAIN, order)
    trace = trace_breakdown(page.context.browser.stop_tracing(), len(order))
    return n, samples, len(moves), mouse, prof, trace


RENDERING = {"UpdateLayoutTree": "style recalc", "Layout": "layout", "PrePaint": "pre-paint", "Paint": "paint",
             "Layerize": "layerize", "Commit": "commit"}


def trace_breakdown(raw: bytes, hovers: int):
    """Per hover, from a Chromium trace of the renderer's main thread: the pointerenter listener's
    duration (EventDispatch), and each rendering phase's time inside it (forced, synchronous) and
    outside it (in the frame)."""
    data = json.loads(raw)
    events = data["traceEvents"] if isinstance(data, dict) else data
    main = {(e["pid"], e["tid"]) for e in events
            if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"}
    xs = [e for e in events if e.get("ph") == "X" and (e["pid"], e["tid"]) in main]
    disp = sorted(((e["ts"], e["ts"] + e.get("dur", 0)) for e in xs if e["name"] == "EventDispatch"
                   and e.get("args", {}).get("data", {}).get("type") == "pointerenter"))
    inside = {v: 0.0 for v in RENDERING.values()}
    outside = dict(inside)
    layouts_in = []
    sites: dict[str, float] = {}  # JS line that forced style/layout -> ms
    for e in xs:
        what = RENDERING.get(e["name"])
        if what is None:
            continue
        t0, t1 = e["ts"], e["ts"] + e.get("dur", 0)
        inn = any(a <= t0 and t1 <= b for a, b in disp)
        (inside if inn else outside)[what] += e.get("dur", 0) / 1000
        if inn and e["name"] == "Layout":
            layouts_in.append(e.get("args", {}).get("beginData", {}).get("dirtyObjects"))
        if inn:
            stack = find_key(e.get("args", {}), "stackTrace") or []
            site = " < ".join(f"{f.get('functionName') or '(anonymous)'} ({Path(urlparse(f.get('url', '')).path).name}:"
                              f"{f.get('lineNumber')})" for f in stack[:2]) or "(no stack)"
            sites[site] = sites.get(site, 0.0) + e.get("dur", 0) / 1000
    handler = sum(b - a for a, b in disp) / 1000
    return {"n": len(disp), "hovers": hovers, "handler": handler, "inside": inside, "outside": outside,
            "forced_layouts": len(layouts_in), "sites": sites}


def find_key(obj, key):
    """The first value under key anywhere in nested dicts/lists (trace event args vary by version)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        children = obj.values()
    elif isinstance(obj, list):
        children = obj
    else:
        return None
    for c in children:
        found = find_key(c, key)
        if found is not None:
            return found
    return None


def profile_breakdown(profile, keep):
    """Inclusive and self time per function from a V8 sampling profile, over the samples whose stack
    (call frames, innermost first) passes keep(frames)."""
    nodes = {nd["id"]: nd for nd in profile["nodes"]}
    parent = {}
    for nd in profile["nodes"]:
        for c in nd.get("children", []):
            parent[c] = nd["id"]

    def name(nd):
        cf = nd["callFrame"]
        fn = cf["functionName"] or "(anonymous)"
        url = cf.get("url", "")
        return f"{fn} ({Path(urlparse(url).path).name}:{cf['lineNumber'] + 1})" if url else fn

    total = 0.0
    incl: dict[str, float] = {}
    selfs: dict[str, float] = {}
    for sid, dt in zip(profile["samples"], profile["timeDeltas"]):
        stack, i = [], sid
        while i is not None:
            stack.append(nodes[i])
            i = parent.get(i)
        if not keep([nd["callFrame"] for nd in stack]):
            continue
        total += dt
        seen = set()
        for nd in stack:
            nm = name(nd)
            if nm not in seen:
                incl[nm] = incl.get(nm, 0.0) + dt
                seen.add(nm)
        top = name(stack[0])
        selfs[top] = selfs.get(top, 0.0) + dt
    return total, incl, selfs


def bench_load(browser, url, loads):
    out = []
    for _ in range(loads):
        ctx = browser.new_context(viewport=VIEWPORT)
        ctx.add_init_script(INIT)
        page = ctx.new_page()
        pair = []
        for _kind in ("cold", "warm"):
            page.goto(url + "/", wait_until="load")
            page.wait_for_function("() => window.__bench.ready !== null && window.__bench.rendered.length > 0",
                                   timeout=60000)
            page.wait_for_timeout(200)
            pair.append(page.evaluate(COLLECT_LOAD))
        ctx.close()
        out.append(pair)
    return out


# --- report -------------------------------------------------------------------------------------------

def kind_of(r, body):
    """How a resource came: from the cache (no request), revalidated (304: headers only) or its body."""
    if r["transfer"] == 0:
        return "cache"
    if r["transfer"] < min(1024, body):
        return "304"
    return "net"


def report_keystrokes(rows, reps, prof, decode):
    print(f"\n1. keystroke -> updated views (median of {reps} distinct texts per size; page debounce {DEBOUNCE_MS} ms)")
    print("   views = rendered.text set (arrows, heatmap, predictions drawn); +grid = rendered.grid true as well;"
          " API = the page's 3 requests\n   for a fresh text, in parallel, fetched from the same page, until the 3"
          " bodies are received (+parse: and JSON.parse'd); all from the input event")
    print(f"\n{'tokens':>6} {'views ms':>9} {'-debounce':>9} {'+grid ms':>9} {'API ms':>8} {'+parse':>8}"
          f" {'ratio':>6} {'raw ratio':>9} {'paired':>6}  |{'debounce':>9} {'att+head':>8} {'+preds':>7} {'draw':>7}"
          f" {'grid req':>8} {'grid draw':>9} {'kB':>7} {'kB all':>7}")
    for n, ks, api in rows:
        v = med([k["views"] - k["input"] for k in ks])
        g = med([k["grid"] - k["input"] for k in ks])
        ar, ap = med([a["received"] for a in api]), med([a["parsed"] for a in api])
        debounce = med([k["fetchStart"] - k["input"] for k in ks])
        att_head = med([k["attHeadEnd"] - k["fetchStart"] for k in ks])
        preds = med([max(0.0, k["predEnd"] - k["attHeadEnd"]) for k in ks])
        draw = med([k["views"] - k["fetchEnd"] for k in ks])
        greq = med([k["gridEnd"] - k["gridStart"] for k in ks if k["gridEnd"]])
        gdraw = med([k["grid"] - k["gridEnd"] for k in ks if k["gridEnd"]])
        kb = med([k["bytes"] for k in ks]) / 1000
        kb_all = med([k["all"] for k in ks]) / 1000
        paired = med([(k["views"] - k["input"] - DEBOUNCE_MS) / (k["fetchEnd"] - k["fetchStart"]) for k in ks])
        print(f"{n:6d} {v:9.1f} {v - DEBOUNCE_MS:9.1f} {g:9.1f} {ar:8.1f} {ap:8.1f} {(v - DEBOUNCE_MS) / ar:6.2f}"
              f" {v / ar:9.2f} {paired:6.2f}  |{debounce:9.1f} {att_head:8.1f} {preds:7.1f} {draw:7.1f} {greq:8.1f}"
              f" {gdraw:9.1f} {kb:7.1f} {kb_all:7.1f}")
    print(f"   ratio = (views - {DEBOUNCE_MS} ms debounce) / API ms (bodies received); raw ratio = views / API ms;"
          f" paired = the same ratio per keystroke\n   against that keystroke's own 3 requests (first sent -> last"
          f" received, Resource Timing), median: the same text, so the machine's load cancels out.")
    print("   Right of |, the page's own timeline (medians, ms; Resource Timing): debounce = input event -> first"
          " request sent;\n   att+head = -> /api/attention and /api/head received; +preds = how much later"
          " /api/predictions arrived (each view draws when its own\n   data is in; `rendered` waits for all three); draw = last response -> views"
          " drawn (JSON parse + DOM + plotly); grid req = the all-layers uint8 request,\n   sent with the others;"
          " grid draw = its end -> rendered.grid; kB = transferred for the 3 requests; kB all = every request"
          " of the keystroke\n   (the grid's too: the bytes per keystroke, target <= 1000 kB at 400 tokens).")
    n, ks, _ = rows[-1]
    print(f"\n   bytes per keystroke at {n} tokens, by request (median kB transferred, gzip; Resource Timing):")
    per = {}
    for k in ks:
        for i, (path, b) in enumerate(k["byRequest"]):
            name = f"{path} #{sum(1 for p, _ in k['byRequest'][:i] if p == path) + 1}"
            per.setdefault(name, []).append(b)
    asks = {f"{p} #{sum(1 for q, _ in ks[-1]['asks'][:i] if q == p) + 1}": b for i, (p, b) in enumerate(ks[-1]["asks"])}
    for name, bs in per.items():
        body = asks.get(name)
        what = "the grid (every layer, pooled)" if body is None and name.startswith("/api/attention") else (
            json.dumps({k: v for k, v in body.items() if k not in ("text", "model")}) if body else "")
        print(f"     {name:22} {med(bs) / 1000:8.1f}  {what[:90]}")
    print(f"     {'total':22} {med([k['all'] for k in ks]) / 1000:8.1f}")
    if prof:
        show_profile("CPU profile of keystrokes at %s tokens (V8 sampling, 100 us; %.0f ms per keystroke in the"
                     " page's own code)", prof, per=KEYSTROKES_PROFILED)
    n, d = decode
    print(f"\n   grid decode at {n} tokens ({d['layers']} layers, {d['base64'] / 1e6:.2f} MB of base64):"
          f" decodePattern (api.js) {d['page']:.1f} ms; the same unpacking with a charCodeAt loop for the bytes"
          f" {d['loop']:.1f} ms"
          f" ({d['page'] / d['loop']:.1f}x; output identical: {d['same']})")


def show_profile(title, prof, per, top=16):
    """per: how many events (keystrokes, hovers) the profile covers; times are shown per event."""
    args, (total, incl, selfs) = prof
    if not total:
        return
    print(f"\n   {title % (*args, total / 1000 / per)}:")
    print(f"   {'function (file:line)':58} {'incl. ms':>9} {'incl.':>6} {'self ms':>8} {'self':>6}")
    skip = ("(root)", "(program)", "evaluate", "(anonymous)")
    keep = [k for k in incl if k not in skip and incl[k] < total * 0.999]
    for k in sorted(keep, key=lambda k: -incl[k])[:top]:
        print(f"   {k[:58]:58} {incl[k] / 1000 / per:9.2f} {100 * incl[k] / total:5.1f}%"
              f" {selfs.get(k, 0) / 1000 / per:8.2f} {100 * selfs.get(k, 0) / total:5.1f}%")


def report_hover(n, samples, n_moves, mouse, prof, trace):
    bad = [s for s in samples if not s["ok"]]
    print(f"\n2. hover -> highlight at {n} tokens ({len(samples)} pointerenter events: every chip, both directions)")
    print(f"\n{'what':70} {'median ms':>9} {'p95 ms':>8} {'max ms':>8}")
    rows = [("synthetic, dispatched at frame start: handler (DOM updated, sync)", [s["handler"] for s in samples]),
            ("  then that frame's style + layout + paint", [s["render"] for s in samples]),
            ("  dispatch -> frame rendered", [s["total"] for s in samples]),
            ("  idle frame for comparison (nothing changed): rendering", [s["idle"] for s in samples])]
    done = [m for m in mouse if m["done"] is not None]
    if done:
        rows += [("real mouse (CDP mouse move): event timeStamp -> listener done",
                  [m["handled"] - m["ts"] for m in done]),
                 ("  event timeStamp -> next frame rendered", [m["done"] - m["ts"] for m in done])]
    for label, xs in rows:
        print(f"{label:70} {med(xs):9.2f} {pct(xs, 0.95):8.2f} {max(xs):8.2f}")
    h, t = [s["handler"] for s in samples], [s["total"] for s in samples]
    print(f"   target < 16 ms: handler p95 {pct(h, 0.95):.2f} ms, dispatch -> frame rendered p95 {pct(t, 0.95):.2f} ms;"
          f" highlight in the DOM after every event: {'yes' if not bad else f'NO ({len(bad)} misses)'}"
          f"; real-mouse pointerenter seen: {len(mouse)} of {n_moves} moves")
    offs = [s["off"] for s in samples]
    print(f"   arrows vs. chips once the frame is laid out (largest distance of an arrow end from its chip's centre,"
          f" per hover):\n   median {med(offs):.1f} px, p95 {pct(offs, 0.95):.1f} px, max {max(offs):.1f} px;"
          f" {sum(o > 2 for o in offs)} of {len(offs)} hovers have an arrow end > 2 px off"
          f" (arrows per hover: median {med([s['nPaths'] for s in samples]):.0f})")
    print(f"   chips that moved during the hover (the focused chip turns bold, so wider, after drawArrows measured the"
          f" chips):\n   median {med([s['moved'] for s in samples]):.0f} of {n} per hover; hovers where a chip moved to"
          f" another line: {sum(s['rewrapped'] for s in samples)} of {len(samples)}")
    show_profile("CPU profile of the same hovers (V8 sampling, 50 us; %.2f ms per hover inside drawFocus)",
                 ((), prof), per=len(samples))
    if trace["n"]:
        k = trace["n"]
        print(f"\n   trace of the same hovers (per hover, ms; tracing slows things down):"
              f" listener {trace['handler'] / k:.2f}, with {trace['forced_layouts'] / k:.1f} forced layouts in it")
        print(f"   {'phase':14} {'forced in the listener':>22} {'in the frame':>13}")
        for what in RENDERING.values():
            print(f"   {what:14} {trace['inside'][what] / k:22.2f} {trace['outside'][what] / k:13.2f}")
        print("   forced style recalc + layout in the listener, by the JS line that asked for it (ms per hover):")
        for site, ms in sorted(trace["sites"].items(), key=lambda kv: -kv[1]):
            print(f"     {ms / k:6.2f}  {site}")


def report_load(loads, html_gz):
    print(f"\n3. first load (median of {len(loads)} fresh browser contexts; warm = second navigation in the same"
          " context)")
    print(f"\n{'':5} {'transferred kB':>14} {'bodies kB':>10} {'decoded kB':>10} {'reqs':>5}"
          f" {'HTML end':>8} {'plotly in':>9} {'plotly run':>10} {'DCL':>7} {'FCP':>7} {'views':>7} {'charts':>7} {'ready':>7}"
          "   (ms from navigation start)")
    for idx, kind in enumerate(("cold", "warm")):
        ls = [pair[idx] for pair in loads]
        tr = med([sum(r["transfer"] for r in L["resources"]) for L in ls]) / 1000
        bo = med([sum(r["body"] for r in L["resources"]) for L in ls]) / 1000
        de = med([sum(r["decoded"] for r in L["resources"]) for L in ls]) / 1000
        nreq = med([len(L["resources"]) for L in ls])
        m = {k: med([L[k] for L in ls]) for k in ("docEnd", "plotlyEnd", "plotly", "dcl", "fcp", "views", "chart", "ready")}
        print(f"{kind:5} {tr:14.1f} {bo:10.1f} {de:10.1f} {nreq:5.0f} {m['docEnd']:8.1f} {m['plotlyEnd']:9.1f}"
              f" {m['plotly']:10.1f} {m['dcl']:7.1f} {m['fcp']:7.1f} {m['views']:7.1f} {m['chart']:7.1f} {m['ready']:7.1f}")
    print("   transferred = Resource Timing transferSize (headers + body as sent; 0 from the cache), bodies ="
          " encoded (gzip) sizes, decoded = after gunzip.\n   Times from navigation start: HTML end = page received;"
          " plotly in ="
          " plotly.min.js received; plotly run = it has evaluated (window.Plotly set);\n   DCL = DOMContentLoaded;"
          " FCP = first contentful paint; views = the first views drawn (window.attnscope.painted first set:\n   arrows,"
          " predictions and the heatmap, as its picture if plotly.js has not run yet; target <= 1000 ms cold); charts ="
          " window.attnscope.rendered\n   first set (the heatmap as its interactive plotly chart); ready = body[data-ready='1'].")
    print(f"\n   per resource (last context):  {'':28} {'cold: how':>9} {'bytes':>9}   {'warm: how':>9} {'bytes':>9}"
          f"   {'body':>9} {'decoded':>9}")
    cold, warm = loads[-1]
    wmap = {r["path"]: r for r in warm["resources"]}
    for r in cold["resources"]:
        w = wmap.get(r["path"])
        wk = (kind_of(w, r["body"]), w["transfer"]) if w else ("none", 0)
        print(f"   {r['path'][:58]:58} {kind_of(r, r['body']):>9} {r['transfer']:9d}   {wk[0]:>9} {wk[1]:9d}"
              f"   {r['body']:9d} {r['decoded']:9d}")
    print("   how: net = full body over the network, 304 = revalidated (headers only), cache = no request.")
    if html_gz:
        raw, gz = html_gz
        print(f"   the HTML page is sent uncompressed ({raw} B) even to gzip clients; gzip -6 would make it {gz} B.")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=9, help="distinct texts per size, for each of keystroke and API")
    ap.add_argument("--sizes", default="8,32,128,400")
    ap.add_argument("--hovers", type=int, default=3, help="passes over every chip")
    ap.add_argument("--loads", type=int, default=5, help="fresh browser contexts for the first-load figures")
    ap.add_argument("--no-profile", dest="profile", action="store_false", help="skip the keystroke CPU profile")
    ap.add_argument("--url", help="measure this running server instead of starting one")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    from playwright.sync_api import sync_playwright

    server = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        server = Server()
        print(f"server: starting uvicorn on {server.url} ...", file=sys.stderr, flush=True)
        server.wait_ready()
        url = server.url
    try:
        models = httpx.get(url + "/api/models", timeout=30).json()["models"]
        default = next(m for m in models if m["default"])
        reg = Registry.from_env(extra="", cache_dir=os.environ.get("ATTNSCOPE_CACHE_DIR"))
        texts = Texts(reg.get(default["id"]))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            print(f"Chromium {browser.version} headless; cores {os.cpu_count()}; load average"
                  f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}; server {url}; model {default['id']}")
            ctx = browser.new_context(viewport=VIEWPORT)
            ctx.add_init_script(INIT)
            page = ctx.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready='1']", timeout=60000)
            state = page.evaluate("() => ({...window.attnscope.store.state})")
            print(f"page state: layer {state['layer']}, head {state['head']}, heads {state['heads']},"
                  f" dir {state['dir']}, viewport {VIEWPORT['width']}x{VIEWPORT['height']}")
            cdp = ctx.new_cdp_session(page)

            rows = bench_keystrokes(page, texts, sizes, args.reps, state)
            kprof = ((max(sizes),), profile_keystrokes(page, texts, max(sizes), cdp)) if args.profile else None
            decode = (max(sizes), page.evaluate(DECODE, [rows[-1][1][-1]["text"], state["model"]]))
            hover = bench_hover(page, texts, args.hovers, cdp)
            ctx.close()
            loads = bench_load(browser, url, args.loads)
            browser.close()
        html = httpx.get(url + "/", headers={"Accept-Encoding": "gzip"}, timeout=30)
        html_gz = None if html.headers.get("content-encoding") == "gzip" else (
            len(html.content), len(gzip.compress(html.content, 6)))
    finally:
        if server:
            server.close()
    report_keystrokes(rows, args.reps, kprof, decode)
    report_hover(*hover)
    report_load(loads, html_gz)
    if errors:
        print(f"\npage errors during the run: {errors[:5]}")


if __name__ == "__main__":
    main()
