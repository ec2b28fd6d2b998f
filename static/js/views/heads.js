// The head finder: every head scored on simple patterns (/api/heads), one panel per pattern (its
// formula, a layers x heads map, the top heads), read one of four ways: on the weights or on what the
// heads moved, with the first token (key 0) kept or left out. The "first token" panel always counts
// key 0 (left out it would be 0): it says how much of a head's attention the other scores are about.

import { plotlyScale } from "../colors.js";
import { css, el } from "../dom.js";
import { config } from "../plotly.js";

const READINGS = {
  measure: { legend: "Score", options: { weight: "where it looks (weight)", moved: "what it moved" } },
  sink: { legend: "First token (key 0)", options: { kept: "kept", "left out": "left out" } },
};

// The score names of one reading, one per pattern, from the payload's variants.
export function readingNames(variants, { measure, sink }) {
  const names = Object.fromEntries(Object.values(variants).map((v) => [v.pattern, null]));  // the patterns, in order
  for (const [name, v] of Object.entries(variants)) {
    if (v.measure === measure && (v.sink === sink || (v.pattern === "first" && v.sink === "kept"))) names[v.pattern] = name;
  }
  return names;
}

// drawHeadFinder(box, heads, {measure, sink, href(layer, head), onReading(reading)}): heads = /api/heads'
// payload. Idempotent; returns the names drawn ({pattern: score name}).
export function drawHeadFinder(box, h, { measure = "weight", sink = "kept", href, onReading }) {
  const controls = el("div", { className: "finder-controls" }, ...Object.entries(READINGS).map(([key, r]) =>
    el("fieldset", {}, el("legend", { textContent: r.legend }), ...Object.entries(r.options).map(([value, text]) => {
      const input = el("input", { type: "radio", name: `finder-${key}`, value, checked: value === { measure, sink }[key] });
      input.addEventListener("change", () => onReading({ measure, sink, [key]: value }));
      return el("label", {}, input, ` ${text}`);
    }))));
  box.replaceChildren(controls);
  const names = readingNames(h.variants, { measure, sink });
  for (const [pattern, name] of Object.entries(names)) {
    const chart = el("div", { className: "finder-chart" });
    const list = el("ol", { className: "finder-top" }, ...h.top[name].map((t) => el("li", {}, el("a", {
      href: href(t.layer, t.head), textContent: `layer ${t.layer}, head ${t.head}: ${t.score.toFixed(3)}` }))));
    box.append(el("section", { className: "finder", dataset: { score: name } }, el("h3", { textContent: pattern }),
      el("p", { className: "formula", textContent: h.formulas[name] }), chart, list));
    const s = h.scores[name];
    window.Plotly.react(chart, [{ type: "heatmap", z: s[0].map((_, H) => s.map((row) => row[H])), colorscale: plotlyScale("viridis"), zmin: 0, zmax: 1,
      hovertemplate: "layer %{x}, head %{y}: %{z:.3f}<extra></extra>", showscale: false }], {
      height: 170, margin: { l: 30, r: 5, t: 5, b: 30 }, paper_bgcolor: "rgba(0,0,0,0)", font: { color: css("--fg"), size: 10 },
      xaxis: { title: { text: "layer" } }, yaxis: { title: { text: "head" } },
    }, config({ displayModeBar: false }));
    chart.on?.("plotly_click", (ev) => { const p = ev.points?.[0]; if (p) location.href = href(p.x, p.y); });
  }
  return names;
}
