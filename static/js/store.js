// One small store for the view state. Views listen for "change" events; the URL mirrors the
// state so that every view is a permalink.

const URL_KEYS = { text: "text", model: "model", layer: "layer", head: "head", token: "token", locked: "locked",
  dir: "dir", heads: "heads", temperature: "t", headsOff: "off", offMode: "offmode", measure: "measure",
  whyAt: "at", whyTarget: "target", whyVs: "vs",
  // what the model wrote after the text (its ids), how many of them the views show (the timeline), how it wrote
  then: "then", upto: "upto", writeN: "n", writeT: "wt", topK: "topk", topP: "topp", seed: "seed", chat: "chat",
  // a second model beside the first (explorer/side.js): its id, and its own layer and head
  cmp: "cmp", cmpLayer: "cmpl", cmpHead: "cmph" };

export class Store extends EventTarget {
  constructor(state) {
    super();
    this.state = { ...state };
  }

  get(key) {
    return this.state[key];
  }

  // set({key: value, ...}): emits one "change" event whose detail lists the keys that changed
  set(patch) {
    const changed = [];
    for (const [k, v] of Object.entries(patch)) {
      if (!sameValue(this.state[k], v)) {
        this.state[k] = v;
        changed.push(k);
      }
    }
    if (changed.length) this.dispatchEvent(new CustomEvent("change", { detail: new Set(changed) }));
    return changed.length > 0;
  }

  on(keys, fn) {
    const wanted = new Set(keys);
    this.addEventListener("change", (e) => {
      if ([...e.detail].some((k) => wanted.has(k))) fn(this.state, e.detail);
    });
  }

  toURL() {
    return `${location.pathname}?${this.query()}`;
  }

  query() {
    const params = new URLSearchParams();
    for (const [k, name] of Object.entries(URL_KEYS)) {
      let v = this.state[k];
      if (k === "heads" || k === "headsOff" || k === "then") v = v.join(",");
      if (k === "upto" && (v < 0 || !this.state.then.length)) v = "";
      if (k === "chat") v = v ? "1" : "";
      if ((k === "offMode" && v === "zero") || (k === "measure" && v === "weight")) v = "";  // the defaults stay out
      if (k === "locked") v = v ? "1" : "";
      if ((k === "cmpLayer" || k === "cmpHead") && !this.state.cmp) v = "";
      if ((k === "token" || k.startsWith("why")) && v < 0) v = "";
      if (v !== "" && v !== undefined && v !== null) params.set(name, String(v));
    }
    return params.toString();
  }
}

function sameValue(a, b) {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => x === b[i]);
  return a === b;
}

// The state from the server's reading of the URL (it validated and clamped it)
export function stateFromInitial(s) {
  const heads = String(s.heads || "").split(",").filter((x) => x !== "").map(Number).filter(Number.isInteger);
  return {
    text: s.text, model: s.model, layer: s.layer, head: s.head, token: s.token ?? -1, locked: !!s.locked,
    dir: s.dir === "in" ? "in" : "out", heads: heads.length ? heads : [s.head], temperature: Math.min(100, Math.max(0.1, Number(s.temperature) || 1)),
    headsOff: String(s.off || "").split(",").filter((x) => /^\d+\.\d+$/.test(x)), offMode: s.offmode === "mean" ? "mean" : "zero",
    measure: s.measure === "moved" ? "moved" : "weight",
    ...whyFromInitial(s),
    ...writtenFromInitial(s),
    cmp: s.cmp || "", cmpLayer: Number.isInteger(s.cmpl) ? s.cmpl : 0, cmpHead: Number.isInteger(s.cmph) ? s.cmph : 0,
  };
}

// The ids the views run after the text: the first `upto` written (all of them when upto is -1).
export const shownThen = (s) => (s.upto < 0 ? s.then : s.then.slice(0, s.upto));

// What was written and how, as the server read the URL (then, upto) and as it said (write: raw strings).
function writtenFromInitial(s) {
  const w = s.write ?? {};
  const num = (v, lo, hi) => (v !== "" && v !== undefined && Number.isFinite(Number(v)) && Number(v) >= lo && Number(v) <= hi ? Number(v) : "");
  return { then: Array.isArray(s.then) ? s.then : [], upto: Number.isInteger(s.upto) ? s.upto : -1,
    writeN: num(w.n, 1, 128) || 20, writeT: num(w.wt, 0, 100) === "" ? 0 : num(w.wt, 0, 100),
    topK: Number.isInteger(num(w.topk, 1, 1e6)) ? num(w.topk, 1, 1e6) : "", topP: num(w.topp, 1e-6, 1),
    seed: Number.isInteger(num(w.seed, 0, Number.MAX_SAFE_INTEGER)) ? num(w.seed, 0, Number.MAX_SAFE_INTEGER) : "", chat: w.chat === "1" };
}

// The prediction explained (at: position, target and vs: token ids; -1 for none), as the URL said it.
function whyFromInitial(s) {
  const int = (v) => (/^\d+$/.test(String(v ?? "")) ? Number(v) : -1);
  const target = int(s.target);
  return { whyAt: target >= 0 ? int(s.at) : -1, whyTarget: target, whyVs: target >= 0 ? int(s.vs) : -1 };
}
