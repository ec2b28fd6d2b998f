// The logit lens and the head finder: what each layer would predict, and what each head does.

import { ApiError, busy, post } from "./api.js";
import { plotlyScale } from "./colors.js";
import { $, css, el, initialData } from "./dom.js";
import { config, plotlyReady } from "./plotly.js";
import { drawLens } from "./views/lens.js";
import { drawRollout } from "./views/rollout.js";

const initial = initialData();
const state = { ...initial.state };
window.attnscope = { state };

function showLens(r) {
  $("lens-note").textContent = drawLens($("lens"), r).note;
}

function drawHeads(h) {
  const box = $("heads-out");
  box.replaceChildren();
  for (const [name, formula] of Object.entries(h.formulas)) {
    const chart = el("div", { className: "finder-chart" });
    const list = el("ol", { className: "finder-top" }, ...h.top[name].map((t) => el("li", {}, el("a", {
      href: `/?${new URLSearchParams({ text: state.text, model: state.model, layer: t.layer, head: t.head })}`,
      textContent: `layer ${t.layer}, head ${t.head}: ${t.score.toFixed(3)}` }))));
    box.append(el("section", { className: "finder" }, el("h3", { textContent: name }), el("p", { className: "formula", textContent: formula }), chart, list));
    const s = h.scores[name];
    window.Plotly.react(chart, [{ type: "heatmap", z: s[0].map((_, H) => s.map((row) => row[H])), colorscale: plotlyScale("viridis"), zmin: 0, zmax: 1,
      hovertemplate: "layer %{x}, head %{y}: %{z:.3f}<extra></extra>", showscale: false }], {
      height: 170, margin: { l: 30, r: 5, t: 5, b: 30 }, paper_bgcolor: "rgba(0,0,0,0)", font: { color: css("--fg"), size: 10 },
      xaxis: { title: { text: "layer" } }, yaxis: { title: { text: "head" } },
    }, config({ displayModeBar: false }));
    chart.on?.("plotly_click", (ev) => { const p = ev.points?.[0]; if (p) location.href = `/?${new URLSearchParams({ text: state.text, model: state.model, layer: p.x, head: p.y })}`; });
  }
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
