// The explorer's views, bound to the state and the data layer. Each view says which data it needs
// (needs: drawn only when all are ready for the current state's keys; uses: drawn when ready, never
// waited for) and which other parts of the state it shows (on). render() draws every view whose
// data is ready for the current keys, and marks the others "updating" (dimmed, with a note) until
// theirs arrive: a view never shows another state's numbers. Each draw returns what its export
// needs (geometry), kept here for exports.js.

import { $, el } from "../dom.js";
import { plotlyReady } from "../plotly.js";
import { drawArrows } from "../views/arrows.js";
import { drawAttribution } from "../views/attribution.js";
import { describe } from "../views/describe.js";
import { drawGrid } from "../views/grid.js";
import { drawHeatmap, drawHeatmapPreview } from "../views/heatmap.js";
import { drawLines } from "../views/lines.js";
import { drawPredictions } from "../views/predictions.js";
import { label, legendAfter } from "../tokens.js";
import { shownThen } from "../store.js";
import { hoverPart, keyOf } from "./data.js";
import { request } from "../api.js";

// The heatmap hover's second number for state s, fetched once per state (the last few kept): (query, key)
// -> a promise of it. The whole head's numbers come in one request, asked for on the first hover only
// (a 400-token text's scores are ~230 kB: too much to send with every keystroke for a hover that may not come).
const HOVER_KEPT = 4;
const hovers = new Map();  // JSON of the request -> promise of its rows
export function hoverDetail(s) {
  const [path, body] = hoverPart(s), part = body.parts[0], key = JSON.stringify([path, body]);
  return (i, j) => {
    let rows = hovers.get(key);
    if (!rows) {
      rows = request(path, body).then((r) => r[part]);
      rows.catch(() => hovers.get(key) === rows && hovers.delete(key));  // a failure is asked again on the next hover
      hovers.set(key, rows);
      for (const k of hovers.keys()) if (hovers.size > HOVER_KEPT) hovers.delete(k);
    }
    return rows.then((r) => r[i][j]);
  };
}

// spec: {panel, needs, uses?, on: state keys it shows, draw(data, state) -> geometry (or a promise)}
function specs({ models, focus, pickHead, store, record, append }) {
  const causal = (s) => models[s.model].causal;
  const explain = (s) => causal(s) && s.whyTarget >= 0;
  return {
    arrows: { panel: "arrows-panel", needs: ["attention"], on: ["heads", "token", "dir", "locked"], draw: ({ attention: a }, s) => {
      const g = drawArrows($("arrows"), a, { heads: s.heads, token: s.token, dir: s.dir, focus });
      legendAfter($("arrows"), a.tokens);
      $("lock").hidden = !(s.locked && s.token >= 0);
      if (!$("lock").hidden) $("lock-token").textContent = g.chips[s.token]?.textContent ?? "";
      return g;
    } },
    // it prints numbers: the selected head's exact values (head), not the bytes the arrows draw
    describe: { panel: "arrows-panel", needs: ["attention", "head"], on: ["token", "dir"], draw: ({ attention: a, head }, s) => {
      $("describe").textContent = describe({ tokens: a.tokens, pattern: { [s.head]: head.rows }, layer: s.layer, head: s.head, token: s.token,
        dir: s.dir, causal: a.causal, measure: a.measure });
    } },
    // The cells are the head's exact values (the hover prints them); the hover's second number (the
    // score, or the weight beside what moved) is fetched when a cell is first hovered, for that state.
    // Before plotly.js is in (a first load), a picture of the same cells (drawHeatmapPreview), replaced by
    // the chart once it is: the geometry says preview, and render() draws the view again when plotly is ready.
    heatmap: { panel: "heatmap-panel", needs: ["attention", "head"], on: ["head", "token", "dir"], draw: async ({ attention: a, head }, s) => {
      legendAfter($("heatmap"), a.tokens);
      const data = { tokens: a.tokens, pattern: head.rows, causal: a.causal, measure: a.measure, peak: head.peak };
      if (!window.Plotly) return drawHeatmapPreview($("heatmap"), data, { layer: s.layer, head: s.head, token: s.token, dir: s.dir });
      return drawHeatmap($("heatmap"), data,
        { layer: s.layer, head: s.head, token: s.token, dir: s.dir, onCellClick: (q) => focus.toggle(q), detail: hoverDetail(s) });
    } },
    lines: { panel: "lines-panel", needs: ["attention"], on: ["heads", "token", "dir"], draw: ({ attention: a }, s, resized) =>
      drawLines($("lines"), a, { heads: s.heads, token: s.token, dir: s.dir, focus, remeasure: resized }) },
    grid: { panel: "grid-panel", needs: ["grid"], on: ["layer", "head", "headsOff"], draw: ({ grid }, s) =>
      drawGrid($("grid"), grid, { layer: s.layer, head: s.head, headsOff: causal(s) ? s.headsOff : [], onPick: pickHead }) },
    // an encoder predicts nothing: the view then needs no data and says so
    // at a step of the timeline, the token written next is marked (and how likely it was as written);
    // after the last token, any prediction can be written next with one click
    predictions: { panel: "predictions-panel", needs: (s) => (causal(s) ? ["predictions"] : []), on: ["model", "token", "temperature", "headsOff", "whyAt", "whyTarget", "record", "writing"],
      draw: ({ predictions: p }, s) => {
        const k = shownThen(s).length, last = (p?.tokens.length ?? 0) - 1;
        const at = s.token >= 0 && s.token <= last ? s.token : last;
        const later = s.upto >= 0 && at === last ? { id: s.then[k], ...(record(s)?.tokens[k] ?? {}) } : null;
        return drawPredictions($("predictions"), { tokens: p?.tokens ?? [], predictions: p?.predictions ?? null, original: p?.original ?? null },
          { position: s.token, headsOff: s.headsOff, temperature: s.temperature, chosen: s.whyAt >= 0 ? [s.whyAt, s.whyTarget] : null,
            onPick: (i, id) => store.set({ whyAt: i, whyTarget: id, whyVs: -1 }), writtenNext: later,
            onAppend: at === last && !s.writing && !s.headsOff.length ? append : null });
      } },
    // why this prediction: only once a predicted token was picked (an encoder predicts nothing)
    why: { panel: "why-panel", needs: (s) => (explain(s) ? ["attribution"] : []), uses: ["predictions"], on: ["model"], draw: async ({ attribution: a, predictions: p }, s) => {
      $("why-panel").hidden = !causal(s);
      const vs = $("why-vs");
      $("why-vs-row").hidden = !a;
      if (!a) return $("why").replaceChildren(el("p", { className: "muted", textContent: "No token picked yet: click one in the list of next tokens." }));
      const options = (p?.predictions?.[s.whyAt] ?? []).filter((t) => t.id !== s.whyTarget);
      vs.replaceChildren(new Option("nothing (the logit itself)", "-1"), ...options.map((t) => new Option(label(t), String(t.id))));
      if (s.whyVs >= 0 && !options.some((t) => t.id === s.whyVs)) vs.append(new Option(label(a.contrast), String(s.whyVs)));
      vs.value = String(s.whyVs);
      await plotlyReady();
      return drawAttribution($("why"), a, { onPickHead: (L, H) => store.set({ layer: L, head: H, heads: [H] }) }).drawn;
    } },
  };
}

const needsOf = (spec, s) => (typeof spec.needs === "function" ? spec.needs(s) : spec.needs);

// The needs of every view for state s: Map key -> {need, state} (nothing for an empty text). The
// grid (every layer) is asked for once the first views' data is in, or is already on its way: its
// encoding would otherwise share the server with theirs and slow the views a keystroke is for.
export function wanted(s, models, cache) {
  const out = new Map();
  if (s.text === "" || s.writing) return out;  // while the model writes, its tokens stream in: the views wait for the end
  const causal = models[s.model].causal;
  const first = ["attention", "head", ...(causal ? ["predictions"] : []), ...(causal && s.whyTarget >= 0 ? ["attribution"] : [])];
  for (const need of first) out.set(keyOf(need, s), { need, state: { ...s } });
  const grid = keyOf("grid", s);
  if (cache.get(grid) || first.every((n) => cache.get(keyOf(n, s))?.status === "ready")) out.set(grid, { need: "grid", state: { ...s } });
  return out;
}

export function explorerViews({ store, cache, models, focus, pickHead, onError, record, append }) {
  const all = specs({ models, focus, pickHead, store, record, append });
  // name -> {stamp: the keys of the data last drawn, geometry, drawing: a promise while a draw runs}
  const shown = Object.fromEntries(Object.keys(all).map((name) => [name, { stamp: null, geometry: null, drawing: null, again: false }]));

  const keysFor = (spec, s) => ({ need: needsOf(spec, s).map((n) => keyOf(n, s)), use: (spec.uses ?? []).map((n) => keyOf(n, s)) });
  const stampOf = (keys) => JSON.stringify([...keys.need, ...keys.use.map((k) => (cache.get(k)?.status === "ready" ? k : ""))]);

  // the data of a view for s if all it needs is ready, else null
  function dataFor(spec, s) {
    const keys = keysFor(spec, s);
    const data = {};
    for (const k of keys.need) {
      const e = cache.get(k);
      if (e?.status !== "ready") return null;
      data[e.need] = e.value;
    }
    for (const k of keys.use) {
      const e = cache.get(k);
      if (e?.status === "ready") data[e.need] = e.value;
    }
    return { data, stamp: stampOf(keys) };
  }

  // Draw view name from the current state (serialised: an async draw finishes before the next starts).
  function draw(name, resized = false) {
    const v = shown[name];
    if (v.drawing) {
      v.again = true;
      v.resized ||= resized;
      return v.drawing;
    }
    v.drawing = (async () => {
      do {
        v.again = false;
        const s = store.state;
        const ready = dataFor(all[name], s);
        if (!ready) break;
        try {
          v.geometry = await all[name].draw(ready.data, s, resized || v.resized);
          v.resized = false;
          v.stamp = ready.stamp;
        } catch (e) {
          onError(e);
          break;
        }
      } while (v.again);
      v.drawing = null;
      paintStatus();
    })();
    return v.drawing;
  }

  const fresh = (name) => {
    const v = shown[name];
    const s = store.state;
    return !v.drawing && s.text !== "" && v.stamp === stampOf(keysFor(all[name], s));
  };
  // fresh, and drawn in full (not the heatmap's picture before plotly.js is in)
  const complete = (name) => fresh(name) && !shown[name].geometry?.preview;

  // Dim every panel with a view that is not drawn from the current state's data, and say so.
  function paintStatus() {
    const s = store.state;
    const panels = new Map();
    for (const [name, spec] of Object.entries(all)) panels.set(spec.panel, (panels.get(spec.panel) ?? true) && (s.text === "" || fresh(name)));
    for (const [id, ok] of panels) {
      const panel = $(id);
      panel.classList.toggle("updating", !ok);
      panel.classList.toggle("empty", s.text === "");
      let note = panel.querySelector(":scope > .updating-note");
      const says = s.writing ? "the model is writing: the views follow when it stops…" : "updating…";
      if (!ok && !note) panel.append(note = el("p", { className: "updating-note", textContent: says, attrs: { "aria-live": "polite" } }));
      if (!ok && note.textContent !== says) note.textContent = says;
      if (ok && note) note.remove();
    }
    if ($("empty").hidden !== (s.text !== "")) $("empty").hidden = s.text !== "";  // writes only on a change
    // the markers tests and bench/frontend.py wait on: the state the main views show (null: not yet), in
    // full (rendered: the heatmap as its chart), or first painted (painted: the heatmap's picture will do)
    const state = { text: s.text, then: shownThen(s), model: s.model, layer: s.layer, head: s.head };
    const views = (f) => f("arrows") && f("heatmap") && f("predictions");
    const marker = views(complete) ? { ...state, grid: complete("grid") } : null;
    const painted = views(fresh) ? { ...state, preview: !complete("heatmap") } : null;
    if (JSON.stringify(marker) !== JSON.stringify(window.attnscope.rendered)) window.attnscope.rendered = marker;
    if (JSON.stringify(painted) !== JSON.stringify(window.attnscope.painted)) window.attnscope.painted = painted;
  }

  // After a change of state (changed: its keys) or the arrival of data, or a resize.
  function render(changed = new Set(), { resized = false } = {}) {
    const s = store.state;
    for (const [name, spec] of Object.entries(all)) {
      const ready = dataFor(spec, s);
      const v = shown[name];
      const upgrade = v.geometry?.preview && window.Plotly;  // a picture drawn before plotly.js was in: now the chart
      if (ready && (ready.stamp !== v.stamp || resized || upgrade || spec.on.some((k) => changed.has(k)))) draw(name, resized);
    }
    paintStatus();
  }

  plotlyReady().then(() => render(), onError);  // the pictures drawn before it arrived become charts
  return {
    render,
    fresh,
    geometry: (name) => shown[name].geometry,
    // resolves once view name shows the current state (a draw in flight or the data still on its way)
    async whenFresh(name) {
      while (!complete(name)) {
        if (store.state.text === "") throw new Error("there is no text to export");
        await (shown[name].drawing ?? new Promise((r) => setTimeout(r, 40)));
      }
      return shown[name].geometry;
    },
    drawing: () => Object.values(shown).some((v) => v.drawing),
    allFresh: () => store.state.text === "" || Object.keys(all).every(complete),
  };
}
