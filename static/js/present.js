// Presentation mode, on every page: full screen, large type, high contrast, only what a presenter needs
// (html.present, static/css/present.css). ?present=1 in the URL opens a page in it; Esc leaves full
// screen first, then the mode. Page Down / Space / → step forward, Page Up / ← back (a presenter's
// clicker sends Page Up/Down): through the page's own steps when it registers them (registerSteps),
// else from one section to the next.

import { el } from "./dom.js";
import { plotlyReady } from "./plotly.js";

const root = document.documentElement;
const KEY = "present";
let steps = null;  // {next(), prev(), label?()} from the page, or null: sections

export const presenting = () => root.classList.contains("present");

// A page with steps of its own (explain's steps, the explorer's heads) hands them over here.
export function registerSteps(s) {
  steps = s;
  label();
}

// Every page writes its state into the URL with history.replaceState; the mode is the same on every
// page, so it rides along here rather than in each page's own URL code.
const replace = history.replaceState.bind(history);
history.replaceState = (state, title, url) => replace(state, title, url === undefined ? url : withMode(url));

function withMode(url) {
  const u = new URL(url, location.href);
  if (presenting()) u.searchParams.set(KEY, "1");
  else u.searchParams.delete(KEY);
  return u.pathname + u.search + u.hash;
}

export function setPresenting(on, { fullscreen = false } = {}) {
  root.classList.toggle("present", on);
  replace(history.state, "", withMode(location.href));
  if (on && fullscreen && !document.fullscreenElement) root.requestFullscreen?.().catch(() => {});  // needs a click or key
  if (!on && document.fullscreenElement) document.exitFullscreen?.().catch(() => {});
  bar.hidden = !on;
  chartFonts();
  window.dispatchEvent(new Event("resize"));  // charts and canvases re-measure their boxes
  label();
  if (on) bar.querySelector(".present-next").focus({ preventScroll: true });
}

// Plotly charts size their text in px, not in the page's type: scale it with the mode.
function chartFonts() {
  if (!window.Plotly) return;
  const size = presenting() ? 18 : 12;
  for (const div of document.querySelectorAll(".js-plotly-plot")) {
    if (!div._fullLayout) continue;
    window.Plotly.relayout(div, { "font.size": size, "title.font.size": presenting() ? 20 : 13 });
  }
}

// --- stepping by section, when the page has no steps of its own ----------------------------------------

const sections = () => [...document.querySelectorAll("main > section, main > article > section")].filter((s) => !s.hidden && s.offsetParent);

function sectionStep(dir) {
  const all = sections(), edge = 10;
  if (!all.length) return;
  const tops = all.map((x) => x.getBoundingClientRect().top);
  const current = Math.max(0, tops.findLastIndex((t) => t <= innerHeight / 3));  // the one the reader is on
  const back = current >= 0 && tops[current] < -edge ? current : current - 1;  // back: to its own start first
  all[Math.min(all.length - 1, Math.max(0, dir > 0 ? current + 1 : back))].scrollIntoView({ block: "start" });
}

function step(dir) {
  if (steps) (dir > 0 ? steps.next : steps.prev)();
  else sectionStep(dir);
  label();
}

function label() {
  const out = bar?.querySelector(".present-where");
  if (!out) return;
  out.textContent = steps?.label ? steps.label() : "";
}

// --- the bar and the keys ---------------------------------------------------------------------------------

const button = (cls, text, title, onClick) => {
  const b = el("button", { type: "button", className: cls, title, textContent: text });
  b.addEventListener("click", onClick);
  return b;
};
const bar = el("div", { className: "present-bar", hidden: true, attrs: { role: "toolbar", "aria-label": "Presentation" } },
  button("present-prev", "◀", "Back (Page Up, ←)", () => step(-1)),
  el("span", { className: "present-where", attrs: { "aria-live": "polite" } }),
  button("present-next", "▶", "Forward (Page Down, →, Space)", () => step(1)),
  button("present-full", "Full screen", "Full screen (F)", () => root.requestFullscreen?.().catch(() => {})),
  button("present-leave", "Leave", "Leave presentation mode (Esc)", () => setPresenting(false)));
const typing = (t) => t instanceof HTMLElement && (t.isContentEditable || /^(TEXTAREA|INPUT|SELECT)$/.test(t.tagName) && t.type !== "range" && t.type !== "radio" && t.type !== "checkbox");

// After the page's own handlers (window, not document): a key the page used is left to it.
window.addEventListener("keydown", (e) => {
  if (presenting()) setTimeout(label);  // the page may have stepped by itself (explain's arrow keys)
  if (!presenting() || e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || typing(e.target)) return;
  if (e.key === "Escape") { e.preventDefault(); setPresenting(false); return; }  // in full screen the browser takes Esc first
  if (e.key === "f" || e.key === "F") { e.preventDefault(); (document.fullscreenElement ? document.exitFullscreen() : root.requestFullscreen?.())?.catch?.(() => {}); return; }
  const dir = { PageDown: 1, " ": 1, ArrowRight: 1, PageUp: -1, ArrowLeft: -1 }[e.key];
  if (dir === undefined || (e.key === " " && e.target instanceof HTMLButtonElement)) return;
  if (e.key.startsWith("Arrow") && e.target !== document.body && !e.target.closest?.(".present-bar")) return;  // arrows move focus inside views
  e.preventDefault();
  step(e.shiftKey && e.key === " " ? -1 : dir);
});

function mount() {
  document.body.append(bar);
  document.getElementById("present-open")?.addEventListener("click", () => setPresenting(true, { fullscreen: true }));
  if (presenting()) setPresenting(true);
  // plotly arrives late (async script): size its charts' text once it has drawn them
  if (document.getElementById("plotly-js") || document.getElementById("plotly-preload")) plotlyReady().then(() => setTimeout(chartFonts, 0), () => {});
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount, { once: true });
else mount();
