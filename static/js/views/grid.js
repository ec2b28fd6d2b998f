// All heads at a glance: one small pattern per (layer, head), layers left to right, heads top to
// bottom, on one canvas. Click (or Enter on the focused cell) selects that head; arrow keys move.
// Brightness follows √weight so that weak but structured patterns stay visible (the heatmap is linear).

import { LUT } from "../colors.js";
import { css, sharpCanvas } from "../dom.js";

const MAX_PIXELS = 64;  // a thumbnail draws at most 64x64 cells: the server max-pools longer patterns to that (GRID_POOL)

const drawn = new WeakMap();  // canvas -> {geometry, onPick} of its last drawing, for its event handlers
const cues = new WeakMap();  // el -> its "scroll sideways" cue

// On a narrow screen the grid is wider than its box and scrolls sideways: say so, and which layers are
// in view, and fade the edge where more is (static/css/app.css .grid.scrolls).
function scrollCue(el, geometry) {
  let c = cues.get(el);
  if (!c) {
    c = { cue: document.createElement("p"), geometry };
    c.cue.className = "grid-cue muted small";
    el.after(c.cue);
    cues.set(el, c);
    el.addEventListener("scroll", () => updateCue(el), { passive: true });
  }
  c.geometry = geometry;
  updateCue(el);
}

function updateCue(el) {
  const { cue, geometry: { left, pitch, nLayers } } = cues.get(el);
  const scrolls = el.scrollWidth > el.clientWidth + 1, atEnd = el.scrollLeft + el.clientWidth >= el.scrollWidth - 1;
  const first = Math.max(0, Math.ceil((el.scrollLeft - left) / pitch));
  const last = Math.min(nLayers - 1, Math.floor((el.scrollLeft + el.clientWidth - left) / pitch) - 1);
  el.classList.toggle("scrolls", scrolls);
  el.classList.toggle("at-end", atEnd);
  el.classList.toggle("at-start", el.scrollLeft <= 1);
  cue.hidden = !scrolls;
  cue.textContent = `Layers ${first}–${last} of 0–${nLayers - 1} in view: scroll sideways ${atEnd ? "←" : "→"} for the rest.`;
}

function canvasOf(el) {
  let canvas = el.querySelector("canvas");
  if (canvas) return canvas;
  canvas = document.createElement("canvas");
  canvas.tabIndex = 0;
  canvas.setAttribute("role", "grid");
  el.append(canvas);
  canvas.addEventListener("click", (e) => {
    const { geometry: g, onPick } = drawn.get(canvas);
    const r = canvas.getBoundingClientRect();
    const L = Math.floor((e.clientX - r.left - g.left) / g.pitch), H = Math.floor((e.clientY - r.top - g.top) / g.pitch);
    if (L >= 0 && L < g.nLayers && H >= 0 && H < g.nHeads) onPick(L, H, e);
  });
  canvas.addEventListener("keydown", (e) => {
    const { geometry: g, onPick } = drawn.get(canvas);
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[e.key]) {
      e.preventDefault();
      const L = Math.min(g.nLayers - 1, Math.max(0, g.layer + moves[e.key][0]));
      const H = Math.min(g.nHeads - 1, Math.max(0, g.head + moves[e.key][1]));
      onPick(L, H, e);
    }
  });
  return canvas;
}

// The view: data = {data: {layer: Float32Array [H*n*n]}, n, nLayers, nHeads, causal}; options = the
// selected {layer, head}, headsOff ["L.H", ...] crossed out, onPick(L, H, event). Returns the
// geometry (CSS px): {left, top, pitch, cell, labelEvery, nLayers, nHeads, layer, head, width, height}.
export function drawGrid(el, { data, peak, n, nLayers, nHeads, causal }, { layer, head, headsOff = [], onPick = () => {}, scale = "viridis", still = false }) {
  const canvas = canvasOf(el);
  if (still) canvas.tabIndex = -1;
  const width = el.clientWidth || 600;
  const left = 28, top = 18;
  const pitch = Math.max(18, Math.min(72, Math.floor((width - left - 4) / nLayers)));
  const cell = pitch - 3;
  const cssW = left + pitch * nLayers + 2, cssH = top + pitch * nHeads + 2;
  const labelEvery = pitch < 24 ? 5 : 1;
  const geometry = { left, top, pitch, cell, labelEvery, nLayers, nHeads, layer, head, width: cssW, height: cssH };
  drawn.set(canvas, { geometry, onPick });
  canvas.setAttribute("aria-label", `All ${nLayers * nHeads} heads: layer ${layer}, head ${head} selected. Arrow keys move, the selection follows.`);
  const ctx = sharpCanvas(canvas, cssW, cssH);
  ctx.fillStyle = css("--muted", "#888");
  ctx.font = "10px system-ui, sans-serif";
  ctx.textAlign = "center";
  for (let L = 0; L < nLayers; L += labelEvery) ctx.fillText(String(L), left + L * pitch + cell / 2, 11);
  ctx.textAlign = "right";
  for (let H = 0; H < nHeads; H++) ctx.fillText(String(H), left - 6, top + H * pitch + cell / 2 + 3);
  paintThumbnails(ctx, { data, peak, n, nLayers, nHeads, causal, scale }, geometry);
  ctx.strokeStyle = css("--accent", "#f60");
  ctx.lineWidth = 2;
  ctx.strokeRect(left + layer * pitch - 1.5, top + head * pitch - 1.5, cell + 3, cell + 3);
  // switched-off heads: a cross over the thumbnail
  ctx.strokeStyle = css("--error", "#c00");
  ctx.lineWidth = 2.5;
  for (const key of headsOff) {
    const [L, H] = key.split(".").map(Number);
    const x = left + L * pitch, y = top + H * pitch;
    ctx.beginPath();
    ctx.moveTo(x + 2, y + 2); ctx.lineTo(x + cell - 2, y + cell - 2);
    ctx.moveTo(x + cell - 2, y + 2); ctx.lineTo(x + 2, y + cell - 2);
    ctx.stroke();
  }
  scrollCue(el, geometry);
  return geometry;
}

// The thumbnails alone (no labels, no selection) at the grid's geometry: the canvas and the SVG
// export (static/js/export.js, which embeds them as an image under vector labels) share them.
// peak[L][H]: the head's largest value (thumbnails of what moved are scaled to it; weights: 1).
export function paintThumbnails(ctx, { data, peak, n, nLayers, nHeads, causal, scale = "viridis" }, { left, top, pitch, cell }) {
  const m = Math.min(n, MAX_PIXELS);
  const lut = LUT[scale];
  const img = new ImageData(m, m);
  const tile = new OffscreenCanvas(m, m);
  const tctx = tile.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  for (let L = 0; L < nLayers; L++) {
    const P = data[L];
    if (!P) continue;
    for (let H = 0; H < nHeads; H++) {
      const base = H * n * n, top1 = peak?.[L]?.[H] ?? 1;
      for (let a = 0; a < m; a++) {
        const i = Math.floor((a * n) / m);
        for (let b = 0; b < m; b++) {
          const j = Math.floor((b * n) / m);
          const o = (a * m + b) * 4;
          if (causal && j > i) {
            img.data[o] = img.data[o + 1] = img.data[o + 2] = 128;
            img.data[o + 3] = 40;
            continue;
          }
          const v = Math.round(Math.sqrt(Math.min(1, P[base + i * n + j] / top1)) * 255);
          img.data[o] = lut[v * 3]; img.data[o + 1] = lut[v * 3 + 1]; img.data[o + 2] = lut[v * 3 + 2]; img.data[o + 3] = 255;
        }
      }
      tctx.putImageData(img, 0, 0);
      ctx.drawImage(tile, left + L * pitch, top + H * pitch, cell, cell);
    }
  }
}
