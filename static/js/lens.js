// The logit lens and the head finder: what each layer would predict, and what each head does.

import { ApiError, busy, post } from "./api.js";
import { $, initialData } from "./dom.js";
import { plotlyReady } from "./plotly.js";
import { drawHeadFinder } from "./views/heads.js";
import { drawLens } from "./views/lens.js";
import { drawRollout } from "./views/rollout.js";

const initial = initialData();
const state = { ...initial.state };
window.attnscope = { state };

function showLens(r) {
  $("lens-note").textContent = drawLens($("lens"), r).note;
}

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
  await drawn;
}

async function refresh() {
  history.replaceState(null, "", `/lens?${new URLSearchParams({ text: state.text, model: state.model })}`);
  try {
    const model = initial.models.find((m) => m.id === state.model);
    $("lens-panel").hidden = !model.causal;
    const [lens, heads, rollout] = await Promise.all([
      model.causal ? post("lens", "/api/lens", { text: state.text, model: state.model, top_k: 5 }) : null,
      post("heads", "/api/heads", { text: state.text, model: state.model, top: 6 }),
      post("rollout", "/api/rollout", { text: state.text, model: state.model }),
    ]);
    if (lens) showLens(lens);
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
$("text").addEventListener("input", (e) => { clearTimeout(t); t = setTimeout(() => { state.text = e.target.value; refresh(); }, 300); });
$("model").addEventListener("change", (e) => { state.model = e.target.value; refresh(); });
busy.addEventListener("change", (e) => ($("busy").hidden = !e.detail));
$("rollout-layer").addEventListener("input", (e) => { state.rolloutLayer = Number(e.target.value); if (lastRollout) showRollout(); });
plotlyReady().then(refresh).then(() => (document.body.dataset.ready = "1"));
