// Printing (a handout, or "Save as PDF"): views are drawn for the screen's width, and paper is
// narrower. Before the browser lays the page out for print, lay it out at the paper's width on screen
// (html.print-layout: the same single-column layout static/css/print.css gives print media), and
// redraw what measures its box: every plotly chart here, and the page's own views through the
// "attnscope:print" event (drawn within this task: the browser prints what is there when it returns).
// Afterwards the screen layout comes back.

const root = document.documentElement;
export const PRINT_WIDTH = 700;  // CSS px: A4 or Letter, portrait, with print.css's 12 mm margins

// the width a child of el gets: its box without its padding (a panel's clientWidth counts its padding, and a
// chart drawn that wide ran past the panel's edge, cutting the colour bar's title off)
function contentWidth(el) {
  const cs = getComputedStyle(el);
  return el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
}

function charts(after) {
  if (!window.Plotly) return;
  for (const div of document.querySelectorAll(".js-plotly-plot")) {
    if (!div._fullLayout) continue;
    if (after) window.Plotly.Plots.resize(div);
    else window.Plotly.relayout(div, { width: Math.min(contentWidth(div.parentElement), PRINT_WIDTH) });
  }
}

window.addEventListener("beforeprint", () => {
  root.classList.add("print-layout");
  window.dispatchEvent(new Event("attnscope:print"));
  charts(false);
});

window.addEventListener("afterprint", () => {
  root.classList.remove("print-layout");
  charts(true);
  window.dispatchEvent(new Event("resize"));
});
