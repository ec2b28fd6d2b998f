// The sentence as a row of token chips, with curved arrows from each key token to the query token
// that reads it. Stroke width and opacity follow the weight; each head has its colour.

import { headColor } from "../colors.js";
import { noFocus } from "../focus.js";
import { label, note } from "../tokens.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_ARROWS = 400;  // beyond this many, only the strongest are drawn (the page must not choke)

// The chips of a token list, built once per list and element (a redraw with the same tokens keeps
// them, and with them the keyboard focus); handlers: a focus.js tokenFocus (or noFocus).
const built = new WeakMap();  // element -> {tokens, chips}

function chipsFor(el, tokens, focus, still) {
  const b = built.get(el);
  if (b && b.tokens === tokens) return b.chips;
  el.replaceChildren();
  const row = document.createElement("div");
  row.className = "chips";
  row.setAttribute("role", "listbox");
  row.setAttribute("aria-label", "Tokens: hover or focus one to see where it looks; Enter locks it");
  const chips = tokens.map((t, i) => {
    const c = document.createElement("button");
    c.type = "button";
    c.className = "chip";
    c.dataset.index = String(i);
    c.setAttribute("role", "option");
    c.setAttribute("aria-selected", "false");
    c.tabIndex = still ? -1 : i === 0 ? 0 : -1;
    c.textContent = label(t);
    c.title = `token ${i}: id ${t.id}, characters ${t.start}–${t.end}${note(t) ? `\n${note(t)}` : ""}`;
    c.addEventListener("pointerenter", (e) => e.pointerType === "mouse" && focus.hover(i));
    c.addEventListener("focus", () => focus.hover(i));
    c.addEventListener("click", () => focus.toggle(i));
    c.addEventListener("keydown", (e) => focus.key(e, i, chips));
    row.append(c);
    return c;
  });
  row.addEventListener("pointerleave", (e) => e.pointerType === "mouse" && focus.leave());
  const svg = document.createElementNS(SVG, "svg");
  svg.classList.add("arrow-layer");
  svg.setAttribute("aria-hidden", "true");
  el.append(svg, row);
  built.set(el, { tokens, chips });
  return chips;
}

// Which (query, key, value) links to draw for the state. pattern: rows [H][n][n] (weights, or what
// moved); peaks[h]: head h's largest value (1 for weights). r = w / peak is what the drawing follows.
export function links(pattern, heads, token, dir, n, peaks = []) {
  const out = [];
  for (const h of heads) {
    const P = pattern[h];
    if (!P) continue;
    const peak = peaks[h] ?? 1;
    if (token >= 0) {
      for (let j = 0; j < n; j++) {
        const [q, k] = dir === "out" ? [token, j] : [j, token];
        const w = P[q][k];
        if (w / peak > 0.005) out.push({ h, q, k, w, r: w / peak });
      }
    } else {
      const floor = Math.max(0.1, 2 / n);
      for (let q = 0; q < n; q++) for (let k = 0; k < n; k++) if (P[q][k] / peak >= floor) out.push({ h, q, k, w: P[q][k], r: P[q][k] / peak });
    }
  }
  out.sort((a, b) => b.r - a.r);
  return out.slice(0, MAX_ARROWS);
}

// The view: the chips of data.tokens with the arrows of data.pattern ([head][query][key]) for the
// focus state over them. Idempotent; returns what an export needs: {chips, links}.
export function drawArrows(el, { tokens, pattern, peaks = [] }, { heads, token, dir, focus = noFocus, still = false }) {
  const chips = chipsFor(el, tokens, focus, still);
  const svg = el.querySelector("svg.arrow-layer");
  const box = el.getBoundingClientRect();
  svg.setAttribute("width", String(box.width));
  svg.setAttribute("height", String(box.height));
  const centres = chips.map((c) => {
    const r = c.getBoundingClientRect();
    return { x: r.left - box.left + r.width / 2, y: r.top - box.top, w: r.width };
  });
  const n = chips.length;
  const ls = links(pattern, heads, token, dir, n, peaks);
  const frag = document.createDocumentFragment();
  const defs = document.createElementNS(SVG, "defs");
  for (const h of heads) {
    const m = document.createElementNS(SVG, "marker");
    m.id = `arrowhead-${h}`;
    for (const [k, v] of Object.entries({ viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "5", markerHeight: "5", orient: "auto-start-reverse" }))
      m.setAttribute(k, v);
    const p = document.createElementNS(SVG, "path");
    p.setAttribute("d", "M0,0 L10,5 L0,10 z");
    p.setAttribute("fill", headColor(h));
    m.append(p);
    defs.append(m);
  }
  frag.append(defs);
  const spread = heads.length > 1 ? 4 : 0;
  for (const { h, q, k, w, r } of ls.reverse()) {  // strongest drawn last, on top
    const a = centres[k], b = centres[q];
    const shift = (heads.indexOf(h) - (heads.length - 1) / 2) * spread;
    const path = document.createElementNS(SVG, "path");
    let d;
    if (q === k) {  // attention to itself: a small loop above the chip
      const x = a.x + shift, y = a.y;
      d = `M${x - 6},${y} C${x - 14},${y - 22} ${x + 14},${y - 22} ${x + 6},${y}`;
    } else {
      const x1 = a.x + shift, x2 = b.x + shift, y1 = a.y, y2 = b.y;
      const lift = Math.min(90, 14 + Math.abs(x2 - x1) * 0.25 + Math.abs(y2 - y1) * 0.1);
      d = `M${x1},${y1} C${x1},${Math.min(y1, y2) - lift} ${x2},${Math.min(y1, y2) - lift} ${x2},${y2 - 2}`;
    }
    path.setAttribute("d", d);
    path.setAttribute("stroke", headColor(h));
    path.setAttribute("stroke-width", (0.8 + 5 * r).toFixed(2));
    path.setAttribute("stroke-opacity", (0.18 + 0.82 * r).toFixed(3));
    path.setAttribute("fill", "none");
    path.setAttribute("marker-end", `url(#arrowhead-${h})`);
    path.dataset.query = String(q);
    path.dataset.key = String(k);
    path.dataset.head = String(h);
    path.dataset.weight = w.toFixed(4);
    frag.append(path);
  }
  svg.replaceChildren(frag);
  // chips: the focused token, and how strongly each other token is linked to it (first drawn head)
  const h0 = heads[0];
  chips.forEach((c, i) => {
    const w = token < 0 || !pattern[h0] ? 0 : (dir === "out" ? pattern[h0][token][i] : pattern[h0][i][token]) / (peaks[h0] ?? 1);
    c.classList.toggle("focus", i === token);
    c.setAttribute("aria-selected", String(i === token));
    c.style.setProperty("--w", token < 0 ? "0" : w.toFixed(3));
  });
  return { chips, links: ls };
}
