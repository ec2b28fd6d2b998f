// One word in 2-4 sentences, layer by layer (the /api/compare payload): the cosine similarity of its
// vectors at each layer boundary, its path in a 2-D PCA, and a plain-words reading of both.
// Used by /compare and by its embed (/embed/compare).

import { headColor } from "../colors.js";
import { baseLayout, config } from "../plotly.js";
import { label, legend, plotlySafe } from "../tokens.js";

// the compare charts' layout: the base one, a legend below
export const compareLayout = (title) => baseLayout(title, { height: 380, legend: { orientation: "h", y: -0.2 } });

// narrow frames (a phone, a 320 px embed): short titles, room for the rotated layer labels
const narrow = (el) => (el.clientWidth || 600) < 480;
const pairs = (N) => [...Array(N).keys()].flatMap((a) => [...Array(N).keys()].filter((b) => b > a).map((b) => [a, b]));

// Similarity of each pair of sentences' word vectors, one line per pair.
export function drawSimilarity(el, c) {
  const traces = pairs(c.occurrences.length).map(([a, b]) => ({
    type: "scatter", mode: "lines+markers", name: `sentence ${a + 1} vs ${b + 1}`, x: c.layers, y: c.similarity.map((m) => m[a][b]),
    line: { color: headColor(a), dash: b - a > 1 ? "dot" : "solid" }, hovertemplate: "layer %{x}: cos %{y:.4f}<extra></extra>",
  }));
  const small = narrow(el);
  return window.Plotly.react(el, traces, { ...compareLayout(small ? `cosine of “${plotlySafe(c.word)}”` : `cosine similarity of “${plotlySafe(c.word)}” across sentences`),
    ...(small ? { margin: { l: 45, r: 8, t: 40, b: 90 } } : {}),
    xaxis: { title: { text: small ? "layer" : "layer boundary (embed = token embedding)" }, type: "category" },
    yaxis: { title: { text: "cosine" }, range: [Math.min(0, ...c.similarity.flat(2)) - 0.02, 1.02] } }, config());
}

// The word's vector in each sentence as a path through the layers (2-D PCA fitted on all of them).
export function drawWordPath(el, c, sentences) {
  const L = c.layers;
  const pts = c.occurrences.map((o, k) => ({
    type: "scatter", mode: "lines+markers+text", name: `${k + 1}: ${plotlySafe(sentences[o.sentence])}`,
    x: c.pca_2d.map((b) => b[k][0]), y: c.pca_2d.map((b) => b[k][1]), text: L.map((l, i) => (i === 0 || i === L.length - 1 ? l : "")),
    textposition: "top center", marker: { color: headColor(k), size: L.map((_, i) => 5 + (10 * i) / (L.length - 1)) },
    line: { color: headColor(k), width: 1.5 }, hovertemplate: "layer %{customdata}<br>(%{x:.2f}, %{y:.2f})<extra></extra>", customdata: L,
  }));
  const share = (100 * (c.explained_variance_2d[0] + c.explained_variance_2d[1])).toFixed(0);
  const title = narrow(el) ? `“${plotlySafe(c.word)}” by layer (PCA, ${share}%)` : `“${plotlySafe(c.word)}” moving through the layers (2-D PCA, ${share}% of variance)`;
  return window.Plotly.react(el, pts, { ...compareLayout(title),
    xaxis: { title: { text: "PC 1" }, zeroline: false }, yaxis: { title: { text: "PC 2" }, zeroline: false } }, config());
}

// What the numbers say, in sentences (plain text).
export function compareNotes(c) {
  const split = c.occurrences.filter((o) => o.n_pieces > 1);
  const same = new Set(c.occurrences.map((o) => o.id)).size === 1;
  const last = c.similarity[c.similarity.length - 1];
  const lowest = Math.min(1, ...pairs(c.occurrences.length).map(([a, b]) => last[a][b]));
  return [
    same ? `Every sentence has the same token ${label(c.occurrences[0])} (id ${c.occurrences[0].id}), so at the embedding the vectors are identical (cosine 1). Context then moves them apart: at the last layer the least similar pair has cosine ${lowest.toFixed(3)}.`
      : "The word is a different token in some sentences (for example with and without a leading space or capital), so the vectors differ from the start.",
    split.length ? `“${c.word}” splits into ${split[0].n_pieces} tokens here: the charts follow its last token (${label(split[0])}), the one that has read the whole word.` : "",
    legend([...(same ? [c.occurrences[0]] : []), ...split.slice(0, 1)]),  // the marks the tokens named above show
  ].filter(Boolean);
}
