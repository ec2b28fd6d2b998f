// The logit lens (the /api/lens payload): the model's top next-token guess read off every layer
// boundary at every position, as a heatmap (colour = its probability). Used by /lens and /embed/lens.

import { plotlyScale } from "../colors.js";
import { baseLayout, config } from "../plotly.js";
import { label, plotlySafe } from "../tokens.js";

// drawLens(el, r) -> {drawn: plotly's promise, note: the last position's answer in words}
export function drawLens(el, r) {
  const n = r.tokens.length, B = r.layers.length;
  const names = r.tokens.map((t, i) => `${i}: ${plotlySafe(label(t.text))}`);
  const z = r.lens.map((row) => row.map((top) => top[0].prob));
  const text = r.lens.map((row) => row.map((top) => plotlySafe(label(top[0].text))));
  const hover = r.lens.map((row) => row.map((top) => top.map((p) => `${plotlySafe(label(p.text))} ${(100 * p.prob).toFixed(1)}%`).join("<br>")));
  const finalTop = r.lens[B - 1].map((top) => top[0].id);
  const sameAsFinal = r.lens.map((row) => row.map((top, i) => (top[0].id === finalTop[i] ? 1 : 0)));
  const drawn = window.Plotly.react(el, [{
    type: "heatmap", z, x: names, y: r.layers, text, customdata: hover, texttemplate: n <= 24 ? "%{text}" : "", textfont: { size: 10 },
    colorscale: plotlyScale("cividis"), zmin: 0, zmax: 1, colorbar: { title: { text: "top-1 prob" }, thickness: 12 },
    hovertemplate: "after %{x}, layer %{y}:<br>%{customdata}<extra></extra>",
  }], baseLayout("top next-token guess from each layer's residual (final norm + unembedding)", {
    height: Math.max(420, 18 * B + 140), margin: { l: 60, r: 10, t: 40, b: 110 },
    xaxis: { type: "category", tickangle: -45, title: { text: "position (the token after which the model predicts)" } },
    yaxis: { type: "category", title: { text: "layer boundary" } },
  }), config());
  el.dataset.same = JSON.stringify(sameAsFinal);
  const first = finalTop.map((id, i) => r.lens.findIndex((row, b) => row[i][0].id === id && r.lens.slice(b).every((rr) => rr[i][0].id === id)));
  const i = n - 1;
  const note = `After ${label(r.tokens[i].text).trim() || "the last token"}, the final answer ${label(r.lens[B - 1][i][0].text)} `
    + `(${(100 * r.lens[B - 1][i][0].prob).toFixed(1)}%) is the top guess from layer boundary ${r.layers[first[i]]} on.`;
  return { drawn, note };
}
