// Heatmap of one head (plotly): rows are query tokens, columns key tokens. Masked cells (a causal
// model cannot look ahead) are left empty over a grey, hatched background. Hover shows the exact
// weight and the pre-softmax score in a tooltip of our own (plotly's label cannot wait for a number
// fetched on hover, and building its n x n hover strings cost every redraw). The highlighted
// row/column is an overlay, not a relayout, so hovering a token costs a style change, not a redraw.

import { LUT, plotlyScale } from "../colors.js";
import { css, sharpCanvas } from "../dom.js";
import { config, plotArea } from "../plotly.js";
import { label, note, plotlySafe } from "../tokens.js";

const drawn = new WeakMap();  // element -> {inputs of its last chart, what the hover and a click need}

// The view: data = {tokens, pattern: one head's [query][key] (exact: the hover prints it), causal, scores
// (pre-softmax) or null}; measure "moved": pattern holds what the head carried (raw norms, up to peak),
// weights (or null) the attention weights. The hover's second number (the score; for moved, the weight)
// comes from scores / weights when given, else from options.detail(query, key) -> a promise of it (the
// explorer fetches it on hover). options = {layer, head, token, dir, onCellClick(query, key), detail}.
// Plotly redraws only when the chart's inputs changed (a new focus only moves the highlight).
// Resolves to the plot area (plotArea).
export async function drawHeatmap(el, { tokens, pattern, scores = null, causal, measure = "weight", peak = 1, weights = null },
  { layer, head, token = -1, dir = "out", onCellClick = () => {}, scale = "viridis", detail = null }) {
  const last = drawn.get(el);
  const inputs = [tokens, pattern, causal, measure, peak, layer, head, scale];
  const given = measure === "moved" ? weights : scores;
  const second = given ? (i, j) => given[i][j] : detail;
  const redraw = !last || inputs.some((x, i) => x !== last.inputs[i]);
  // chart: which chart this is (a tooltip's late number is written only into the chart it was asked for)
  drawn.set(el, { inputs, onCellClick, tokens, pattern, measure, second, chart: redraw ? (last?.chart ?? 0) + 1 : last.chart });
  if (redraw) {
    hideTip(el);
    await chart(el, { tokens, pattern, causal, measure, peak, layer, head, scale });
    el.querySelector(":scope > canvas.hm-preview")?.remove();
  }
  if (!last) {
    el.on("plotly_click", (ev) => {  // a click on a cell locks its query token
      const p = ev.points?.[0];
      if (p) drawn.get(el).onCellClick(p.y, p.x);
    });
    el.on("plotly_hover", (ev) => showTip(el, ev));
    el.on("plotly_unhover", () => hideTip(el));
  }
  highlight(el, tokens.length, token, dir);
  return plotArea(el);
}

function chart(el, { tokens, pattern, causal, measure, peak, layer, head, scale }) {
  const moved = measure === "moved";
  const n = tokens.length;
  const names = tokens.map((t) => plotlySafe(label(t)));
  const z = pattern.map((row, i) => Array.from(row, (w, j) => (causal && j > i ? null : w)));
  const tickStep = Math.max(1, Math.ceil(n / 40));
  const ticks = [...Array(n).keys()].filter((i) => i % tickStep === 0);
  const trace = {
    type: "heatmap", z, x: [...Array(n).keys()], y: [...Array(n).keys()], zmin: 0, zmax: moved ? peak : 1,
    colorscale: plotlyScale(scale), hoverongaps: false, xgap: n <= 48 ? 1 : 0, ygap: n <= 48 ? 1 : 0,
    colorbar: { title: { text: moved ? "moved ‖·‖₂" : "weight", side: "right" }, thickness: 12, len: 0.9, tickfont: { color: css("--fg") } },
    hoverinfo: "none",  // hover events still fire: the tooltip is ours (showTip)
  };
  const axis = (title) => ({
    tickmode: "array", tickvals: ticks, ticktext: ticks.map((i) => names[i]), tickfont: { size: n > 40 ? 9 : 11, color: css("--fg") },
    title: { text: title, font: { color: css("--muted") } }, showgrid: false, zeroline: false, fixedrange: true,
  });
  const layout = {
    margin: { l: MARGIN.l, r: 10, t: MARGIN.t, b: MARGIN.b }, height: chartHeight(n),
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: css("--masked"), hovermode: "closest",
    title: { text: `layer ${layer}, head ${head}${moved ? " · what it moved" : ""}`, font: { size: 13, color: css("--fg") }, x: 0.02 },
    xaxis: { ...axis("key (is read)"), tickangle: -45, side: "bottom" },
    yaxis: { ...axis("query (reads)"), autorange: "reversed" },
    font: { family: css("--font") || "system-ui" },
  };
  return window.Plotly.react(el, [trace], layout, config({
    modeBarButtonsToRemove: ["select2d", "lasso2d", "zoom2d", "pan2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "resetScale2d"],
    toImageButtonOptions: { filename: `attnscope-heatmap-L${layer}-H${head}` } }));
}

const MARGIN = { l: 90, t: 30, b: 90, r: 96 };  // the chart's plot area in its box (r: plotly's 10 + the colour bar's ~86)
const chartHeight = (n) => Math.max(320, Math.min(640, 180 + n * 14));

// Before plotly.js has arrived (a first load: it takes the browser most of a second to evaluate), the
// same cells, in the same colours and place, as a picture on a canvas: the explorer draws this at once
// and the chart (hover, click, export) over it when plotly is ready. Resolves nothing: returns the
// plot area, marked preview.
export function drawHeatmapPreview(el, { tokens, pattern, causal, measure = "weight", peak = 1 },
  { layer, head, token = -1, dir = "out", scale = "viridis" }) {
  const n = tokens.length, width = el.clientWidth, height = chartHeight(n);
  const { l, t, b } = MARGIN, w = Math.max(10, width - l - MARGIN.r), h = height - t - b;
  let c = el.querySelector(":scope > canvas.hm-preview");
  if (!c) {
    c = document.createElement("canvas");
    c.className = "hm-preview";
    c.setAttribute("role", "img");
    el.prepend(c);
  }
  c.setAttribute("aria-label", `heatmap of layer ${layer}, head ${head}${measure === "moved" ? ", what it moved" : ""}: the chart is loading`);
  const ctx = sharpCanvas(c, width, height);
  ctx.fillStyle = css("--masked");
  ctx.fillRect(l, t, w, h);
  // one pixel a cell, scaled up unsmoothed; masked cells left transparent (the masked colour shows)
  const cells = new ImageData(n, n), lut = LUT[scale], top = measure === "moved" ? peak : 1;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      if (causal && j > i) continue;
      const v = Math.round(255 * Math.min(1, Math.max(0, pattern[i][j] / top))), k = (i * n + j) * 4;
      cells.data.set([lut[v * 3], lut[v * 3 + 1], lut[v * 3 + 2], 255], k);
    }
  const px = document.createElement("canvas");
  px.width = n;
  px.height = n;
  px.getContext("2d").putImageData(cells, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(px, l, t, w, h);
  if (n <= 48) {  // the chart's 1 px gaps between cells (xgap, ygap)
    ctx.fillStyle = css("--panel");
    for (let i = 1; i < n; i++) {
      ctx.fillRect(l + (i * w) / n - 0.5, t, 1, h);
      ctx.fillRect(l, t + (i * h) / n - 0.5, w, 1);
    }
  }
  // the title and the tokens along the axes, as the chart writes them
  const font = css("--font") || "system-ui";
  ctx.fillStyle = css("--fg");
  ctx.font = `13px ${font}`;
  ctx.fillText(`layer ${layer}, head ${head}${measure === "moved" ? " · what it moved" : ""}`, width * 0.02, 18);
  ctx.font = `${n > 40 ? 9 : 11}px ${font}`;
  const step = Math.max(1, Math.ceil(n / 40));
  for (let i = 0; i < n; i += step) {
    const name = label(tokens[i]), y = t + (i + 0.5) * (h / n), x = l + (i + 0.5) * (w / n);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillText(name, l - 6, y);
    ctx.save();
    ctx.translate(x, t + h + 6);
    ctx.rotate(-Math.PI / 4);
    ctx.fillText(name, 0, 0);
    ctx.restore();
  }
  const area = { preview: true, l, t, w, h, width, height };
  highlight(el, n, token, dir, area);
  return area;
}

const NONE = Symbol("no second number");  // a heatmap given neither scores, weights nor detail

// The hover's text for cell (query i, key j): the tokens, the exact value drawn, and the second number
// (a number, or null for masked; undefined: "…" until it arrives; NONE: left out). Lines of text, never HTML.
export function tipLines({ tokens, pattern, measure }, i, j, second) {
  const moved = measure === "moved";
  const pieces = [note(tokens[i]) && `query: ${note(tokens[i])}`, j !== i && note(tokens[j]) && `key: ${note(tokens[j])}`].filter(Boolean);
  const main = `${moved ? "moved" : "weight"} ${pattern[i][j].toFixed(4)}`;
  const rest = second === undefined ? "…" : second === null ? "masked" : second.toFixed(moved ? 4 : 3);
  return [`${label(tokens[i])} (${i}) → ${label(tokens[j])} (${j})`, ...pieces, main,
    ...(second === NONE ? [] : [`${moved ? "weight" : "score (q·k/√d)"} ${rest}`])];
}

function tipOf(el) {
  let tip = el.querySelector(":scope > .hm-tip");
  if (!tip) {
    tip = document.createElement("div");
    tip.className = "hm-tip";
    tip.setAttribute("role", "tooltip");
    tip.hidden = true;
    el.append(tip);
  }
  return tip;
}

function writeTip(tip, lines) {
  tip.replaceChildren(...lines.map((t) => Object.assign(document.createElement("div"), { textContent: t })));
}

function showTip(el, ev) {
  const p = ev.points?.[0];
  const d = drawn.get(el);
  if (!p || !d || p.z === null || p.z === undefined) return hideTip(el);
  const i = p.y, j = p.x, tip = tipOf(el), cell = `${i},${j}`;
  tip.dataset.cell = cell;
  let value = d.second ? d.second(i, j) : NONE;
  if (value instanceof Promise) {
    const ask = value;
    value = undefined;
    const still = () => tip.dataset.cell === cell && !tip.hidden && drawn.get(el).chart === d.chart;
    ask.then((v) => still() && writeTip(tip, tipLines(d, i, j, v)),
      () => still() && writeTip(tip, [...tipLines(d, i, j, undefined).slice(0, -1), "(the second number could not be fetched)"]));
  }
  writeTip(tip, tipLines(d, i, j, value));
  tip.hidden = false;
  const box = el.getBoundingClientRect(), e = ev.event;
  const x = (e?.clientX ?? box.left) - box.left, y = (e?.clientY ?? box.top) - box.top;
  const w = tip.offsetWidth;
  tip.style.transform = `translate(${Math.max(0, Math.min(x + 14, box.width - w - 4))}px, ${y + 14}px)`;
}

function hideTip(el) {
  const tip = el.querySelector(":scope > .hm-tip");
  if (tip) {
    tip.hidden = true;
    delete tip.dataset.cell;
  }
}

// Highlight a row (dir "out": where token i looks) or a column (dir "in": who looks at token i).
export function highlight(el, n, token, dir, size = plotArea(el)) {
  let box = el.querySelector(".hm-highlight");
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
