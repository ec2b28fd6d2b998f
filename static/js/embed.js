// An embed: one view (arrows, heatmap, grid, explain, compare or lens) of one state, from the data
// inline in the page.
// No page chrome, no API calls: the URL decides everything. The page reports its height to the
// parent (Embedly's and AMP's messages) whenever it changes, so the host can size the iframe.

import { $, el as make, initialData, publicOrigin } from "./dom.js";
import { decodeGrid, peak } from "./explorer/data.js";
import { noFocus, tokenFocus } from "./focus.js";
import { plotlyReady } from "./plotly.js";
import { Store } from "./store.js";
import { drawArrows } from "./views/arrows.js";
import { drawGrid } from "./views/grid.js";
import { drawHeatmap } from "./views/heatmap.js";
import { compareNotes, drawSimilarity, drawWordPath } from "./views/compare.js";
import { explainStep } from "./views/explain.js";
import { drawLens, lensLayout } from "./views/lens.js";
import { label, legendAfter } from "./tokens.js";

const initial = initialData();
// the embed's state: what the URL said, then what the reader does (the focused token, a picked head)
const store = new Store({ ...(initial.state || {}), locked: false });
const state = store.state;
const view = initial.view;
const el = $("view");
window.attnscope = { embed: { view, state, store } };  // for tests and the curious
const focus = state.static ? noFocus : tokenFocus(store);

// ---- height to the parent -------------------------------------------------------------------------

let lastHeight = -1;
function postHeight() {
  const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
  if (height === lastHeight || window.parent === window) return;
  lastHeight = height;
  window.parent.postMessage({ context: "iframe.resize", height }, "*");  // Embedly
  window.parent.postMessage({ sentinel: "amp", type: "embed-size", height }, "*");  // AMP amp-iframe
}
new ResizeObserver(postHeight).observe(document.documentElement);

// ---- theme: the CSS variables follow data-theme (auto: the reader's prefers-color-scheme) ------------

const THEMES = ["light", "dark", "auto"];
document.documentElement.dataset.theme = THEMES.includes(state.theme) ? state.theme : "auto";
if (state.static) document.body.classList.add("static");

// ---- views ----------------------------------------------------------------------------------------

const tokenName = (i) => (i >= 0 && tokens[i] ? `‘${label(tokens[i])}’` : "");
let tokens = [];

const HEAD_VIEWS = ["arrows", "heatmap", "grid"];

function caption() {
  const m = initial.model;
  let where, link;
  if (view === "compare") {
    where = `“${state.word}” in ${state.sentences.length} sentences, layer by layer`;
    link = new URLSearchParams([["word", state.word], ["model", state.model], ...state.sentences.map((s) => ["s", s])]);
  } else if (view === "lens") {
    where = "the logit lens: the top next-token guess read off every layer";
    link = new URLSearchParams({ text: state.text, model: state.model });
  } else {
    where = view === "grid" ? `${m.n_layers} layers × ${m.n_heads} heads; layer ${state.layer}, head ${state.head} outlined`
      : `layer ${state.layer}, head ${state.head}`;
    const moved = state.measure === "moved";
    const focused = state.token >= 0 && view !== "grid";
    if (moved) where += ` · what it moved (‖weight · v W_O‖₂)${focused ? ` into ${tokenName(state.token)}` : ""}`;
    else if (focused) where += ` · where ${tokenName(state.token)} looks`;
    link = new URLSearchParams({ text: state.text, model: state.model, layer: state.layer, head: state.head, token: state.token });
    if (view === "explain") link.set("step", String(state.step));
    if (moved) link.set("measure", "moved");
  }
  $("caption").textContent = `${m.name} · ${where}`;
  const page = HEAD_VIEWS.includes(view) ? "/" : `/${view}`;
  $("explorer-link").href = `${publicOrigin()}${page}?${link}`;
  $("explorer-link").title = `open this in attnscope${HEAD_VIEWS.includes(view) ? "'s explorer" : ""}`;
}

// measure "moved": the arrows and the heatmap scale each head by its largest value, as the explorer does
const peaks = (attention) => attention.map((P) => peak(state.measure, P.flat()));

function arrowsView(d) {
  tokens = d.attention.tokens;
  const pattern = d.attention.attention[String(state.layer)];
  const data = { tokens, pattern, peaks: peaks(pattern) };
  const redraw = () => drawArrows(el, data, { heads: [state.head], token: state.token, dir: "out", focus, still: state.static });
  legendAfter(el, tokens);
  store.on(["token", "locked"], () => { redraw(); caption(); });
  redraw();
  let width = el.clientWidth;
  new ResizeObserver(() => { if (el.clientWidth !== width) { width = el.clientWidth; redraw(); } }).observe(el);
}

async function heatmapView(d) {
  tokens = d.attention.tokens;
  const layer = d.attention.attention[String(state.layer)];
  const data = { tokens, pattern: layer[state.head], scores: d.head.scores, causal: d.attention.causal,
    measure: state.measure, peak: peaks(layer)[state.head], weights: d.head.pattern };
  await plotlyReady();
  const redraw = () => drawHeatmap(el, data, { layer: state.layer, head: state.head, token: state.token, dir: "out",
    onCellClick: (q) => focus.toggle(q) });
  store.on(["token", "locked"], () => { redraw(); caption(); });
  legendAfter(el, tokens);
  await redraw();
  el.on?.("plotly_afterplot", redraw);  // a resize re-lays the chart out: the highlight follows
}

function gridView(d) {
  const grid = decodeGrid(d.grid);
  tokens = grid.tokens;
  const pick = (L, H) => { if (!state.static) store.set({ layer: L, head: H }); };
  const redraw = () => (window.attnscope.embed.geometry = drawGrid(el, grid, { layer: state.layer, head: state.head, onPick: pick, still: state.static }));
  store.on(["layer", "head"], () => { redraw(); caption(); });
  redraw();
  let width = el.clientWidth;
  new ResizeObserver(() => { if (el.clientWidth !== width) { width = el.clientWidth; redraw(); } }).observe(el);
}

// One step of the explanation, with Previous/Next (arrow keys too) unless static.
function explainView(d) {
  tokens = d.head.tokens;
  const box = make("div", { className: "explain-embed" });
  const nav = make("div", { className: "stepper" });
  const prev = make("button", { type: "button", textContent: "← Previous" });
  const next = make("button", { type: "button", textContent: "Next →" });
  const where = make("span", { className: "muted small" });
  nav.append(prev, where, next);
  const body = make("section", { className: "step", tabIndex: -1 });
  box.append(body);
  if (!state.static) box.append(nav);
  el.replaceChildren(box);
  const render = () => {
    const { list, index, step, parts } = explainStep(d.head, initial.model, { ...state, step: state.step - 1 });
    state.step = index + 1;
    body.replaceChildren(make("h2", { textContent: `Step ${state.step} of ${list.length}: ${step.title}` }), ...parts);
    where.textContent = `${state.step} / ${list.length}`;
    prev.disabled = index === 0;
    next.disabled = index === list.length - 1;
    document.body.dataset.step = step.id;
    caption();
  };
  const go = (k) => { state.step = k; render(); };
  prev.addEventListener("click", () => go(state.step - 1));
  next.addEventListener("click", () => go(state.step + 1));
  if (!state.static)
    document.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight" || e.key === "PageDown") { e.preventDefault(); if (!next.disabled) go(state.step + 1); }
      if (e.key === "ArrowLeft" || e.key === "PageUp") { e.preventDefault(); if (!prev.disabled) go(state.step - 1); }
    });
  render();
}

async function compareView(d) {
  const c = d.compare;
  const sim = make("div", { className: "chart", id: "similarity" });
  const path = make("div", { className: "chart", id: "trajectory" });
  const notes = make("div", { className: "notes" }, ...compareNotes(c).map((t) => make("p", { textContent: t })));
  el.replaceChildren(sim, notes, path);
  await plotlyReady();
  await drawSimilarity(sim, c);
  await drawWordPath(path, c, state.sentences);
}

async function lensView(d) {
  tokens = d.lens.tokens;
  const chart = make("div", { className: "chart", id: "lens" });
  const note = make("p", { className: "notes" });
  el.replaceChildren(chart, note);
  await plotlyReady();
  let drawn = Promise.resolve();
  const draw = () => (drawn = drawn.catch(() => {}).then(() => {  // transposed when narrow (views/lens.js): one draw at a time
    const r = drawLens(chart, d.lens);
    note.textContent = r.note;
    legendAfter(chart, [...d.lens.tokens, ...r.columns.flatMap((b) => d.lens.lens[b].map((top) => top[0]))]);  // the marks shown
    return r.drawn;
  }));
  await draw();
  if (!state.static) new ResizeObserver(() => { if (lensLayout(chart) !== chart.dataset.layout) draw(); }).observe(chart);
}

// static=1: plotly charts without hover, zoom or the mode bar
async function freeze() {
  for (const chart of [el, ...el.querySelectorAll(".js-plotly-plot")].filter((c) => c.classList.contains("js-plotly-plot")))
    await window.Plotly.react(chart, chart.data, chart.layout, { staticPlot: true, responsive: true });
}

async function start() {
  try {
    if (initial.data && initial.model) {
      const d = initial.data;
      tokens = (d.attention || d.grid || d.head || d.lens)?.tokens ?? [];
      caption();
      if (view === "arrows") arrowsView(d);
      else if (view === "heatmap") await heatmapView(d);
      else if (view === "grid") gridView(d);
      else if (view === "explain") explainView(d);
      else if (view === "compare") await compareView(d);
      else if (view === "lens") await lensView(d);
      if (state.static) await freeze();
    }
  } catch (e) {
    $("error").hidden = false;
    $("error").textContent = `This embed could not be drawn: ${e.message}`;
  }
  if (initial.error) {
    $("error").hidden = false;
    $("error").textContent = initial.error.detail;
  }
  document.body.dataset.ready = "1";
  postHeight();
}

start();
