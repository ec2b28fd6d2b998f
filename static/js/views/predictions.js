// Next-token predictions at one position: what the model, trained to continue text, expects next.

import { el } from "../dom.js";
import { label, legend, note, quoted } from "../tokens.js";

// A probability as people read it: 0.1% steps, "<0.1%" below that, never exponent notation.
export const percent = (p) => (p < 0.0005 ? "<0.1%" : `${(p * 100).toFixed(1)}%`);
// A change in percentage points, in the same steps.
const points = (d) => (Math.abs(d) < 0.0005 ? "±<0.1" : `${d > 0 ? "+" : "−"}${(Math.abs(d) * 100).toFixed(1)}`);

// The view: data = {tokens, predictions: [position][top-k {id, text, prob}] (null for an encoder),
// original: the same with every head on (or null)}; options = {position, headsOff, temperature,
// chosen: [position, token id] explained below (or null), onPick(position, id): a token was clicked,
// writtenNext: {id, text?, prob?, settings?}: the token the model wrote after this position (a step of
// its writing; null otherwise), onAppend(id): write this token next (null: not offered here)}.
export function drawPredictions(box, { tokens, predictions, original = null }, { position, headsOff = [], temperature, chosen = null, onPick = null,
  writtenNext = null, onAppend = null }) {
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
    const add = onAppend && el("button", { type: "button", className: "pred-append", textContent: "+", title: `write ${quoted(p)} next`,
      attrs: { "aria-label": `write ${quoted(p)} next` } });
    if (add) add.addEventListener("click", () => onAppend(p.id));
    const li = el("li", { dataset: { id: String(p.id), prob: String(p.prob) } }, tok, bar, pct, add);
    if (writtenNext?.id === p.id) {
      li.classList.add("written-next");
      li.append(el("span", { className: "written-tag", textContent: "← written next" }));
    }
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
  const written = writtenNext && el("p", { className: "written-note small", textContent: writtenNote(writtenNext, predictions[i]) });
  box.replaceChildren(el("p", { className: "pred-title", textContent: `After ${quoted(tokens[i])} (token ${i}) the model expects:` }),
    el("ol", { className: "pred-list" }, ...rows), ...(written ? [written] : []), el("p", { className: "muted small", textContent: says }),
    ...(marks ? [el("p", { className: "token-legend", textContent: marks })] : []));
  return { position: i };
}

// How the token written next was chosen: greedy (the likeliest) or drawn with the writing's settings.
function writtenNote(w, top) {
  const name = w.text !== undefined ? quoted(w) : `token ${w.id}`;
  const listed = top.some((p) => p.id === w.id) ? "" : " (not among the likeliest listed here)";
  const set = w.settings;
  if (!set || w.prob === undefined) return `The model wrote ${name} next${listed}.`;
  if (!set.temperature) return `The model wrote ${name} next: the likeliest token (greedy)${listed}.`;
  const how = [`temperature ${set.temperature}`, set.top_k ? `top-k ${set.top_k}` : "", set.top_p ? `top-p ${set.top_p}` : ""].filter(Boolean).join(", ");
  return `The model wrote ${name} next, drawn with ${how}: p = ${percent(w.prob)} under those settings${listed}.`;
}
