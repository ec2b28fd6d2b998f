// Next-token predictions at one position: what the model, trained to continue text, expects next.

import { label, quoted } from "../tokens.js";

export function drawPredictions(el, { tokens, predictions, original = null, off = [], position, temperature }) {
  el.replaceChildren();
  if (!predictions) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "This model is an encoder: it reads the whole sentence at once and does not predict a next token.";
    el.append(p);
    return;
  }
  const i = position >= 0 && position < predictions.length ? position : predictions.length - 1;
  const head = document.createElement("p");
  head.className = "pred-title";
  head.textContent = `After ${quoted(tokens[i].text)} (token ${i}) the model expects:`;
  const list = document.createElement("ol");
  list.className = "pred-list";
  const before = original ? new Map(original[i].map((p) => [p.id, p.prob])) : null;
  for (const p of predictions[i]) {
    const li = document.createElement("li");
    const tok = document.createElement("span");
    tok.className = "pred-token";
    tok.textContent = label(p.text);
    const bar = document.createElement("span");
    bar.className = "pred-bar";
    bar.style.setProperty("--p", String(p.prob));
    const pct = document.createElement("span");
    pct.className = "pred-prob";
    pct.textContent = p.prob >= 0.001 ? `${(p.prob * 100).toFixed(1)}%` : `${(p.prob * 100).toExponential(1)}%`;
    li.dataset.id = String(p.id);
    li.dataset.prob = String(p.prob);
    if (before) {
      const was = before.get(p.id);
      li.dataset.original = was === undefined ? "" : String(was);
      if (was !== undefined) bar.style.setProperty("--was", String(was));
      bar.classList.add("vs-original");
      pct.title = was === undefined ? "not in the original top 10" : `with every head on: ${(was * 100).toFixed(1)}%`;
      pct.textContent += was === undefined ? " (new)" : ` (${p.prob >= was ? "+" : "−"}${(Math.abs(p.prob - was) * 100).toFixed(1)})`;
    }
    li.append(tok, bar, pct);
    list.append(li);
  }
  const note = document.createElement("p");
  note.className = "muted small";
  note.textContent = off.length
    ? `With ${off.length} head${off.length > 1 ? "s" : ""} switched off (${off.map((k) => `L${k.replace(".", "H")}`).join(", ")}); the thin mark on each bar and the change in points are against every head on.`
    : `softmax(logits / ${temperature}); hover or lock a token to see its prediction.`;
  el.append(head, list, note);
}
