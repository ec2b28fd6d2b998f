// Heatmap of one head (plotly): rows are query tokens, columns key tokens. Masked cells (a causal
// model cannot look ahead) are left empty over a grey, hatched background. Hover shows the exact
// weight and the pre-softmax score. The highlighted row/column is an overlay, not a relayout, so
// hovering a token costs a style change, not a redraw.

import { plotlyScale } from "../colors.js";
import { css } from "../dom.js";
import { config, plotArea } from "../plotly.js";
import { label, note, plotlySafe } from "../tokens.js";

const drawn = new WeakMap();  // element -> {inputs of its last chart, onCellClick}

// The view: data = {tokens, pattern: one head's [query][key], scores (pre-softmax, or null), causal};
// measure "moved": pattern holds what the head carried (raw norms, up to peak), weights (or null) the
// attention weights, shown on hover. options = {layer, head, token, dir, onCellClick(query, key)}.
// Plotly redraws only when the chart's inputs changed (a new focus only moves the highlight).
// Resolves to the plot area (plotArea).
export async function drawHeatmap(el, { tokens, pattern, scores, causal, measure = "weight", peak = 1, weights = null },
  { layer, head, token = -1, dir = "out", onCellClick = () => {}, scale = "viridis" }) {
  const last = drawn.get(el);
  const inputs = [tokens, pattern, scores, causal, measure, peak, weights, layer, head, scale];
  drawn.set(el, { inputs, onCellClick });
  if (!last || inputs.some((x, i) => x !== last.inputs[i])) await chart(el, { tokens, pattern, scores, causal, measure, peak, weights, layer, head, scale });
  if (!last) el.on("plotly_click", (ev) => {  // a click on a cell locks its query token
    const p = ev.points?.[0];
    if (p) drawn.get(el).onCellClick(p.y, p.x);
  });
  highlight(el, tokens.length, token, dir);
  return plotArea(el);
}

function chart(el, { tokens, pattern, scores, causal, measure, peak, weights, layer, head, scale }) {
  const moved = measure === "moved";
  const n = tokens.length;
  const names = tokens.map((t) => plotlySafe(label(t)));
  const notes = tokens.map((t) => (note(t) ? plotlySafe(note(t)) : ""));  // what a byte piece is, on hover
  const z = pattern.map((row, i) => row.map((w, j) => (causal && j > i ? null : w)));
  const detailed = n <= 160;
  const pieces = (i, j) => [notes[i] && `query: ${notes[i]}`, j !== i && notes[j] && `key: ${notes[j]}`].filter(Boolean).map((s) => `<br>${s}`).join("");
  const text = detailed ? z.map((row, i) => row.map((_, j) => `${names[i]} (${i}) → ${names[j]} (${j})${pieces(i, j)}`)) : undefined;
  const custom = moved ? weights?.map((row) => row.map((w) => w.toFixed(4)))
    : scores?.map((row) => row.map((s) => (s === null ? "masked" : s.toFixed(3))));
  const tickStep = Math.max(1, Math.ceil(n / 40));
  const ticks = [...Array(n).keys()].filter((i) => i % tickStep === 0);
  const trace = {
    type: "heatmap", z, x: [...Array(n).keys()], y: [...Array(n).keys()], zmin: 0, zmax: moved ? peak : 1,
    colorscale: plotlyScale(scale), hoverongaps: false, xgap: n <= 48 ? 1 : 0, ygap: n <= 48 ? 1 : 0,
    colorbar: { title: { text: moved ? "moved ‖·‖₂" : "weight", side: "right" }, thickness: 12, len: 0.9, tickfont: { color: css("--fg") } },
    text, customdata: custom,
    hovertemplate: (detailed ? "%{text}" : "query %{y} → key %{x}") + (moved ? "<br>moved %{z:.4f}" : "<br>weight %{z:.4f}") +
      (custom ? (moved ? "<br>weight %{customdata}" : "<br>score (q·k/√d) %{customdata}") : "") + "<extra></extra>",
  };
  const axis = (title) => ({
    tickmode: "array", tickvals: ticks, ticktext: ticks.map((i) => names[i]), tickfont: { size: n > 40 ? 9 : 11, color: css("--fg") },
    title: { text: title, font: { color: css("--muted") } }, showgrid: false, zeroline: false, fixedrange: true,
  });
  const layout = {
    margin: { l: 90, r: 10, t: 30, b: 90 }, height: Math.max(320, Math.min(640, 180 + n * 14)),
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: css("--masked"),
    title: { text: `layer ${layer}, head ${head}${moved ? " · what it moved" : ""}`, font: { size: 13, color: css("--fg") }, x: 0.02 },
    xaxis: { ...axis("key (is read)"), tickangle: -45, side: "bottom" },
    yaxis: { ...axis("query (reads)"), autorange: "reversed" },
    font: { family: css("--font") || "system-ui" },
  };
  return window.Plotly.react(el, [trace], layout, config({
    modeBarButtonsToRemove: ["select2d", "lasso2d", "zoom2d", "pan2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "resetScale2d"],
    toImageButtonOptions: { filename: `attnscope-heatmap-L${layer}-H${head}` } }));
}

// Highlight a row (dir "out": where token i looks) or a column (dir "in": who looks at token i).
export function highlight(el, n, token, dir) {
  let box = el.querySelector(".hm-highlight");
  const size = plotArea(el);
  if (!size || token < 0 || token >= n) {
    if (box) box.hidden = true;
    return;
  }
  if (!box) {
    box = document.createElement("div");
    box.className = "hm-highlight";
    box.setAttribute("aria-hidden", "true");
    el.append(box);
  }
  box.hidden = false;
  const cw = size.w / n, ch = size.h / n;
  const [left, top, width, height] = dir === "out"
    ? [size.l, size.t + token * ch, size.w, ch]
    : [size.l + token * cw, size.t, cw, size.h];
  box.style.transform = `translate(${left}px, ${top}px)`;
  box.style.width = `${width}px`;
  box.style.height = `${height}px`;
  box.dataset.token = String(token);
  box.dataset.dir = dir;
}
