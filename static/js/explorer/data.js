// The explorer's data layer: what the views need from the server, each need keyed by the part of the
// state it depends on (keyOf is the one key function), a cache of answers by key, and the rules of
// staleness:
// - a view draws only data whose key equals the key of the current state (views.js checks);
// - want(keys) starts a fetch for every wanted key the cache lacks, and aborts an in-flight fetch
//   only when no current view wants its key any more: a newer need never cancels another view's;
// - an answer that arrives for a key nobody wants any more is kept (a step back is then instant),
//   within a per-need limit (least recently used out first).

import { ApiError, decodePattern, request } from "../api.js";
import { shownThen } from "../store.js";

// what every need runs: the text, and the ids written after it that the timeline shows (run as written)
const input = (s) => ({ text: s.text, model: s.model, ...(shownThen(s).length ? { then: shownThen(s) } : {}) });
// The layer's heads as bytes (value = byte x scale, steps of 1/255 of the largest: what the arrows, lines and
// chips draw, where a step is a 0.02 px stroke); every number the page prints comes from the head need's floats.
const attentionOne = (s) => ({ ...input(s), layers: [s.layer], measure: s.measure, encoding: "uint8" });
// what the selected head's view prints: its exact weights, or what it moved
const exactPart = (s) => (s.measure === "moved" ? "moved" : "pattern");

// What the views scale a head by: 1 for weights; for moved (raw norms) the head's largest value, so
// that its strongest carry draws as strongly as a weight of 1. values: any iterable of numbers.
export function peak(measure, values) {
  if (measure !== "moved") return 1;
  let m = 0;
  for (const v of values) if (v > m) m = v;
  return m || 1;
}

// need -> {fields: the state it depends on, limit: answers kept, ask(state) -> [path, body],
//          accept(answer, state) -> what the views get}
export const NEEDS = {
  attention: { fields: ["model", "text", "shown", "layer", "measure"], limit: 32, ask: (s) => ["/api/attention", attentionOne(s)],
    accept: (r, s) => {
      const a = r.attention[String(s.layer)], flat = decodePattern(a), [H, n] = a.shape, measure = r.measure ?? "weight";
      return { tokens: r.tokens, text: r.text, pattern: patternRows(flat, H, n), causal: r.causal, measure,
        peaks: Array.from({ length: H }, (_, h) => peak(measure, flat.subarray(h * n * n, (h + 1) * n * n))) };
    } },
  // the selected head exactly (floats): the heatmap's cells, the description's numbers. The hover's second
  // number (the scores beside the weights, or the weights beside what moved) is fetched on hover (hoverPart).
  head: { fields: ["model", "text", "shown", "layer", "head", "measure"], limit: 32,
    ask: (s) => ["/api/head", { ...input(s), layer: s.layer, head: s.head, parts: [exactPart(s)] }],
    accept: (r, s) => { const rows = r[exactPart(s)]; return { rows, peak: peak(s.measure, rows.flat()) }; } },
  // every layer's pattern as uint8 (one byte a weight), max-pooled into at most GRID_POOL x GRID_POOL blocks
// (a thumbnail's pixels: a sharp weight never vanishes), decoded once: [layer] -> Float32Array [H*n*n]
  grid: { fields: ["model", "text", "shown", "measure"], limit: 2,
    ask: (s) => ["/api/attention", { ...input(s), encoding: "uint8", measure: s.measure, pool: GRID_POOL }], accept: decodeGrid },
  attribution: { fields: ["model", "text", "shown", "whyAt", "whyTarget", "whyVs"], limit: 16,
    ask: (s) => ["/api/attribution", { ...input(s), position: s.whyAt, target: s.whyTarget,
      ...(s.whyVs >= 0 ? { contrast: s.whyVs } : {}) }], accept: (r) => r },
  predictions: { fields: ["model", "text", "shown", "temperature", "headsOff", "offMode"], limit: 32,
    ask: (s) => ["/api/predictions", { ...input(s), top_k: 10, temperature: s.temperature,
      ablate: s.headsOff.map((k) => k.split(".").map(Number)), ablate_mode: s.offMode }], accept: (r) => r },
};

// "shown" is derived: the ids the views run (shownThen), so that a step of the timeline is a key of its own
export const keyOf = (need, s) => JSON.stringify([need, ...NEEDS[need].fields.map((f) => (f === "shown" ? shownThen(s) : s[f]))]);

// the heatmap hover's second number for state s: [path, body] of the request that has it
export const hoverPart = (s) => ["/api/head", { ...input(s), layer: s.layer, head: s.head,
  parts: [s.measure === "moved" ? "pattern" : "scores"] }];

// A decoded [H*n*n] pattern -> [head][query] rows (Float32Array views of it, no copy)
export function patternRows(flat, H, n) {
  return Array.from({ length: H }, (_, h) => Array.from({ length: n }, (_, i) => flat.subarray((h * n + i) * n, (h * n + i + 1) * n)));
}

export const GRID_POOL = 64;  // app/payloads.py GRID_POOL; static/js/views/grid.js MAX_PIXELS

// n: the side of each decoded pattern (the tokens, or the pooled blocks of a longer text)
export function decodeGrid(r) {
  const data = {}, peaks = {};
  const n = r.pool ? r.pool.edges.length - 1 : r.tokens.length, measure = r.measure ?? "weight";
  for (const [L, a] of Object.entries(r.attention)) {
    data[L] = decodePattern(a);
    peaks[L] = Array.from({ length: r.n_heads }, (_, h) => peak(measure, data[L].subarray(h * n * n, (h + 1) * n * n)));
  }
  return { tokens: r.tokens, data, peak: peaks, n, nLayers: r.n_layers, nHeads: r.n_heads, causal: r.causal, measure };
}

// An answer that says the input itself is wrong (4xx) stays wrong for that key; any other failure
// (overload, network) is tried again on the next change of state.
const final = (e) => e instanceof ApiError && e.status >= 400 && e.status < 500;

// entries: key -> {need, status: "pending" | "ready" | "error", value, error, ctrl}
export class DataCache extends EventTarget {
  constructor() {
    super();
    this.entries = new Map();
  }

  // the entry of key, or undefined
  get(key) {
    return this.entries.get(key);
  }

  // data that arrived with the page (the server's inline first view), as if fetched for state s; no
  // event (the page draws once it has put them all)
  put(need, s, answer) {
    this.entries.set(keyOf(need, s), { need, status: "ready", value: NEEDS[need].accept(answer, s) });
  }

  // wanted: Map key -> {need, state}. Fetch what is missing, abort what nobody wants any more.
  want(wanted) {
    for (const [key, e] of this.entries)
      if (e.status === "pending" && !wanted.has(key)) {
        e.ctrl.abort();
        this.entries.delete(key);
      }
    for (const [key, { need, state }] of wanted) {
      const e = this.entries.get(key);
      if (!e || (e.status === "error" && !final(e.error))) this.fetch(key, need, state);
      else this.touch(key);
    }
  }

  async fetch(key, need, state) {
    const ctrl = new AbortController();
    const entry = { need, status: "pending", ctrl };
    this.entries.set(key, entry);
    const [path, body] = NEEDS[need].ask(state);
    let done;
    try {
      done = { need, status: "ready", value: NEEDS[need].accept(await request(path, body, ctrl.signal), state) };
    } catch (error) {
      if (error.name === "AbortError") return;
      done = { need, status: "error", error };
    }
    if (this.entries.get(key) !== entry) return;  // aborted and dropped meanwhile
    this.settle(key, done);
  }

  settle(key, entry) {
    this.entries.delete(key);
    this.entries.set(key, entry);  // newest last
    this.trim(entry.need);
    this.dispatchEvent(new CustomEvent("data", { detail: key }));
  }

  touch(key) {
    const e = this.entries.get(key);
    this.entries.delete(key);
    this.entries.set(key, e);
  }

  trim(need) {
    const done = [...this.entries].filter(([, e]) => e.need === need && e.status !== "pending");
    for (const [key] of done.slice(0, Math.max(0, done.length - NEEDS[need].limit))) this.entries.delete(key);
  }
}
