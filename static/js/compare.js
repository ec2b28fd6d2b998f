// "The same word, different meanings": one word in 2-4 sentences, its vector layer by layer.
// Identical at the embedding (same token), pulled apart by context as depth grows. Plus the
// trajectories of one sentence's tokens through the layers (PCA of the residual stream).

import { ApiError, busy, post } from "./api.js";
import { plotlyReady } from "./plotly.js";
import { headColor } from "./colors.js";
import { EXAMPLES } from "./examples.js";
import { label, plotlySafe } from "./tokens.js";

const $ = (id) => document.getElementById(id);
const initial = JSON.parse($("initial").textContent);
const state = { ...initial.state };
window.attnscope = { state };


const css = (n) => getComputedStyle(document.documentElement).getPropertyValue(n).trim();
const baseLayout = (title) => ({
  title: { text: title, font: { size: 13, color: css("--fg") }, x: 0.02 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
  font: { color: css("--fg"), family: css("--font") }, margin: { l: 50, r: 10, t: 40, b: 50 }, height: 380,
  legend: { orientation: "h", y: -0.2 },
});
const config = { displaylogo: false, responsive: true };

function sentenceInputs() {
  const box = $("sentences");
  box.replaceChildren(...state.sentences.map((s, k) => {
    const input = Object.assign(document.createElement("input"), { type: "text", value: s, className: "sentence" });
    input.setAttribute("aria-label", `sentence ${k + 1}`);
    input.style.borderLeftColor = headColor(k);
    input.addEventListener("change", () => { state.sentences[k] = input.value; refresh(); });
    return input;
  }));
  $("word").value = state.word;
  $("add").disabled = state.sentences.length >= 4;
  $("remove").disabled = state.sentences.length <= 2;
}

function drawCompare(c) {
  const L = c.layers;
  const N = c.occurrences.length;
  const traces = [];
  for (let a = 0; a < N; a++)
    for (let b = a + 1; b < N; b++)
      traces.push({ type: "scatter", mode: "lines+markers", name: `sentence ${a + 1} vs ${b + 1}`, x: L, y: c.similarity.map((m) => m[a][b]),
        line: { color: headColor(a), dash: b - a > 1 ? "dot" : "solid" }, hovertemplate: "layer %{x}: cos %{y:.4f}<extra></extra>" });
  window.Plotly.react($("similarity"), traces, { ...baseLayout(`cosine similarity of “${plotlySafe(c.word)}” across sentences`),
    xaxis: { title: { text: "layer boundary (embed = token embedding)" }, type: "category" }, yaxis: { title: { text: "cosine" }, range: [Math.min(0, ...c.similarity.flat(2)) - 0.02, 1.02] } }, config);
  const pts = c.occurrences.map((o, k) => ({
    type: "scatter", mode: "lines+markers+text", name: `${k + 1}: ${plotlySafe(state.sentences[o.sentence])}`,
    x: c.pca_2d.map((b) => b[k][0]), y: c.pca_2d.map((b) => b[k][1]), text: L.map((l, i) => (i === 0 || i === L.length - 1 ? l : "")),
    textposition: "top center", marker: { color: headColor(k), size: L.map((_, i) => 5 + (10 * i) / (L.length - 1)) },
    line: { color: headColor(k), width: 1.5 }, hovertemplate: "layer %{customdata}<br>(%{x:.2f}, %{y:.2f})<extra></extra>", customdata: L,
  }));
  window.Plotly.react($("trajectory"), pts, { ...baseLayout(`“${plotlySafe(c.word)}” moving through the layers (2-D PCA, ${(100 * (c.explained_variance_2d[0] + c.explained_variance_2d[1])).toFixed(0)}% of variance)`),
    xaxis: { title: { text: "PC 1" }, zeroline: false }, yaxis: { title: { text: "PC 2" }, zeroline: false } }, config);
  const split = c.occurrences.filter((o) => o.n_pieces > 1);
  const same = new Set(c.occurrences.map((o) => o.id)).size === 1;
  const last = c.similarity[c.similarity.length - 1];
  let lowest = 1;
  for (let a = 0; a < N; a++) for (let b = a + 1; b < N; b++) lowest = Math.min(lowest, last[a][b]);
  $("compare-notes").replaceChildren(...[
    same ? `Every sentence has the same token ${label(c.occurrences[0].text)} (id ${c.occurrences[0].id}), so at the embedding the vectors are identical (cosine 1). Context then moves them apart: at the last layer the least similar pair has cosine ${lowest.toFixed(3)}.`
      : "The word is a different token in some sentences (for example with and without a leading space or capital), so the vectors differ from the start.",
    split.length ? `“${c.word}” splits into ${split[0].n_pieces} tokens here: the charts follow its last token (${label(split[0].text)}), the one that has read the whole word.` : "",
  ].filter(Boolean).map((t) => Object.assign(document.createElement("p"), { textContent: t })));
}

function drawResidual(r) {
  const L = r.layers;
  const three = $("dims").value === "3";
  const traces = r.tokens.map((t, k) => {
    const pts = three ? r.pca_3d : r.pca_2d;
    return {
      type: three ? "scatter3d" : "scatter", mode: "lines+markers", name: `${k}: ${plotlySafe(label(t.text))}`,
      x: pts.map((b) => b[k][0]), y: pts.map((b) => b[k][1]), ...(three ? { z: pts.map((b) => b[k][2]) } : {}), customdata: L,
      marker: { color: headColor(k), size: L.map((_, i) => (three ? 2 : 4) + ((three ? 5 : 9) * i) / (L.length - 1)) },
      line: { color: headColor(k), width: three ? 3 : 1 },
      hovertemplate: `${plotlySafe(label(t.text))}<br>layer %{customdata}<extra></extra>`,
    };
  });
  const ev = three ? r.explained_variance_3d : r.explained_variance_2d;
  const share = (100 * ev.reduce((a, b) => a + b, 0)).toFixed(0);
  window.Plotly.react($("residual"), traces, { ...baseLayout(`each token's vector, layer by layer (PCA of unit vectors, ${share}% of variance; markers grow with depth; click a legend entry to hide a token)`),
    xaxis: { title: { text: "PC 1" }, zeroline: false }, yaxis: { title: { text: "PC 2" }, zeroline: false }, height: 460,
    ...(three ? { scene: { xaxis: { title: { text: "PC 1" } }, yaxis: { title: { text: "PC 2" } }, zaxis: { title: { text: "PC 3" } } } } : {}) }, config);
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
    const b = Object.assign(document.createElement("button"), { type: "button", textContent: w, className: "example" });
    b.dataset.word = w;
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
