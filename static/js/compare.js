// "The same word, different meanings": one word in 2-4 sentences, its vector layer by layer.
// Identical at the embedding (same token), pulled apart by context as depth grows. Plus the
// trajectories of one sentence's tokens through the layers (PCA of the residual stream).

import { ApiError, busy, post } from "./api.js";
import { headColor } from "./colors.js";
import { $, el, initialData } from "./dom.js";
import { EXAMPLES } from "./examples.js";
import { config, plotlyReady } from "./plotly.js";
import { label, legendAfter, plotlySafe } from "./tokens.js";
import { compareLayout, compareNotes, drawSimilarity, drawWordPath } from "./views/compare.js";

const initial = initialData();
const state = { ...initial.state };
window.attnscope = { state };


// The sentence boxes follow state.sentences. A box is made once and kept (only a new count adds or
// removes boxes): rebuilding them on every change threw away the box a click had just focused.
function sentenceInputs() {
  const box = $("sentences");
  const boxes = [...box.children];
  for (const input of boxes.slice(state.sentences.length)) input.remove();
  state.sentences.forEach((s, k) => {
    let input = boxes[k];
    if (!input) {
      input = el("input", { type: "text", className: "sentence", attrs: { "aria-label": `sentence ${k + 1}` } });
      input.style.borderLeftColor = headColor(k);
      input.addEventListener("change", () => { state.sentences[k] = input.value; refresh(); });
      box.append(input);
    }
    if (input.value !== s) input.value = s;
  });
  if ($("word").value !== state.word) $("word").value = state.word;
  $("add").disabled = state.sentences.length >= 4;
  $("remove").disabled = state.sentences.length <= 2;
}

function drawCompare(c) {
  drawSimilarity($("similarity"), c);
  drawWordPath($("trajectory"), c, state.sentences);
  $("compare-notes").replaceChildren(...compareNotes(c).map((t) => el("p", { textContent: t })));
}

function drawResidual(r) {
  const L = r.layers;
  const three = $("dims").value === "3";
  const traces = r.tokens.map((t, k) => {
    const pts = three ? r.pca_3d : r.pca_2d;
    return {
      type: three ? "scatter3d" : "scatter", mode: "lines+markers", name: `${k}: ${plotlySafe(label(t))}`,
      x: pts.map((b) => b[k][0]), y: pts.map((b) => b[k][1]), ...(three ? { z: pts.map((b) => b[k][2]) } : {}), customdata: L,
      marker: { color: headColor(k), size: L.map((_, i) => (three ? 2 : 4) + ((three ? 5 : 9) * i) / (L.length - 1)) },
      line: { color: headColor(k), width: three ? 3 : 1 },
      hovertemplate: `${plotlySafe(label(t))}<br>layer %{customdata}<extra></extra>`,
    };
  });
  const ev = three ? r.explained_variance_3d : r.explained_variance_2d;
  const share = (100 * ev.reduce((a, b) => a + b, 0)).toFixed(0);
  window.Plotly.react($("residual"), traces, { ...compareLayout(`each token's vector, layer by layer (PCA of unit vectors, ${share}% of variance; markers grow with depth; click a legend entry to hide a token)`),
    xaxis: { title: { text: "PC 1" }, zeroline: false }, yaxis: { title: { text: "PC 2" }, zeroline: false }, height: 460,
    ...(three ? { scene: { xaxis: { title: { text: "PC 1" } }, yaxis: { title: { text: "PC 2" } }, zaxis: { title: { text: "PC 3" } } } } : {}) }, config());
  legendAfter($("residual"), r.tokens);
}

let lastResidual = null;

async function refresh() {
  const q = new URLSearchParams({ word: state.word, model: state.model });
  state.sentences.forEach((s) => q.append("s", s));
  history.replaceState(null, "", `/compare?${q}`);
  sentenceInputs();
  try {
    const c = await post("compare", "/api/compare", { model: state.model, sentences: state.sentences, word: state.word });
    if (!c) return;
    drawCompare(c);
    $("error").hidden = true;
    const r = await post("residual", "/api/residual", { model: state.model, text: state.sentences[0], normalize: true });
    if (r) {
      lastResidual = r;
      drawResidual(r);
    }
    document.body.dataset.rendered = `${state.word}|${state.sentences.join("|")}`;
  } catch (e) {
    $("error").hidden = false;
    $("error").textContent = e instanceof ApiError ? e.message : String(e);
  }
}

function wire() {
  $("examples").replaceChildren(...Object.keys(EXAMPLES).map((w) => {
    const b = el("button", { type: "button", textContent: w, className: "example", dataset: { word: w } });
    b.addEventListener("click", () => { state.word = w; state.sentences = [...EXAMPLES[w]]; refresh(); });
    return b;
  }));
  $("model").replaceChildren(...initial.models.map((m) => new Option(m.name, m.id)));
  $("model").value = state.model;
  $("model").addEventListener("change", (e) => { state.model = e.target.value; refresh(); });
  $("word").addEventListener("change", (e) => { state.word = e.target.value; refresh(); });
  $("add").addEventListener("click", () => { state.sentences.push(`another sentence with ${state.word}`); refresh(); });
  $("remove").addEventListener("click", () => { state.sentences.pop(); refresh(); });
  busy.addEventListener("change", (e) => ($("busy").hidden = !e.detail));
  $("dims").addEventListener("change", () => lastResidual && drawResidual(lastResidual));
}

wire();
sentenceInputs();
plotlyReady().then(refresh).then(() => (document.body.dataset.ready = "1"));
