// The explorer's export toolbars. PNG and SVG are made in the browser from what a view drew, once
// that view shows the current state (an export asked for while a view is updating waits for it, so
// the file is exactly the state the page claims). HTML, JSON and CSV are the server's files
// (/export/...) for the same state, the measure too (weights, or what moved): their links follow the store.

import { $ } from "../dom.js";
import { plotlyReady } from "../plotly.js";
import { legend } from "../tokens.js";
import { keyOf } from "./data.js";
import { shownThen } from "../store.js";
import { arrowsSVG, exportURL, gridSVG, heatmapImage, linesSVG, save } from "../export.js";

const LINK_KEYS = ["text", "then", "upto", "model", "layer", "head", "token", "measure"];
const MOVED = "what it moved: ‖weight · v W_O‖₂";

// the file names the server gives its files too: attnscope-heatmap-moved-L2-H3, attnscope-grid-moved...
function exportName(view, s) {
  const name = `attnscope-${view}${s.measure === "moved" ? "-moved" : ""}`;
  if (view === "grid") return name;
  const heads = view === "heatmap" ? [s.head] : s.heads;
  return `${name}-L${s.layer}-H${heads.join("+")}${view !== "heatmap" && s.token >= 0 ? `-T${s.token}` : ""}`;
}

function about(view, s, m, chips) {
  const moved = s.measure === "moved";
  const heads = view === "heatmap" || view === "grid" ? [s.head] : s.heads;
  const token = s.token >= 0 && chips?.[s.token] ? `, query token ${s.token} ${chips[s.token].textContent}` : "";
  const marks = legend((chips ?? []).map((c) => c.textContent));  // "· = a space before the word", if the chips show one
  return { desc: $("text").value, caption: view === "grid"
    ? `${m.id} · every layer × head (${moved ? `${MOVED}, brightness √(moved ÷ the head's largest)` : "brightness √weight"}) · selected: layer ${s.layer}, head ${s.head}`
    : `${m.id} · layer ${s.layer} · head${heads.length > 1 ? "s" : ""} ${heads.join(", ")}${token}${moved ? ` · ${MOVED}, strokes ÷ each head's largest` : ""}` + (marks ? ` · ${marks}` : "") };
}

// the server's file for the state: exportURL's parameters, and the measure when it is not the default
function fileURL(view, fmt, s) {
  const url = exportURL(view, fmt, s, shownThen(s));
  return s.measure === "moved" ? `${url}&measure=moved` : url;
}

async function exportImage(view, format, { store, models, views, cache }) {
  const geometry = await views.whenFresh(view);
  const s = store.state;
  const what = about(view, s, models[s.model], views.geometry("arrows")?.chips);
  const name = exportName(view, s);
  if (view === "heatmap") {
    await plotlyReady();
    return heatmapImage($("heatmap"), format, name);
  }
  let svg;
  const moved = s.measure === "moved" ? " · what it moved" : "";
  if (view === "arrows") svg = arrowsSVG($("arrows"), { title: `attnscope: arrows between tokens${moved}`, ...what });
  else if (view === "lines") svg = linesSVG($("lines"), geometry, { title: `attnscope: query → key lines${moved}`, ...what });
  else if (view === "grid") {
    const grid = cache.get(keyOf("grid", s)).value;
    svg = gridSVG($("grid"), grid, geometry, models[s.model].causal ? s.headsOff : [], { title: `attnscope: every layer × head${moved}`, ...what });
  }
  await save(svg, format, name);
}

export function wireExports(ctx) {
  const { store, showError } = ctx;
  for (const b of document.querySelectorAll("button[data-export]")) {
    b.addEventListener("click", async () => {
      if (b.getAttribute("aria-disabled") === "true") return;  // busy (not `disabled`: that would drop the keyboard focus)
      b.setAttribute("aria-disabled", "true");
      try {
        await exportImage(b.dataset.export, b.dataset.format, ctx);
      } catch (e) {
        showError(new Error(`the ${b.dataset.format.toUpperCase()} could not be made (${e.message})`));
      } finally {
        b.removeAttribute("aria-disabled");
      }
    });
  }
  const links = () => {
    for (const a of document.querySelectorAll("a[data-export-link]")) {
      const [view, fmt] = a.dataset.exportLink.split(".");
      a.href = fileURL(view, fmt, store.state);
    }
  };
  links();
  store.on(LINK_KEYS, links);
}
