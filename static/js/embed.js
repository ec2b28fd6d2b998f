// An embed: one view (arrows, heatmap or grid) of one state, from the data inline in the page.
// No page chrome, no API calls: the URL decides everything. The page reports its height to the
// parent (Embedly's and AMP's messages) whenever it changes, so the host can size the iframe.

import { decodePattern } from "./api.js";
import { plotlyReady } from "./plotly.js";
import { buildChips, drawArrows } from "./views/arrows.js";
import { drawGrid } from "./views/grid.js";
import { drawHeatmap, highlight } from "./views/heatmap.js";
import { label } from "./tokens.js";

const $ = (id) => document.getElementById(id);
const initial = JSON.parse($("initial").textContent);
const state = { ...(initial.state || {}), locked: false };
const view = initial.view;
const el = $("view");
window.attnscope = { embed: { view, state } };  // for tests and the curious

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

const tokenName = (i) => (i >= 0 && tokens[i] ? `‘${label(tokens[i].text)}’` : "");
let tokens = [];

function caption() {
  const m = initial.model;
  const where = view === "grid" ? `${m.n_layers} layers × ${m.n_heads} heads; layer ${state.layer}, head ${state.head} outlined`
    : `layer ${state.layer}, head ${state.head}`;
  const tok = state.token >= 0 && view !== "grid" ? ` · where ${tokenName(state.token)} looks` : "";
  $("caption").textContent = `${m.name} · ${where}${tok}`;
  const q = new URLSearchParams({ text: state.text, model: state.model, layer: state.layer, head: state.head, token: state.token });
  $("explorer-link").href = `${location.origin}/?${q}`;
  $("explorer-link").title = "open this in the attnscope explorer";
}

function arrowsView(d) {
  tokens = d.attention.tokens;
  const pattern = d.attention.attention[String(state.layer)];
  const redraw = () => drawArrows(el, chips, pattern, { heads: [state.head], token: state.token, dir: "out" });
  const set = (token, locked = state.locked) => { Object.assign(state, { token, locked }); redraw(); caption(); };
  const handlers = state.static ? { onHover() {}, onLeave() {}, onClick() {}, onKey() {} } : {
    onHover: (i) => !state.locked && set(i),
    onLeave: () => !state.locked && set(-1),
    onClick: (i) => (state.locked && state.token === i ? set(i, false) : set(i, true)),
    onKey: (e, i) => {
      const to = { ArrowRight: i + 1, ArrowLeft: i - 1 }[e.key];
      if (to !== undefined && chips[to]) { e.preventDefault(); chips[to].focus(); }
      else if (e.key === "Escape") set(-1, false);
    },
  };
  const chips = buildChips(el, tokens, handlers);
  if (state.static) for (const c of chips) c.tabIndex = -1;
  redraw();
  let width = el.clientWidth;
  new ResizeObserver(() => { if (el.clientWidth !== width) { width = el.clientWidth; redraw(); } }).observe(el);
}

async function heatmapView(d) {
  tokens = d.attention.tokens;
  const pattern = d.attention.attention[String(state.layer)][state.head];
  const n = tokens.length;
  await plotlyReady();
  const onCell = (q) => {
    if (state.static) return;
    state.token = state.token === q ? -1 : q;
    highlight(el, n, state.token, "out");
    caption();
  };
  await drawHeatmap(el, { tokens, pattern, scores: d.head.scores, causal: d.attention.causal, layer: state.layer, head: state.head }, onCell);
  if (state.static) await window.Plotly.react(el, el.data, el.layout, { staticPlot: true, responsive: true });
  highlight(el, n, state.token, "out");
  el.on?.("plotly_afterplot", () => highlight(el, n, state.token, "out"));
}

function gridView(d) {
  const g = d.grid;
  tokens = g.tokens;
  const data = {};
  for (const [L, a] of Object.entries(g.attention)) data[L] = decodePattern(a);
  const redraw = () => drawGrid(el, { data, n: tokens.length, nLayers: g.n_layers, nHeads: g.n_heads, causal: g.causal,
    layer: state.layer, head: state.head }, (L, H) => {
    if (state.static) return;
    Object.assign(state, { layer: L, head: H });
    redraw();
    caption();
  });
  redraw();
  if (state.static) el.querySelector("canvas").tabIndex = -1;
  let width = el.clientWidth;
  new ResizeObserver(() => { if (el.clientWidth !== width) { width = el.clientWidth; redraw(); } }).observe(el);
}

async function start() {
  try {
    if (initial.data && initial.model) {
      tokens = (initial.data.attention || initial.data.grid).tokens;
      caption();
      if (view === "arrows") arrowsView(initial.data);
      else if (view === "heatmap") await heatmapView(initial.data);
      else if (view === "grid") gridView(initial.data);
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
