// Attention rollout (the /api/rollout payload): after layer L, how much of each input token (key,
// columns) has reached each position (query, rows), following the heads' mean attention and the
// residual connection (Abnar & Zuidema 2020). Rows sum to 1.

import { plotlyScale } from "../colors.js";
import { baseLayout, config } from "../plotly.js";
import { label, plotlySafe, quoted } from "../tokens.js";

// drawRollout(el, r, {layer}) -> {drawn: plotly's promise, note: the last position's story in words}
export function drawRollout(el, r, { layer }) {
  const R = r.rollout[layer], n = r.tokens.length;
  const names = r.tokens.map((t, i) => `${i}: ${plotlySafe(label(t))}`);
  const drawn = window.Plotly.react(el, [{
    type: "heatmap", z: R, x: names, y: names, zmin: 0, zmax: 1, colorscale: plotlyScale("viridis"),
    colorbar: { title: { text: "share" }, thickness: 12 }, hovertemplate: "position %{y}<br>holds %{z:.1%} of %{x}<extra></extra>",
  }], baseLayout(`after layer ${r.layers[layer]}: ${(el.clientWidth || 800) < 480 ? "what each position holds" // a phone: a title that fits
    : "how much of each token (columns) each position holds (rows)"}`, {
    height: Math.max(340, Math.min(640, 160 + n * 18)), margin: { l: 110, r: 10, t: 40, b: 110 },
    xaxis: { type: "category", tickangle: -45, title: { text: "input token" } },
    yaxis: { type: "category", autorange: "reversed", title: { text: "position" } } }), config({ displayModeBar: false }));
  const last = R[n - 1];
  const order = [...last.keys()].sort((a, b) => last[b] - last[a]);
  const top = order.slice(0, 3).map((j) => `${quoted(r.tokens[j])} ${(100 * last[j]).toFixed(1)}%`).join(", ");
  const note = `After layer ${r.layers[layer]}, the last position ${quoted(r.tokens[n - 1])} holds most of ${top}`
    + ` (its own token: ${(100 * last[n - 1]).toFixed(1)}%). Rollout assumes every head mixes equally and ignores what the values carry:`
    + " a rough map of where information can have come from, not of what moved.";
  return { drawn, note };
}
