// Exports of the explorer's views as files. The canvas and DOM views become standalone SVG: vector
// where it makes sense (arrows as <path>, lines as <line>, tokens as <text> in their chip boxes),
// with the colours of the CSS variables resolved so that the file looks like the screen (dark mode
// too); the grid's thumbnails stay pixels, embedded as a PNG under vector labels. PNG = the SVG
// rasterised at 2x. Token text is user text: it only ever goes in as textContent, and
// XMLSerializer escapes it. The heatmap is plotly's: its own image export, on a solid background.

import { headColor } from "./colors.js";
import { css } from "./dom.js";
import { plotArea } from "./plotly.js";
import { ROW } from "./views/lines.js";
import { paintThumbnails } from "./views/grid.js";

const NS = "http://www.w3.org/2000/svg";
const PNG_SCALE = 2;

// ---- small helpers -----------------------------------------------------------------------------

const XML = "http://www.w3.org/XML/1998/namespace";

function svgEl(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k.startsWith("xml:")) e.setAttributeNS(XML, k, String(v));
    else e.setAttribute(k, String(v));
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

const round = (x) => Math.round(x * 100) / 100;

let probe = null;
// Any CSS colour (var()-resolved, color-mix(), color(srgb ...)) as plain rgb + opacity, which every
// SVG reader understands: the browser paints one pixel of it and we read the pixel back.
export function solid(color) {
  if (!probe) probe = new OffscreenCanvas(1, 1).getContext("2d", { willReadFrequently: true });
  probe.clearRect(0, 0, 1, 1);
  probe.fillStyle = "#000";
  probe.fillStyle = color || "transparent";
  probe.fillRect(0, 0, 1, 1);
  const [r, g, b, a] = probe.getImageData(0, 0, 1, 1).data;
  return { fill: `rgb(${r},${g},${b})`, opacity: round(a / 255) };
}

function paint(attrs, key, color) {
  const c = solid(color);
  attrs[key] = c.fill;
  if (c.opacity < 1) attrs[`${key}-opacity`] = c.opacity;
  return c.opacity > 0;
}

const PAD = 12;  // margin around the view in the file
const CAPTION = { size: 11, line: 15 };

// Caption lines that fit width: the caption's " · " parts, packed greedily (one long part stays whole).
function wrapCaption(text, width, font) {
  const ctx = new OffscreenCanvas(1, 1).getContext("2d");
  ctx.font = `${CAPTION.size}px ${font}`;
  const lines = [];
  for (const part of text.split(" · ")) {
    const last = lines.length ? `${lines[lines.length - 1]} · ${part}` : part;
    if (lines.length && ctx.measureText(last).width <= width) lines[lines.length - 1] = last;
    else lines.push(part);
  }
  return lines;
}

// A standalone SVG document for a view of width x height (CSS px, the view's own coordinates), on
// the panel's colour with a margin, a title and description, and the caption wrapped below it.
function sheet(width, height, { title, desc, caption, font }) {
  const lines = caption ? wrapCaption(caption, width, font) : [];
  const h = height + (lines.length ? 6 + CAPTION.line * lines.length : 0);
  const W = round(width + 2 * PAD), H = round(h + 2 * PAD);
  const svg = svgEl("svg", { width: W, height: H, viewBox: `${-PAD} ${-PAD} ${W} ${H}` });
  svg.append(svgEl("title", {}, title));
  if (desc) svg.append(svgEl("desc", {}, desc));
  const bg = {};
  paint(bg, "fill", css("--panel", "#fff"));
  svg.append(svgEl("rect", { x: -PAD, y: -PAD, width: W, height: H, ...bg }));
  if (lines.length) {
    const a = { class: "caption", "font-family": font, "font-size": CAPTION.size };
    paint(a, "fill", css("--muted", "#666"));
    const g = svgEl("g", a);
    lines.forEach((line, i) => g.append(svgEl("text", { x: 0, y: round(height + 6 + CAPTION.line * (i + 0.75)) }, line)));
    svg.append(g);
  }
  return svg;
}

// A token label: its box (background, border, focus ring as on screen) and its text, centred or
// aligned like the element, clipped to the box when the screen ellipsises it.
function tokenBox(svg, node, origin, id) {
  const r = node.getBoundingClientRect();
  const cs = getComputedStyle(node);
  const x = r.left - origin.left, y = r.top - origin.top, w = r.width, h = r.height;
  const rx = parseFloat(cs.borderTopLeftRadius) || 0;
  const g = svgEl("g");
  if (node.classList.contains("focus")) {
    const ring = {};
    const o = (parseFloat(cs.outlineOffset) || 0) + (parseFloat(cs.outlineWidth) || 0) / 2;
    if (cs.boxShadow && cs.boxShadow !== "none") {  // the chip's soft halo: 4px of the focus colour at 25%
      const halo = {};
      if (paint(halo, "fill", cs.boxShadow.match(/^(rgba?\([^)]*\)|color\([^)]*\)|#\w+)/)?.[1]))
        g.append(svgEl("rect", { x: round(x - 4), y: round(y - 4), width: round(w + 8), height: round(h + 8), rx: rx + 4, ...halo }));
    }
    if (paint(ring, "stroke", cs.outlineColor))
      g.append(svgEl("rect", { x: round(x - o), y: round(y - o), width: round(w + 2 * o), height: round(h + 2 * o), rx: rx + o,
        fill: "none", "stroke-width": parseFloat(cs.outlineWidth) || 2, ...ring }));
  }
  const box = { x: round(x), y: round(y), width: round(w), height: round(h), rx };
  const filled = paint(box, "fill", cs.backgroundColor);
  const bw = parseFloat(cs.borderTopWidth) || 0;
  if (bw > 0) {
    paint(box, "stroke", cs.borderTopColor);
    box["stroke-width"] = bw;
  }
  if (filled || bw > 0) g.append(svgEl("rect", box));
  const padL = parseFloat(cs.paddingLeft) || 0, padR = parseFloat(cs.paddingRight) || 0;
  const align = cs.textAlign === "right" || cs.textAlign === "end" ? "end" : cs.textAlign === "left" || cs.textAlign === "start" ? "start" : "middle";
  const tx = align === "end" ? x + w - padR - bw : align === "start" ? x + padL + bw : x + w / 2;
  const t = { x: round(tx), y: round(y + h / 2), "text-anchor": align, "dominant-baseline": "central",
    "font-family": cs.fontFamily, "font-size": parseFloat(cs.fontSize), "font-weight": cs.fontWeight, "xml:space": "preserve" };
  paint(t, "fill", cs.color);
  const text = svgEl("text", t, node.textContent);
  if (node.scrollWidth > node.clientWidth + 1) {  // ellipsised on screen: clip to the box
    const clip = svgEl("clipPath", { id: `clip-${id}` });
    clip.append(svgEl("rect", { x: round(x + bw), y: round(y), width: round(w - 2 * bw), height: round(h) }));
    g.append(clip);
    text.setAttribute("clip-path", `url(#clip-${id})`);
  }
  g.append(text);
  svg.append(g);
}

// ---- the views ---------------------------------------------------------------------------------

// el: the arrows view (#arrows: token chips plus the SVG overlay of arrows drawn by views/arrows.js)
export function arrowsSVG(el, { title = "attnscope: arrows between tokens", desc, caption: cap } = {}) {
  const box = el.getBoundingClientRect();
  const font = getComputedStyle(el).fontFamily;
  const svg = sheet(box.width, box.height, { title, desc, caption: cap, font });
  const overlay = el.querySelector("svg.arrow-layer");
  const defs = svgEl("defs");
  for (const m of overlay.querySelectorAll("marker")) {  // arrowheads: ours, copied attribute by attribute
    const copy = svgEl("marker");
    for (const a of m.attributes) copy.setAttribute(a.name, a.value);
    for (const p of m.querySelectorAll("path")) copy.append(svgEl("path", { d: p.getAttribute("d"), fill: p.getAttribute("fill") }));
    defs.append(copy);
  }
  svg.append(defs);
  const chips = [...el.querySelectorAll(".chip")];
  chips.forEach((c, i) => tokenBox(svg, c, box, `chip-${i}`));
  const arrows = svgEl("g", { class: "arrows", fill: "none" });
  for (const p of overlay.querySelectorAll("path[data-head]")) {
    arrows.append(svgEl("path", { d: p.getAttribute("d"), stroke: p.getAttribute("stroke"), "stroke-width": p.getAttribute("stroke-width"),
      "stroke-opacity": p.getAttribute("stroke-opacity"), "marker-end": p.getAttribute("marker-end") }));
  }
  svg.append(arrows);  // over the chips, as on screen
  return svg;
}

// lines: what views/lines.js drawLines returned (its columns, width and the segments it drew)
export function linesSVG(el, lines, { title = "attnscope: query → key lines", desc, caption: cap } = {}) {
  const { wrap, cols, segments } = lines;
  const n = cols[0].children.length;
  const head = el.querySelector(".lines-heads");
  const top = head.getBoundingClientRect(), w = wrap.getBoundingClientRect();
  const offset = w.top - top.top;  // the column titles' row, above the lines (scroll does not matter: both move)
  const width = lines.width || wrap.clientWidth;
  const height = offset + n * ROW + 8;
  const font = getComputedStyle(el).fontFamily;
  const svg = sheet(width, height, { title, desc, caption: cap, font });
  for (const s of head.children) {
    const r = s.getBoundingClientRect(), cs = getComputedStyle(s);
    const t = { x: round(r.left - top.left), y: round(r.top - top.top + r.height / 2), "dominant-baseline": "central",
      "font-family": cs.fontFamily, "font-size": parseFloat(cs.fontSize) };
    paint(t, "fill", cs.color);
    svg.append(svgEl("text", t, s.textContent));
  }
  const g = svgEl("g", { transform: `translate(0 ${round(offset)})`, "stroke-linecap": "round" });
  const byHead = new Map();
  for (const s of segments) {
    if (!byHead.has(s.h)) {
      byHead.set(s.h, svgEl("g", { class: `head-${s.h}`, stroke: headColor(s.h) }));
      g.append(byHead.get(s.h));
    }
    byHead.get(s.h).append(svgEl("line", { x1: round(s.x1), y1: round(s.y1), x2: round(s.x2), y2: round(s.y2),
      "stroke-width": round(s.lineWidth), "stroke-opacity": round(s.alpha) }));
  }
  svg.append(g);
  const origin = { left: w.left, top: w.top - offset };
  for (const col of cols) for (const s of col.children) tokenBox(svg, s, origin, `${s.dataset.side}-${s.dataset.index}`);
  return svg;
}

// el: the grid view (#grid); grid: the data drawGrid drew; g: the geometry it returned; headsOff: the
// crossed-out heads ["L.H", ...]
export function gridSVG(el, grid, g, headsOff, { title = "attnscope: every layer × head", desc, caption: cap } = {}) {
  const { width, height } = g;
  const font = getComputedStyle(el).fontFamily;
  const svg = sheet(width, height, { title, desc, caption: cap, font });
  // the thumbnails, as pixels at PNG_SCALE (a PNG data: image: no external reference)
  const tiles = document.createElement("canvas");
  tiles.width = Math.round(width * PNG_SCALE);
  tiles.height = Math.round(height * PNG_SCALE);
  const ctx = tiles.getContext("2d");
  ctx.scale(PNG_SCALE, PNG_SCALE);
  paintThumbnails(ctx, grid, g);
  svg.append(svgEl("image", { x: 0, y: 0, width: round(width), height: round(height), href: tiles.toDataURL("image/png"),
    preserveAspectRatio: "none", style: "image-rendering: pixelated" }));
  const muted = { "font-family": "system-ui, sans-serif", "font-size": 10 };
  paint(muted, "fill", css("--muted", "#888"));
  const labels = svgEl("g", muted);
  for (let L = 0; L < g.nLayers; L += g.labelEvery)
    labels.append(svgEl("text", { x: round(g.left + L * g.pitch + g.cell / 2), y: 11, "text-anchor": "middle" }, String(L)));
  for (let H = 0; H < g.nHeads; H++)
    labels.append(svgEl("text", { x: g.left - 6, y: round(g.top + H * g.pitch + g.cell / 2 + 3), "text-anchor": "end" }, String(H)));
  svg.append(labels);
  const sel = { class: "selected", x: g.left + g.layer * g.pitch - 1.5, y: g.top + g.head * g.pitch - 1.5, width: g.cell + 3,
    height: g.cell + 3, fill: "none", "stroke-width": 2 };
  paint(sel, "stroke", css("--accent", "#f60"));
  svg.append(svgEl("rect", sel));
  if (headsOff.length) {
    const cross = { class: "off", fill: "none", "stroke-width": 2.5 };
    paint(cross, "stroke", css("--error", "#c00"));
    const d = headsOff.map((key) => {
      const [L, H] = key.split(".").map(Number);
      const x = g.left + L * g.pitch, y = g.top + H * g.pitch, c = g.cell;
      return `M${x + 2},${y + 2}L${x + c - 2},${y + c - 2}M${x + c - 2},${y + 2}L${x + 2},${y + c - 2}`;
    }).join("");
    svg.append(svgEl("path", { ...cross, d }));
  }
  return svg;
}

// The heatmap through plotly's own image export, on the panel's colour (the page's is transparent).
export function heatmapImage(el, format, filename) {
  const area = plotArea(el);
  if (!area) return Promise.resolve();  // not drawn yet
  const layout = { ...el.layout, paper_bgcolor: solid(css("--panel", "#fff")).fill };
  const { width, height } = area;
  return window.Plotly.downloadImage({ data: el.data, layout }, { format, filename, width, height,
    scale: format === "png" ? PNG_SCALE : 1 });
}

// ---- files ---------------------------------------------------------------------------------------

export function serialize(svg) {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${new XMLSerializer().serializeToString(svg)}\n`;
}

export const svgBlob = (svg) => new Blob([serialize(svg)], { type: "image/svg+xml" });

// The SVG drawn onto a canvas at scale x its size: a PNG at 2x device pixels by default.
export async function svgToPNG(svg, scale = PNG_SCALE) {
  const width = parseFloat(svg.getAttribute("width")), height = parseFloat(svg.getAttribute("height"));
  const url = URL.createObjectURL(svgBlob(svg));
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
    return await new Promise((resolve, reject) =>
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("the browser could not encode the PNG"))), "image/png"));
  } finally {
    URL.revokeObjectURL(url);
  }
}

export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

// The view as a file: format "svg" or "png"; name without its extension.
export async function save(svg, format, name) {
  download(format === "png" ? await svgToPNG(svg) : svgBlob(svg), `${name}.${format}`);
}

// /export/{view}.{fmt} for the state (the server's file: same text, model, layer, head, token)
export function exportURL(view, fmt, { text, model, layer, head, token }, then = []) {
  const q = new URLSearchParams({ text, model, layer: String(layer), head: String(head) });
  if (then.length) q.set("then", then.join(","));  // ids the model wrote after the text, run as written
  if (view === "arrows" && token >= 0) q.set("token", String(token));
  return `/export/${view}.${fmt}?${q}`;
}
