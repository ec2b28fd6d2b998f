// Next-token predictions at one position: what the model, trained to continue text, expects next.

import { el } from "../dom.js";
import { label, legend, note, quoted } from "../tokens.js";

// A probability as people read it: 0.1% steps, "<0.1%" below that, never exponent notation.
export const percent = (p) => (p < 0.0005 ? "<0.1%" : `${(p * 100).toFixed(1)}%`);
// A change in percentage points, in the same steps.
const points = (d) => (Math.abs(d) < 0.0005 ? "±<0.1" : `${d > 0 ? "+" : "−"}${(Math.abs(d) * 100).toFixed(1)}`);

// The view: data = {tokens, predictions: [position][top-k {id, text, prob}] (null for an encoder),
// original: the same with every head on (or null)}; options = {position, headsOff, temperature,
// chosen: [position, token id] explained below (or null), onPick(position, id): a token was clicked}.
export function drawPredictions(box, { tokens, predictions, original = null }, { position, headsOff = [], temperature, chosen = null, onPick = null }) {
  if (!predictions) {
    box.replaceChildren(el("p", { className: "muted",
      textContent: "This model is an encoder: it reads the whole sentence at once and does not predict a next token." }));
    return {};
  }
  const i = position >= 0 && position < predictions.length ? position : predictions.length - 1;
  const before = original ? new Map(original[i].map((p) => [p.id, p.prob])) : null;
  const rows = predictions[i].map((p) => {
    const bar = el("span", { className: "pred-bar", style: { "--p": String(p.prob) } });
    const pct = el("span", { className: "pred-prob", textContent: percent(p.prob) });
    const about = note(p) ? `${note(p)}\n` : "";  // a byte piece: what it is, on hover
    const tok = onPick ? el("button", { type: "button", className: "pred-token", textContent: label(p), title: `${about}why this prediction? (below)` })
      : el("span", { className: "pred-token", textContent: label(p), title: about.trim() });
    if (onPick) tok.addEventListener("click", () => onPick(i, p.id));
    const li = el("li", { dataset: { id: String(p.id), prob: String(p.prob) } }, tok, bar, pct);
    if (chosen && chosen[0] === i && chosen[1] === p.id) li.setAttribute("aria-current", "true");
    if (before) {
      const was = before.get(p.id);
      li.dataset.original = was === undefined ? "" : String(was);
      if (was !== undefined) bar.style.setProperty("--was", String(was));
      bar.classList.add("vs-original");
      pct.title = was === undefined ? "not in the original top 10" : `with every head on: ${percent(was)}`;
      pct.textContent += was === undefined ? " (new)" : ` (${points(p.prob - was)})`;
    }
    return li;
  });
  const says = headsOff.length
    ? `With ${headsOff.length} head${headsOff.length > 1 ? "s" : ""} switched off (${headsOff.map((k) => `L${k.replace(".", "H")}`).join(", ")}); the thin mark on each bar and the change in points are against every head on.`
    : `softmax(logits / ${temperature}); hover or lock a token to see its prediction.`;
  const marks = legend([tokens[i], ...predictions[i]]);
  box.replaceChildren(el("p", { className: "pred-title", textContent: `After ${quoted(tokens[i])} (token ${i}) the model expects:` }),
    el("ol", { className: "pred-list" }, ...rows), el("p", { className: "muted small", textContent: says }),
    ...(marks ? [el("p", { className: "token-legend", textContent: marks })] : []));
  return { position: i };
}
