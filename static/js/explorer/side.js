// Side B: the same sentence in a second model, beside the explorer's own (side A). The URL holds it
// (cmp: the model, cmpl / cmph: its layer and head); "" for cmp is the one-model explorer.
// Side B draws its arrows, the selected head's heatmap and its next-token predictions from the same
// data cache as side A, under the same rule (views.js): a part is drawn only from data whose key equals
// the key of side B's current state (sideState), and says it is waiting until that data is in, so a
// late answer for B's old model, layer or head never shows under its new header.
// A token hovered or locked on one side highlights, on the other, the tokens whose characters overlap
// it (each token carries its start/end span): the two tokenizers cut the same text differently.
// The written-text timeline (then/upto) is side A's: its ids are A's vocabulary, so side B reads the
// text those ids spell (the sentence box's text at that step) as plain text. B then sees the same
// characters, not the same ids; disabling B during a timeline would hide the very comparison asked for.

import { $, el } from "../dom.js";
import { plotlyReady } from "../plotly.js";
import { tokenFocus } from "../focus.js";
import { Store } from "../store.js";
import { legendAfter } from "../tokens.js";
import { drawArrows } from "../views/arrows.js";
import { drawHeatmap, drawHeatmapPreview } from "../views/heatmap.js";
import { drawPredictions } from "../views/predictions.js";
import { keyOf } from "./data.js";
import { hoverDetail } from "./views.js";

// tokens of one side that overlap the characters [a, b) (special tokens have no characters)
export const overlapping = (tokens, a, b) => (b <= a ? [] : tokens.flatMap((t, i) => (t.end > t.start && t.start < b && t.end > a ? [i] : [])));

// Side B's state for the explorer state s (null: no side B, or nothing to run yet). shownText(s): the
// text the sentence box shows (with what was written up to the timeline's step; null while unknown).
export function sideState(s, shownText) {
  if (!s.cmp || s.text === "" || s.writing) return null;
  const text = shownText(s);
  if (text === null) return null;
  return { text, model: s.cmp, layer: s.cmpLayer, head: s.cmpHead, measure: s.measure, then: [], upto: -1,
    temperature: s.temperature, headsOff: [], offMode: "zero", dir: s.dir };
}

const NEEDS_OF = (causal) => ["attention", "head", ...(causal ? ["predictions"] : [])];

export function sideView({ store, cache, models, shownText, mainData, mainChips }) {
  const focus = new Store({ token: -1, locked: false });  // B's own hover and lock (not in the URL)
  const hands = tokenFocus(focus);
  const panel = $("side-panel"), layer = $("cmp-layer"), head = $("cmp-head");
  let shown = { stamp: null, drawing: null, again: false, heat: null };

  layer.addEventListener("input", () => store.set({ cmpLayer: Number(layer.value) }));
  head.addEventListener("change", () => store.set({ cmpHead: Number(head.value) }));
  $("cmp").replaceChildren(new Option("no second model", ""), ...Object.values(models).map((m) => new Option(m.name, m.id)));
  $("cmp").addEventListener("change", () => openWith($("cmp").value));
  $("cmp-close").addEventListener("click", () => openWith(""));
  $("cmp-model").replaceChildren(...Object.values(models).map((m) => new Option(m.name, m.id)));
  $("cmp-model").addEventListener("change", () => openWith($("cmp-model").value));
  function openWith(id) {
    if (!id) return store.set({ cmp: "", cmpLayer: 0, cmpHead: 0 });
    const m = models[id];
    focus.set({ token: -1, locked: false });
    store.set({ cmp: id, cmpLayer: Math.min(store.get("cmpLayer"), m.n_layers - 1), cmpHead: Math.min(store.get("cmpHead"), m.n_heads - 1) });
  }
  focus.addEventListener("change", () => render(new Set(["token"])));

  const keysOf = (b) => NEEDS_OF(models[b.model].causal).map((n) => keyOf(n, b));
  // what B needs fetched now: Map key -> {need, state}, merged with side A's by main.js
  function wanted() {
    const b = sideState(store.state, shownText);
    const out = new Map();
    if (b) for (const n of NEEDS_OF(models[b.model].causal)) out.set(keyOf(n, b), { need: n, state: b });
    return out;
  }

  // the token B focuses: its own, else the last of B's tokens overlapping A's focused one
  function linkedFromA(bTokens) {
    const a = mainData(), t = a?.tokens?.[store.get("token")];
    return t ? overlapping(bTokens, t.start, t.end) : [];
  }

  // the header and pickers say B's current state at once; the numbers follow when its data is in
  function showControls(s) {
    document.body.classList.toggle("split", !!s.cmp);
    panel.hidden = !s.cmp;
    $("cmp").value = s.cmp;
    $("side-a-name").hidden = !s.cmp;
    if (!s.cmp) return;
    const m = models[s.cmp], a = models[s.model];
    $("cmp-model").value = s.cmp;
    $("side-a-name").textContent = `A · ${a.name} · layer ${s.layer} · head ${s.head}`;
    $("side-b-name").textContent = `B · ${m.name} · layer ${s.cmpLayer} · head ${s.cmpHead}`;
    layer.max = String(m.n_layers - 1);
    layer.value = String(s.cmpLayer);
    $("cmp-layer-out").textContent = `${s.cmpLayer} / ${m.n_layers - 1}`;
    if (head.options.length !== m.n_heads) head.replaceChildren(...Array.from({ length: m.n_heads }, (_, h) => new Option(String(h), String(h))));
    head.value = String(s.cmpHead);
    $("side-timeline").hidden = !s.then.length;
  }

  function ready(b) {
    if (!b) return null;
    const data = {};
    for (const k of keysOf(b)) {
      const e = cache.get(k);
      if (e?.status !== "ready") return null;
      data[e.need] = e.value;
    }
    return { data, stamp: JSON.stringify(keysOf(b)) };
  }

  const errorOf = (b) => (b ? keysOf(b).map((k) => cache.get(k)).find((e) => e?.status === "error")?.error : null);

  // the tokens of A and B compared: said when the tokenizers cut the text differently
  function tokenizerNote(aTokens, bTokens) {
    const same = aTokens.length === bTokens.length && aTokens.every((t, i) => t.start === bTokens[i].start && t.end === bTokens[i].end);
    return same ? "Both models cut this text into the same tokens."
      : `The two tokenizers differ: A reads ${aTokens.length} tokens, B reads ${bTokens.length}. Hover a token on one side to see which tokens of the other share its characters.`;
  }

  // A's chips whose characters overlap B's focused token (and none when B focuses nothing)
  function linkA(bTokens, bToken) {
    const chips = mainChips() ?? [], a = mainData();
    const t = bTokens?.[bToken];
    const hit = new Set(t && a ? overlapping(a.tokens, t.start, t.end) : []);
    chips.forEach((c, i) => c.classList.toggle("linked", hit.has(i)));
  }

  async function drawB(data, b) {
    const own = focus.get("token");
    const linked = linkedFromA(data.attention.tokens);
    const token = own >= 0 && own < data.attention.tokens.length ? own : (linked.at(-1) ?? -1);
    const g = drawArrows($("side-arrows"), data.attention, { heads: [b.head], token, dir: b.dir, focus: hands });
    g.chips.forEach((c, i) => c.classList.toggle("linked", own < 0 && linked.includes(i)));
    legendAfter($("side-arrows"), data.attention.tokens);
    linkA(data.attention.tokens, own);
    const a = mainData();
    $("side-tokens").textContent = a ? tokenizerNote(a.tokens, data.attention.tokens) : "";
    drawPredictions($("side-predictions"), { tokens: data.predictions?.tokens ?? [], predictions: data.predictions?.predictions ?? null },
      { position: token, temperature: b.temperature });
    const heat = { tokens: data.attention.tokens, pattern: data.head.rows, causal: data.attention.causal, measure: data.attention.measure, peak: data.head.peak };
    const opts = { layer: b.layer, head: b.head, token, dir: b.dir, onCellClick: (q) => hands.toggle(q) };
    if (!window.Plotly) return drawHeatmapPreview($("side-heatmap"), heat, opts);
    return drawHeatmap($("side-heatmap"), heat, { ...opts, detail: hoverDetail(b) });
  }

  function paint(b, fresh) {
    panel.classList.toggle("updating", !!b && !fresh);
    let note = panel.querySelector(":scope > .updating-note");
    const e = errorOf(b);
    const says = e ? `B could not run: ${e.message}` : b ? `waiting for ${models[b.model].name} · layer ${b.layer} · head ${b.head}…` : "";
    if (b && !fresh && !note) panel.append(note = el("p", { className: "updating-note", attrs: { "aria-live": "polite" } }));
    if (note) { if (!b || fresh) note.remove(); else if (note.textContent !== says) note.textContent = says; }
    const marker = b && fresh ? { text: b.text, model: b.model, layer: b.layer, head: b.head, preview: !!shown.heat?.preview } : null;
    if (JSON.stringify(marker) !== JSON.stringify(window.attnscope.side)) window.attnscope.side = marker;
  }

  // draw B from its current state's data (serialised like views.js: an async draw ends before the next)
  function draw() {
    if (shown.drawing) { shown.again = true; return shown.drawing; }
    shown.drawing = (async () => {
      do {
        shown.again = false;
        const b = sideState(store.state, shownText), r = ready(b);
        if (!r) break;
        shown.heat = await drawB(r.data, b);
        shown.stamp = r.stamp;
      } while (shown.again);
      shown.drawing = null;
      const b = sideState(store.state, shownText);
      paint(b, fresh(b));
    })();
    return shown.drawing;
  }

  const fresh = (b) => !!b && !shown.drawing && shown.stamp === ready(b)?.stamp;

  function render(changed = new Set(), { resized = false } = {}) {
    const s = store.state;
    if (!changed.size || ![...changed].every((k) => k === "token" || k === "locked")) showControls(s);
    if (changed.has("cmp") || changed.has("text")) focus.set({ token: -1, locked: false });
    const b = sideState(s, shownText), r = ready(b);
    if (r && (r.stamp !== shown.stamp || resized || changed.has("token") || changed.has("locked") || changed.has("dir") || (window.Plotly && shown.heat?.preview))) draw();
    paint(b, fresh(b));
  }

  showControls(store.state);
  plotlyReady().then(() => render());  // a heatmap drawn as its picture before plotly.js was in becomes the chart
  return {
    wanted, render,
    // true once B shows its current state (or there is no B, or its data failed)
    settled: () => { const b = sideState(store.state, shownText); return !b || fresh(b) || !!errorOf(b); },
    release: () => hands.release(),
  };
}
