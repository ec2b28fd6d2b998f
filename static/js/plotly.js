// plotly.js is a classic script (it is 4.8 MB to evaluate): loaded with `async`, or (the explorer) preloaded
// by the page and run by loadPlotly() once the first views are painted. Views that do not need it draw
// first, and charts wait for plotlyReady(). Every chart takes its config and base layout from here, and
// plotArea() is the one place that reads plotly's private layout fields.

import { css } from "./dom.js";

let ready = null;

// Resolves with Plotly once plotly.js has run (its script tag may not exist yet: loadPlotly adds it).
export function plotlyReady() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  return (ready ??= new Promise((resolve, reject) => {
    const hook = (tag) => {
      tag.addEventListener("load", () => resolve(window.Plotly), { once: true });
      tag.addEventListener("error", () => reject(new Error("plotly.js could not be loaded")), { once: true });
    };
    const tag = document.getElementById("plotly-js");
    if (tag) hook(tag);
    else document.addEventListener("attnscope:plotly-tag", (e) => hook(e.detail), { once: true });
  }));
}

// Run the plotly.js the page preloaded (<link id="plotly-preload">), if it is not running yet.
export function loadPlotly() {
  const link = document.getElementById("plotly-preload");
  if (!window.Plotly && link && !document.getElementById("plotly-js")) {
    const tag = Object.assign(document.createElement("script"), { id: "plotly-js", src: link.href, async: true });
    document.head.append(tag);
    document.dispatchEvent(new CustomEvent("attnscope:plotly-tag", { detail: tag }));
  }
  return plotlyReady();
}

// No "Share chart..." (a Plotly Cloud upload) on any chart; no plotly logo. On touch screens and phones
// no mode bar: a tap shows it on top of the chart's title and legend, and pinch-zoom does its job.
const compact = () => matchMedia("(hover: none), (max-width: 600px)").matches;
export const config = (extra = {}) => ({ displaylogo: false, responsive: true, showSendToCloud: false,
  ...(compact() ? { displayModeBar: false } : {}), ...extra });

// Transparent chart on the page's colours, a left-aligned title; spread overrides on top.
// In presentation mode (html.present, static/js/present.js) the text is larger, as the page's is.
const big = () => document.documentElement.classList.contains("present");
export const baseLayout = (title, extra = {}) => ({
  title: { text: title, font: { size: big() ? 20 : 13, color: css("--fg") }, x: 0.02 }, paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)", font: { color: css("--fg"), family: css("--font", "system-ui"), size: big() ? 18 : 12 },
  margin: { l: 50, r: 10, t: 40, b: 50 }, ...extra,
});

// The plot area of a drawn chart in CSS px ({l, t, w, h} inside the chart, and the chart's width and
// height), or null before plotly has drawn it.
export function plotArea(el) {
  const full = el._fullLayout;
  if (!full?._size) return null;
  const { l, t, w, h } = full._size;
  return { l, t, w, h, width: full.width, height: full.height };
}
