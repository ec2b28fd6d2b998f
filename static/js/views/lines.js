// bertviz-style head view: query tokens on the left, key tokens on the right, a line for each
// weight (opacity by weight), one colour per head. Lines on a canvas (hundreds of tokens stay
// smooth), labels as focusable DOM elements.

import { headColor } from "../colors.js";
import { el, sharpCanvas } from "../dom.js";
import { noFocus } from "../focus.js";
import { label, note } from "../tokens.js";

export const ROW = 22;

const built = new WeakMap();  // element -> the built view for its token list

function build(root, tokens, focus) {
  const b = built.get(root);
  if (b && b.tokens === tokens) return b;
  root.replaceChildren();
  const wrap = document.createElement("div");
  wrap.className = "lines-wrap";
  wrap.style.height = `${tokens.length * ROW + 8}px`;
  const canvas = document.createElement("canvas");
  canvas.setAttribute("aria-hidden", "true");
  const cols = ["query", "key"].map((side) => {
    const col = document.createElement("div");
    col.className = `lines-col ${side}`;
    tokens.forEach((t, i) => {
      const s = document.createElement("span");
      s.className = "line-token";
      s.dataset.index = String(i);
      s.dataset.side = side;
      s.textContent = label(t);
      if (note(t)) s.title = note(t);
      s.style.top = `${i * ROW + 4}px`;
      s.addEventListener("pointerenter", (e) => e.pointerType === "mouse" && focus.hover(i));
      s.addEventListener("click", () => focus.toggle(i));
      col.append(s);
    });
    return col;
  });
  wrap.addEventListener("pointerleave", (e) => e.pointerType === "mouse" && focus.leave());
  const heads = document.createElement("div");
  heads.className = "lines-heads";
  heads.append(el("span", { textContent: "query (reads)" }), el("span", { textContent: "key (is read)" }));
  wrap.append(canvas, ...cols);
  root.append(heads, wrap);
  const view = { tokens, wrap, canvas, cols, width: 0 };
  built.set(root, view);
  return view;
}

// The lines drawn for a state, with their geometry and style: the canvas draws them, the SVG export
// (static/js/export.js) writes the same ones as vectors. Strongest last, per head in drawing order.
// peaks[h]: head h's largest value (1 for weights, the largest norm for what moved).
export function lineSegments(pattern, n, { heads, token, dir }, width, peaks = []) {
  const x1 = Math.min(150, width * 0.3), x2 = width - Math.min(150, width * 0.3);
  const y = (i) => i * ROW + 4 + ROW / 2;
  const floor = token >= 0 ? 0.002 : Math.max(0.02, 0.5 / n);
  const out = [];
  for (const h of heads) {
    const P = pattern[h];
    if (!P) continue;
    const peak = peaks[h] ?? 1;
    for (let q = 0; q < n; q++) {
      if (token >= 0 && dir === "out" && q !== token) continue;
      for (let k = 0; k < n; k++) {
        if (token >= 0 && dir === "in" && k !== token) continue;
        const w = P[q][k] / peak;
        if (w < floor) continue;
        out.push({ h, q, k, w, x1, y1: y(q), x2, y2: y(k), alpha: Math.min(1, 0.08 + w * (token >= 0 ? 1 : 0.9)),
          lineWidth: token >= 0 ? 1 + 4 * w : 0.6 + 2.5 * w });
      }
    }
  }
  return out;
}

// The view: data.tokens on both sides, a line per weight of data.pattern ([head][query][key]) for the
// focus state. Idempotent; remeasure after a resize. Returns what an export needs: the columns, the
// width and the segments drawn.
export function drawLines(root, { tokens, pattern, peaks = [] }, { heads, token, dir, focus = noFocus, remeasure = false }) {
  const view = build(root, tokens, focus);
  const { wrap, canvas, cols } = view;
  const n = cols[0].children.length;
  if (!view.width || remeasure) view.width = wrap.clientWidth;  // reading it on every hover forced a layout
  const width = view.width;
  const height = n * ROW + 8;
  const ctx = sharpCanvas(canvas, width, height);
  ctx.lineCap = "round";
  const segments = lineSegments(pattern, n, { heads, token, dir }, width, peaks);
  for (const s of segments) {
    ctx.strokeStyle = headColor(s.h);
    ctx.globalAlpha = s.alpha;
    ctx.lineWidth = s.lineWidth;
    ctx.beginPath();
    ctx.moveTo(s.x1, s.y1);
    ctx.lineTo(s.x2, s.y2);
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  const h0 = heads[0];
  for (const col of cols)
    for (const s of col.children) {
      const i = Number(s.dataset.index);
      const isQuery = s.dataset.side === "query";
      const active = token >= 0 && ((dir === "out" && isQuery) || (dir === "in" && !isQuery)) && i === token;
      s.classList.toggle("focus", active);
      let w = 0;
      if (token >= 0 && pattern[h0]) {
        if (dir === "out" && !isQuery) w = pattern[h0][token][i] / (peaks[h0] ?? 1);
        if (dir === "in" && isQuery) w = pattern[h0][i][token] / (peaks[h0] ?? 1);
      }
      s.style.setProperty("--w", w.toFixed(3));
    }
  return { wrap, cols, width, segments };
}
