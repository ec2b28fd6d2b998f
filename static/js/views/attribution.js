// Why this prediction (the /api/attribution payload): the logit of one next token, split into what
// the embeddings, every head (layers x heads, as in the grid) and every MLP wrote at that position,
// each through the final norm with its scale frozen. Positive parts push the token up, negative down.

import { el } from "../dom.js";
import { baseLayout, config } from "../plotly.js";
import { label, note, plotlySafe, quoted } from "../tokens.js";

const DIVERGING = [[0, "#2166ac"], [0.5, "#f7f7f7"], [1, "#b2182b"]];  // blue down, red up (ColorBrewer RdBu)
const signed = (x) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(2)}`;

// The heads whose writes move the logit most, either way: [{layer, head, value}]
export function topHeads(a, k = 5) {
  const all = a.heads.flatMap((row, L) => row.map((value, head) => ({ layer: L, head, value })));
  return all.sort((x, y) => Math.abs(y.value) - Math.abs(x.value)).slice(0, k);
}

// The view: a = the payload; options.onPickHead(layer, head) for the top heads' links and a click on
// the map. Returns {drawn: plotly's promises, summary: the sentence shown}.
export function drawAttribution(box, a, { onPickHead = () => {} } = {}) {
  const H = a.heads[0].length, Ls = a.heads.length;
  // byte pieces, in words (with a contrast: which is which)
  const pieces = [a.target, a.contrast].filter((t) => t && note(t)).map((t) => (a.contrast ? `${quoted(t)}: ${note(t)}` : note(t)));
  const what = (a.contrast ? `logit(${quoted(a.target)}) − logit(${quoted(a.contrast)})` : `the logit of ${quoted(a.target)}`)
    + (pieces.length ? ` (${pieces.join("; ")})` : "");
  const sum = (xs) => xs.reduce((s, x) => s + x, 0);
  const heads = sum(a.heads.flat()), mlps = sum(a.mlps);
  const summary = `After ${quoted(a.tokens[a.position])} (token ${a.position}), ${what} is ${a.value.toFixed(2)}: `
    + `the embedding ${signed(a.embed)}, the ${Ls * H} heads ${signed(heads)}, the ${Ls} MLPs ${signed(mlps)}, the biases ${signed(a.bias)}.`;
  const peak = Math.max(1e-9, ...a.heads.flat().map(Math.abs), ...a.mlps.map(Math.abs));
  const map = el("div", { className: "attr-map" }), strip = el("div", { className: "attr-mlps" });
  const links = el("ol", { className: "attr-top" }, ...topHeads(a).map((t) => {
    const b = el("button", { type: "button", className: "linklike", textContent: `layer ${t.layer}, head ${t.head}: ${signed(t.value)}`,
      title: "select this head in the views above" });
    b.addEventListener("click", () => onPickHead(t.layer, t.head));
    return el("li", {}, b);
  }));
  box.replaceChildren(el("p", { className: "attr-summary", textContent: summary }), map, strip,
    el("h3", { textContent: "The heads that move it most" }), links);
  const layers = [...Array(Ls).keys()];
  const drawn = [
    window.Plotly.react(map, [{
      type: "heatmap", z: [...Array(H).keys()].map((h) => layers.map((L) => a.heads[L][h])), x: layers, y: [...Array(H).keys()],
      colorscale: DIVERGING, zmid: 0, zmin: -peak, zmax: peak, colorbar: { title: { text: "logit" }, thickness: 10 },
      hovertemplate: "layer %{x}, head %{y}: %{z:+.3f}<extra></extra>",
    }], baseLayout(`each head's write, in logit units (${plotlySafe(label(a.target))}${a.contrast ? ` vs ${plotlySafe(label(a.contrast))}` : ""})`, {
      height: 60 + 22 * H, margin: { l: 40, r: 10, t: 30, b: 40 }, xaxis: { title: { text: "layer" }, dtick: 5 },
      yaxis: { title: { text: "head" }, autorange: "reversed", dtick: 1 } }), config({ displayModeBar: false })).then(() => {
      map.removeAllListeners?.("plotly_click");
      map.on("plotly_click", (ev) => { const p = ev.points?.[0]; if (p) onPickHead(p.x, p.y); });
    }),
    window.Plotly.react(strip, [{
      type: "bar", x: layers, y: a.mlps, marker: { color: a.mlps.map((v) => (v >= 0 ? "#b2182b" : "#2166ac")) },
      hovertemplate: "MLP of layer %{x}: %{y:+.3f}<extra></extra>",
    }], baseLayout("each layer's MLP, in logit units", { height: 170, margin: { l: 40, r: 10, t: 30, b: 35 },
      xaxis: { title: { text: "layer" }, dtick: 5 }, yaxis: { range: [-peak, peak], zeroline: true } }), config({ displayModeBar: false })),
  ];
  return { drawn: Promise.all(drawn), summary };
}
