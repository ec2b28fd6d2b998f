// The logit lens (the /api/lens payload): the model's top next-token guess read off every layer
// boundary at every position, as a heatmap (colour = its probability). Used by /lens and /embed/lens.
// Wide: positions across, every layer boundary up the side. Narrow (a phone): transposed, positions
// down the side, where their names read across, and as many layer boundaries across as leave a
// readable cell (the first, the last, which is the model's own output, and evenly spaced between),
// said under the chart; hover still gives each cell's top 5.

import { plotlyScale } from "../colors.js";
import { baseLayout, config } from "../plotly.js";
import { label, note, plotlySafe, quoted, shortLabel } from "../tokens.js";

const NARROW = 560;  // px: below this the chart is transposed
const CELL = 42;  // px per layer column when transposed: room for a short token (6 characters)
const LEFT = 74;  // px for the position names when transposed

// "wide" or "narrow": the layout drawLens uses for el at its current width
export const lensLayout = (el) => ((el.clientWidth || innerWidth) < NARROW ? "narrow" : "wide");

// The boundaries shown in k columns of B: all if they fit, else the first, the last and evenly between.
export function lensColumns(B, k) {
  if (B <= k) return [...Array(B).keys()];
  return [...new Set([...Array(Math.max(2, k)).keys()].map((j) => Math.round((j * (B - 1)) / (Math.max(2, k) - 1))))];
}

const cellName = (p) => `${plotlySafe(label(p))} ${(100 * p.prob).toFixed(1)}%${note(p) ? ` (${plotlySafe(note(p))})` : ""}`;

// drawLens(el, r) -> {drawn: plotly's promise, note: the last position's answer in words, layout, columns}
export function drawLens(el, r) {
  const n = r.tokens.length, B = r.layers.length;
  const layout = lensLayout(el);
  const names = r.tokens.map((t, i) => `${i}: ${plotlySafe(label(t))}`);
  const hoverOf = (top) => top.map(cellName).join("<br>");
  const finalTop = r.lens[B - 1].map((top) => top[0].id);
  const sameAsFinal = r.lens.map((row) => row.map((top, i) => (top[0].id === finalTop[i] ? 1 : 0)));
  let trace, extra, columns;
  if (layout === "wide") {
    columns = [...Array(B).keys()];
    trace = { x: names, y: r.layers, z: r.lens.map((row) => row.map((top) => top[0].prob)),
      text: r.lens.map((row) => row.map((top) => plotlySafe(label(top[0])))), customdata: r.lens.map((row) => row.map(hoverOf)),
      texttemplate: n <= 24 ? "%{text}" : "", colorbar: { title: { text: "top-1 prob" }, thickness: 12 },
      hovertemplate: "after %{x}, layer %{y}:<br>%{customdata}<extra></extra>" };
    extra = { height: Math.max(420, 18 * B + 140), margin: { l: 60, r: 10, t: 40, b: 110 },
      xaxis: { type: "category", tickangle: -45, title: { text: "position (the token after which the model predicts)" } },
      yaxis: { type: "category", title: { text: "layer boundary" } } };
  } else {
    const plot = (el.clientWidth || 320) - LEFT - 8;
    columns = lensColumns(B, Math.floor(plot / CELL));
    const chars = Math.max(3, Math.floor(plot / columns.length / 6.2));  // what a cell holds at 10 px
    const cols = columns.map((b) => (r.layers[b] === "embed" ? "emb" : r.layers[b]));
    trace = { x: cols, y: names, z: r.tokens.map((_, i) => columns.map((b) => r.lens[b][i][0].prob)),
      text: r.tokens.map((_, i) => columns.map((b) => plotlySafe(shortLabel(r.lens[b][i][0], chars)))),
      customdata: r.tokens.map((_, i) => columns.map((b) => hoverOf(r.lens[b][i]))), texttemplate: "%{text}",
      colorbar: { title: { text: "top-1 prob", side: "right" }, orientation: "h", thickness: 8, len: 1, y: -0.02, yanchor: "top" },
      hovertemplate: "after %{y}, layer %{x}:<br>%{customdata}<extra></extra>" };
    extra = { height: 150 + 26 * n, margin: { l: LEFT, r: 8, t: 56, b: 70 },
      xaxis: { type: "category", side: "top", tickangle: 0 },  // the title names the columns: an axis title there would overlap it
      yaxis: { type: "category", autorange: "reversed", automargin: false, tickfont: { size: 11 } } };
  }
  const title = layout === "wide" ? "top next-token guess from each layer's residual (final norm + unembedding)"
    : `top guess ${(el.clientWidth || 320) < 340 ? "by layer" : "at each layer boundary"}${columns.length < B ? ` (${columns.length} of ${B})` : ""}`;
  const drawn = window.Plotly.react(el, [{ type: "heatmap", ...trace, textfont: { size: 10 }, colorscale: plotlyScale("cividis"),
    zmin: 0, zmax: 1 }], baseLayout(title, extra), config());
  el.dataset.same = JSON.stringify(sameAsFinal);
  el.dataset.layout = layout;
  const first = finalTop.map((id, i) => r.lens.findIndex((row, b) => row[i][0].id === id && r.lens.slice(b).every((rr) => rr[i][0].id === id)));
  const i = n - 1, top = r.lens[B - 1][i][0];
  const shown = columns.length < B
    ? ` The columns are ${columns.length} of the ${B} layer boundaries (${columns.map((b) => r.layers[b]).join(", ")}; the last is the model's output): a wider screen shows them all.`
    : "";
  const text = `After ${quoted(r.tokens[i])}, the final answer ${quoted(top)}${note(top) ? ` (${note(top)})` : ""} `
    + `(${(100 * top.prob).toFixed(1)}%) is the top guess from layer boundary ${r.layers[first[i]]} on.${shown}`;
  return { drawn, note: text, layout, columns };
}
