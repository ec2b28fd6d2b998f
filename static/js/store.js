// One small store for the view state. Views listen for "change" events; the URL mirrors the
// state so that every view is a permalink.

const URL_KEYS = { text: "text", model: "model", layer: "layer", head: "head", token: "token", locked: "locked",
  dir: "dir", heads: "heads", temperature: "t", headsOff: "off", offMode: "offmode", measure: "measure",
  whyAt: "at", whyTarget: "target", whyVs: "vs" };

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
      if (k === "heads" || k === "headsOff") v = v.join(",");
      if ((k === "offMode" && v === "zero") || (k === "measure" && v === "weight")) v = "";  // the defaults stay out
      if (k === "locked") v = v ? "1" : "";
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
  };
}

// The prediction explained (at: position, target and vs: token ids; -1 for none), as the URL said it.
function whyFromInitial(s) {
  const int = (v) => (/^\d+$/.test(String(v ?? "")) ? Number(v) : -1);
  const target = int(s.target);
  return { whyAt: target >= 0 ? int(s.at) : -1, whyTarget: target, whyVs: target >= 0 ? int(s.vs) : -1 };
}
