// The DOM helpers every page uses: one way to make an element, one way to read a CSS variable.
// User text goes in as textContent (a prop or a child string), never as HTML.

export const $ = (id) => document.getElementById(id);

// el("button", {type: "button", className: "chip", dataset: {index: "3"}, attrs: {"aria-label": "x"}}, child, "text")
export function el(tag, props = {}, ...children) {
  const { dataset, attrs, style, ...rest } = props;
  const e = Object.assign(document.createElement(tag), rest);
  if (dataset) Object.assign(e.dataset, dataset);
  if (style) for (const [k, v] of Object.entries(style)) e.style.setProperty(k, v);
  if (attrs) for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  e.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return e;
}

// A CSS custom property of the page (theme colours, fonts), resolved now.
export const css = (name, fallback = "") => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

// A canvas drawn sharp on any screen: its backing store in device pixels, its box width x height CSS
// pixels; returns its 2d context, scaled so that drawing is in CSS pixels.
export function sharpCanvas(canvas, width, height) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  return ctx;
}

// The page's inline data (<script type="application/json" id="initial">, rendered with |tojson).
export const initialData = () => JSON.parse($("initial").textContent);

// The address links and embed snippets start with: the server's public URL (ATTNSCOPE_PUBLIC_URL, in the
// page's <meta name="attnscope-base">) or, without one, the address this page was opened at.
export const publicOrigin = () => document.querySelector('meta[name="attnscope-base"]')?.content || location.origin;

// url (any URL of this app, absolute or relative) moved to the public address, path and query kept.
export function publicURL(url) {
  const u = new URL(url, location.origin);
  return new URL(u.pathname + u.search + u.hash, publicOrigin());
}
