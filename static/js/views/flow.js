// The information flow graph (the /api/flow payload; Ferrando & Voita 2024): tokens as columns,
// layers as rows, the input at the bottom and the chosen token at the top. Each block's output is a
// sum of parts (the token's own stream, what the heads wrote from each token, the MLP's output); an
// edge is a part, kept when its importance is >= the threshold and it leads to a node already kept,
// from the top down. The same extraction as app/contributions.py's flow_routes, on the same rounded
// numbers, so the graph drawn is the API's.

import { described, quoted, shortLabel } from "../tokens.js";

const SVG = "http://www.w3.org/2000/svg";
const COL = 56;  // px per token column
const GAP_ATTN = 18, GAP_MLP = 8;  // px from x^L to x^{L,mid}, and from x^{L,mid} to x^{L+1}
const TOP = 40, BOTTOM = 30, LABELS = 54;  // token rows above and below; the layer labels' column

// Per data object: its attention edges by layer and query, built once.
const indexes = new WeakMap();

function edgeIndex(data) {
  let ix = indexes.get(data);
  if (!ix) {
    ix = data.attention.map((a) => {
      const rows = new Map();
      a.query.forEach((i, e) => { if (!rows.has(i)) rows.set(i, []); rows.get(i).push(e); });
      return rows;
    });
    indexes.set(data, ix);
  }
  return ix;
}

// routes(data, position, threshold) -> [{kind, layer, source, target, importance, e}] (e: the attention
// edge's index in data.attention[layer]), in flow_routes' order: top layer first.
export function routes(data, position, threshold) {
  const ix = edgeIndex(data), out = [];
  let kept = new Set([position]);
  for (let L = data.layers.length - 1; L >= 0; L--) {
    const mid = new Set();
    for (const i of [...kept].sort((a, b) => a - b)) {
      for (const kind of ["mlp", "mlp_residual"]) {
        const imp = data[kind][L][i];
        if (imp >= threshold) { out.push({ kind, layer: L, source: i, target: i, importance: imp }); mid.add(i); }
      }
    }
    kept = new Set();
    for (const i of [...mid].sort((a, b) => a - b)) {
      const r = data.attention_residual[L][i];
      if (r >= threshold) { out.push({ kind: "attention_residual", layer: L, source: i, target: i, importance: r }); kept.add(i); }
      const a = data.attention[L];
      for (const e of ix[L].get(i) || []) {
        if (a.importance[e] >= threshold) {
          out.push({ kind: "attention", layer: L, source: a.key[e], target: i, importance: a.importance[e], e });
          kept.add(a.key[e]);
        }
      }
    }
  }
  return out;
}

const pct = (x) => `${(100 * x).toFixed(1)}%`;
const tok = (data, i) => `${quoted(data.tokens[i])} (${i})`;

// The numbers of one edge, in words (what hovering it shows).
export function describe(data, edge) {
  const { kind, layer: L, source: j, target: i, importance } = edge;
  if (kind === "attention") {
    const a = data.attention[L];
    const heads = a.heads[edge.e].map((h, k) => `H${h} ${a.moved[edge.e][k].toFixed(4)}`).join(", ");
    return `Layer ${L}, attention ${tok(data, j)} → ${tok(data, i)}: importance ${importance.toFixed(4)} (${pct(importance)} of the block's output).`
      + ` Moved most (‖A·v W_O‖ per head): ${heads}.`;
  }
  const what = { attention_residual: `the residual stream of ${tok(data, i)} through the attention block`,
    mlp_residual: `the residual stream of ${tok(data, i)} past the MLP`, mlp: `the MLP's output at ${tok(data, i)}` }[kind];
  return `Layer ${L}, ${what}: importance ${importance.toFixed(4)} (${pct(importance)} of the block's output).`;
}

const svgEl = (tag, attrs = {}) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
};

// The containers inside el, made once per element (a redraw keeps the scroll position).
const built = new WeakMap();

function parts(el) {
  let p = built.get(el);
  if (!p) {
    const info = document.createElement("p");
    info.className = "flow-info";
    info.setAttribute("aria-live", "polite");
    const scroll = document.createElement("div");
    scroll.className = "flow-scroll";
    scroll.tabIndex = 0;
    scroll.setAttribute("role", "group");
    scroll.setAttribute("aria-label", "Information flow graph: scroll sideways for more tokens");
    const labels = svgEl("svg", { class: "flow-layers", "aria-hidden": "true" });
    const graph = svgEl("svg", { class: "flow-graph" });
    scroll.append(labels, graph);
    el.replaceChildren(info, scroll);
    p = { info, scroll, labels, graph, data: null };
    built.set(el, p);
  }
  return p;
}

// drawFlow(el, data, {position, threshold, onPick}) -> {edges, nodes, width, height, note}
// onPick(i) is called when a top token is clicked (or Enter / Space on it).
export function drawFlow(el, data, { position, threshold, onPick = () => {} }) {
  const p = parts(el);
  const n = data.tokens.length, nL = data.layers.length;
  const width = n * COL, height = TOP + nL * (GAP_ATTN + GAP_MLP) + BOTTOM;
  const x = (i) => i * COL + COL / 2;
  const y = (level) => TOP + (nL - Math.floor(level / 2)) * (GAP_ATTN + GAP_MLP) - (level % 2 ? GAP_ATTN : 0);  // level 2L: x^L, 2L+1: x^{L,mid}
  const edges = routes(data, position, threshold);

  // the layer labels, in their own column that stays put while the graph scrolls
  p.labels.setAttribute("width", LABELS);
  p.labels.setAttribute("height", height);
  const lf = document.createDocumentFragment();
  const text = (parent, s, attrs) => { const t = svgEl("text", attrs); t.textContent = s; parent.append(t); return t; };
  text(lf, "chosen", { x: LABELS - 6, y: y(2 * nL) + 4, class: "flow-label" });
  for (let L = 0; L < nL; L++) text(lf, `layer ${L}`, { x: LABELS - 6, y: y(2 * L) - GAP_ATTN / 2 + 3, class: "flow-label" });
  text(lf, "input", { x: LABELS - 6, y: y(0) + 16, class: "flow-label" });
  p.labels.replaceChildren(lf);

  const g = document.createDocumentFragment();
  p.graph.setAttribute("width", width);
  p.graph.setAttribute("height", height);
  p.graph.setAttribute("viewBox", `0 0 ${width} ${height}`);
  p.graph.setAttribute("role", "img");
  p.graph.setAttribute("aria-label", `Information flow routes to token ${position}, threshold ${threshold}: ${edges.length} edges`);
  const guides = svgEl("g", { class: "flow-guides" });
  for (let i = 0; i < n; i++) guides.append(svgEl("line", { x1: x(i), x2: x(i), y1: y(2 * nL), y2: y(0) }));
  for (let L = 0; L <= nL; L++) guides.append(svgEl("line", { x1: 0, x2: width, y1: y(2 * L), y2: y(2 * L), class: "flow-boundary" }));
  g.append(guides);

  // edges: the path, and a wide transparent twin that takes the pointer
  const lines = svgEl("g", { class: "flow-edges" }), hits = svgEl("g", { class: "flow-hits" });
  const nodes = new Set([`${2 * nL}:${position}`]);
  edges.forEach((ed, k) => {
    const { kind, layer: L, source: j, target: i, importance } = ed;
    let d;
    if (kind === "attention") {
      const [x1, y1, x2, y2] = [x(j), y(2 * L), x(i), y(2 * L + 1)];
      d = i === j ? `M${x1},${y1} C${x1 + 12},${y1 - 6} ${x2 + 12},${y2 + 6} ${x2},${y2}`  // to itself: bows right of the residual
        : `M${x1},${y1} C${x1},${y1 - GAP_ATTN * 0.6} ${x2},${y2 + GAP_ATTN * 0.6} ${x2},${y2}`;
      nodes.add(`${2 * L}:${j}`).add(`${2 * L + 1}:${i}`);
    } else if (kind === "attention_residual") {
      d = `M${x(i)},${y(2 * L)} L${x(i)},${y(2 * L + 1)}`;
      nodes.add(`${2 * L}:${i}`).add(`${2 * L + 1}:${i}`);
    } else if (kind === "mlp_residual") {
      d = `M${x(i)},${y(2 * L + 1)} L${x(i)},${y(2 * L + 2)}`;
      nodes.add(`${2 * L + 1}:${i}`).add(`${2 * L + 2}:${i}`);
    } else {  // the MLP: bows left of the residual
      d = `M${x(i)},${y(2 * L + 1)} C${x(i) - 10},${y(2 * L + 1) - 2} ${x(i) - 10},${y(2 * L + 2) + 2} ${x(i)},${y(2 * L + 2)}`;
    }
    const r = Math.sqrt(importance);  // width and opacity grow with importance; the root keeps a 0.05 edge visible beside a 0.9 one
    lines.append(svgEl("path", { d, class: `flow-edge flow-${kind}`, "stroke-width": (0.6 + 4.4 * r).toFixed(2),
      "stroke-opacity": (0.3 + 0.7 * r).toFixed(3), "data-k": k, "data-edge": `${kind} ${L} ${j} ${i}` }));
    hits.append(svgEl("path", { d, class: "flow-hit", "data-k": k }));
  });
  g.append(lines);
  const dots = svgEl("g", { class: "flow-nodes" });
  for (const key of nodes) {
    const [level, i] = key.split(":").map(Number);
    dots.append(svgEl("circle", { cx: x(i), cy: y(level), r: level === 2 * nL ? 4.5 : 1.8, class: level === 2 * nL ? "flow-top" : "" }));
  }
  g.append(dots, hits);

  // tokens: the input row below, the chosen row above (buttons: click, Enter or Space picks)
  for (let i = 0; i < n; i++) {
    const t = data.tokens[i], short = shortLabel(t, 7);
    const bottom = text(g, short, { x: x(i), y: y(0) + 18, class: "flow-token" });
    bottom.append(Object.assign(svgEl("title"), { textContent: `input token ${i}: ${described(t)}` }));
    const pick = svgEl("g", { class: "flow-pick", role: "button", tabindex: 0, "data-i": i, "aria-pressed": i === position,
      "aria-label": `show the routes to token ${i}, ${described(t)}` });
    pick.append(svgEl("rect", { x: x(i) - COL / 2 + 3, y: 4, width: COL - 6, height: 22, rx: 5 }));
    text(pick, short, { x: x(i), y: 19 });
    g.append(pick);
  }
  const focused = p.graph.contains(document.activeElement) ? document.activeElement.closest(".flow-pick")?.dataset.i : undefined;
  p.graph.replaceChildren(g);
  if (focused !== undefined) p.graph.querySelector(`.flow-pick[data-i="${focused}"]`)?.focus();  // a keyboard pick keeps its place

  const show = (k) => {
    for (const e of p.graph.querySelectorAll(".flow-edge.hot")) e.classList.remove("hot");
    if (k === null) { p.info.textContent = hint(data, position, threshold, edges); return; }
    p.graph.querySelector(`.flow-edge[data-k="${k}"]`)?.classList.add("hot");
    p.info.textContent = describe(data, edges[k]);
  };
  const at = (ev) => ev.target.closest?.(".flow-hit");
  p.graph.onpointerover = (ev) => { const h = at(ev); if (h) show(Number(h.dataset.k)); };
  p.graph.onpointerout = (ev) => { if (at(ev) && !at({ target: ev.relatedTarget || p.graph })) show(null); };
  p.graph.onclick = (ev) => {
    const h = at(ev);
    if (h) return show(Number(h.dataset.k));  // a tap on a phone
    const b = ev.target.closest?.(".flow-pick");
    if (b) onPick(Number(b.dataset.i));
  };
  p.graph.onkeydown = (ev) => {
    const b = ev.target.closest?.(".flow-pick");
    if (b && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); onPick(Number(b.dataset.i)); }
  };
  show(null);
  if (p.data !== data) {  // new numbers: bring the chosen token into view
    p.data = data;
    p.scroll.scrollLeft = Math.max(0, x(position) + LABELS - p.scroll.clientWidth / 2);
  }
  return { edges, nodes: [...nodes], width, height, note: summary(data, position, threshold, edges) };
}

function hint(data, position, threshold, edges) {
  return edges.length ? `Hover or tap a line for its numbers (${edges.length} edges at τ = ${threshold}).` : "";
}

// What the graph says, in one sentence: the input tokens the routes start from.
export function summary(data, position, threshold, edges) {
  const inputs = [...new Set(edges.filter((e) => e.layer === 0 && e.kind.startsWith("attention")).map((e) => e.source))].sort((a, b) => a - b);
  const top = quoted(data.tokens[position]);
  if (!inputs.length) return `At τ = ${threshold}, no route from the input reaches ${top} (${position}): lower the threshold.`;
  const across = edges.filter((e) => e.kind === "attention" && e.source !== e.target).length;
  const names = inputs.slice(0, 10).map((j) => quoted(data.tokens[j])).join(", ") + (inputs.length > 10 ? `, and ${inputs.length - 10} more` : "");
  return `At τ = ${threshold}, ${edges.length} edges lead from ${inputs.length} input token${inputs.length > 1 ? "s" : ""} `
    + `(${names}) to ${top} (${position}) at the top; ${across} of them carr${across === 1 ? "ies" : "y"} information from one token to another.`;
}
