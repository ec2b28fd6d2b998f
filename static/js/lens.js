// The logit lens, the rollout, the information flow routes and the head finder: what each layer would
// predict, where a position's information came from, and what each head does.

import { ApiError, busy, post } from "./api.js";
import { $, el, initialData } from "./dom.js";
import { plotlyReady } from "./plotly.js";
import { drawFlow } from "./views/flow.js";
import { drawHeadFinder } from "./views/heads.js";
import { legendAfter } from "./tokens.js";
import { drawLens, lensLayout } from "./views/lens.js";
import { drawRollout } from "./views/rollout.js";

const initial = initialData();
const state = { ...initial.state };
window.attnscope = { state };
// the flow graph's state, in this page's URL too: token (absent: the last) and tau (the threshold)
const TAU = { min: 0.01, max: 0.5, initial: 0.04 };
const query = new URLSearchParams(location.search);
state.flowToken = /^\d+$/.test(query.get("token") ?? "") ? Number(query.get("token")) : -1;
state.flowTau = Math.round(100 * Math.min(TAU.max, Math.max(TAU.min, Number(query.get("tau")) || TAU.initial))) / 100;

function writeUrl() {
  const q = { text: state.text, model: state.model };
  if (state.flowToken >= 0) q.token = state.flowToken;
  if (state.flowTau !== TAU.initial) q.tau = state.flowTau;
  history.replaceState(null, "", `/lens?${new URLSearchParams(q)}`);
}

// the lens is transposed on a narrow screen (views/lens.js): drawn again when the width crosses over
let lastLens = null, lensDrawn = Promise.resolve();
function showLens(r = lastLens) {
  lastLens = r;
  lensDrawn = lensDrawn.catch(() => {}).then(() => {  // one plotly draw at a time: a resize during the first must wait for it
    const { drawn, note, columns } = drawLens($("lens"), lastLens);
    $("lens-note").textContent = note;
    legendAfter($("lens"), [...lastLens.tokens, ...columns.flatMap((b) => lastLens.lens[b].map((top) => top[0]))]);  // the marks shown
    return drawn;
  });
  return lensDrawn;
}
new ResizeObserver(() => { if (lastLens && lensLayout($("lens")) !== $("lens").dataset.layout) showLens(); }).observe($("lens"));

// The head finder, one reading at a time (weight or moved, key 0 kept or left out): views/heads.js.
let lastHeads = null;
function drawHeads(h = lastHeads) {
  lastHeads = h;
  const href = (layer, head) => `/?${new URLSearchParams({ text: state.text, model: state.model, layer, head })}`;
  drawHeadFinder($("heads-out"), h, { measure: state.finderMeasure ?? "weight", sink: state.finderSink ?? "kept", href,
    onReading: (r) => { state.finderMeasure = r.measure; state.finderSink = r.sink; drawHeads(); } });
}

let lastRollout = null;

async function showRollout() {
  const r = lastRollout, slider = $("rollout-layer");
  slider.max = String(r.layers.length - 1);
  if (state.rolloutLayer === undefined || state.rolloutLayer >= r.layers.length) state.rolloutLayer = r.layers.length - 1;
  slider.value = String(state.rolloutLayer);
  $("rollout-layer-out").textContent = `${r.layers[state.rolloutLayer]} / ${r.layers.length - 1}`;
  const { drawn, note } = drawRollout($("rollout"), r, { layer: state.rolloutLayer });
  $("rollout-note").textContent = note;
  legendAfter($("rollout"), r.tokens);
  await drawn;
}

let lastFlow = null;

function showFlow() {
  const r = lastFlow, n = r.tokens.length;
  const position = state.flowToken >= 0 && state.flowToken < n ? state.flowToken : n - 1;
  $("flow-threshold").value = String(state.flowTau);
  $("flow-threshold-out").textContent = state.flowTau.toFixed(2);
  const onPick = (i) => { state.flowToken = i; writeUrl(); showFlow(); };
  $("flow-note").textContent = drawFlow($("flow"), r, { position, threshold: state.flowTau, onPick }).note;
  legendAfter($("flow"), r.tokens);
  document.body.dataset.flow = `${r.model}|${position}|${state.flowTau}`;  // what the graph shows (tests wait on it)
}

// The flow graph's data is asked for on its own: the other panels need not wait for it (a long text
// costs a few seconds). The panel says "updating…" until the current text's answer is in.
async function refreshFlow() {
  const { text, model } = state, panel = $("flow-panel");
  panel.classList.add("updating");
  if (!panel.querySelector(":scope > .updating-note")) panel.append(el("p", { className: "updating-note", textContent: "updating…", attrs: { "aria-live": "polite" } }));
  try {
    const r = await post("flow", "/api/flow", { text, model });
    if (!r) return;  // superseded by a newer text
    lastFlow = r;
    $("flow").hidden = false;
    showFlow();
    document.body.dataset.flowRendered = text;
  } catch (e) {
    lastFlow = null;
    $("flow").hidden = true;
    $("flow-note").textContent = e instanceof ApiError ? e.message : String(e);
  }
  panel.classList.remove("updating");
  panel.querySelector(":scope > .updating-note")?.remove();
}

async function refresh() {
  writeUrl();
  refreshFlow();
  try {
    const model = initial.models.find((m) => m.id === state.model);
    $("lens-panel").hidden = !model.causal;
    const [lens, heads, rollout] = await Promise.all([
      model.causal ? post("lens", "/api/lens", { text: state.text, model: state.model, top_k: 5 }) : null,
      post("heads", "/api/heads", { text: state.text, model: state.model, top: 6 }),
      post("rollout", "/api/rollout", { text: state.text, model: state.model }),
    ]);
    if (lens) await showLens(lens);
    if (heads) drawHeads(heads);
    if (rollout) {
      lastRollout = rollout;
      await showRollout();
    }
    $("error").hidden = true;
    document.body.dataset.rendered = state.text;
  } catch (e) {
    $("error").hidden = false;
    $("error").textContent = e instanceof ApiError ? e.message : String(e);
  }
}

$("model").replaceChildren(...initial.models.map((m) => new Option(`${m.name}${m.causal ? "" : " (no lens: encoder)"}`, m.id)));
$("model").value = state.model;
$("text").value = state.text;
let t = 0;
$("text").addEventListener("input", (e) => { clearTimeout(t); t = setTimeout(() => { state.text = e.target.value; state.flowToken = -1; refresh(); }, 300); });
$("model").addEventListener("change", (e) => { state.model = e.target.value; state.flowToken = -1; refresh(); });
busy.addEventListener("change", (e) => ($("busy").hidden = !e.detail));
$("rollout-layer").addEventListener("input", (e) => { state.rolloutLayer = Number(e.target.value); if (lastRollout) showRollout(); });
$("flow-threshold").addEventListener("input", (e) => { state.flowTau = Number(e.target.value); writeUrl(); if (lastFlow) showFlow(); });
plotlyReady().then(refresh).then(() => (document.body.dataset.ready = "1"));
