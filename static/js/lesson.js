// The guided lesson: the classic examples with the live model's numbers, and an honest word on
// where the real heads differ from the textbook picture.

import { headColor } from "./colors.js";
import { plotlyReady } from "./plotly.js";
import { label, plotlySafe, quoted } from "./tokens.js";
import { openEmbed } from "./share.js";
import { drawArrows } from "./views/arrows.js";
import { noFocus } from "./focus.js";

const $ = (id) => document.getElementById(id);
const initial = JSON.parse($("initial").textContent);
const L = initial.lesson;
const pct = (x) => `${(100 * x).toFixed(0)}%`;
const css = (n) => getComputedStyle(document.documentElement).getPropertyValue(n).trim();
const para = (id, text) => $(id).append(Object.assign(document.createElement("p"), { textContent: text }));
const link = (id, href, text) => {
  const a = Object.assign(document.createElement("a"), { href, textContent: text, className: "more" });
  $(id).append(a);
};
// An "Embed" button in a section's heading: the snippet for embedURL, with link as the plain link.
function embedButton(id, embed, link, what) {
  const b = Object.assign(document.createElement("button"), { type: "button", className: "embed-section", textContent: "Embed" });
  b.setAttribute("aria-haspopup", "dialog");
  b.title = `embed ${what} in a page or slides`;
  b.addEventListener("click", () => openEmbed({ embed, link }));
  $(id).closest("section").querySelector("h2").append(b);
}
const embedOf = (view, params) => `/embed/${view}?${new URLSearchParams(params)}`;
const explorer = (text, layer, head, token) => `/?${new URLSearchParams({ text, layer, head, token, locked: 1 })}`;

// One head's arrows into one query token, drawn with the explorer's own view.
function arrowsFor(el, tokens, headInfo, query) {
  const n = tokens.length;
  const pattern = { [headInfo.head]: Array.from({ length: n }, (_, q) => (q === query ? headInfo.row : new Array(n).fill(0))) };
  const draw = () => drawArrows(el, { tokens, pattern }, { heads: [headInfo.head], token: query, dir: "out", focus: noFocus, still: true });
  requestAnimationFrame(draw);
  window.addEventListener("resize", draw);
}

function tokensSection() {
  const f = L.fluffy;
  const box = $("tokens-chips");
  for (const t of f.tokens) box.append(Object.assign(document.createElement("span"), { className: "chip static", textContent: label(t.text) }));
  const split = f.tokens.filter((t) => !t.text.startsWith(" ") && t.start > 0).map((t) => label(t.text));
  para("tokens-text", `${L.model.name} reads “${f.text}” as ${f.tokens.length} tokens. Common words are one token each; a rarer word is split into pieces${split.length ? ` (here ${split.map((s) => `“${s}”`).join(", ")})` : ""}. Each token starts as its own context-free vector of numbers: the same vector wherever the token appears.`);
}

function fluffySection() {
  const f = L.fluffy, best = f.heads[0];
  const q = quoted(f.tokens[f.query].text), adj = f.keys.map((k) => quoted(f.tokens[k].text)).join(" and ");
  arrowsFor($("fluffy-arrows"), f.tokens, best, f.query);
  para("fluffy-text", `The textbook picture: the adjectives ${adj} update the noun ${q}, so that it comes to mean a fluffy, blue creature. Searching all ${L.model.n_layers * L.model.n_heads} heads of the real model, layer ${best.layer}, head ${best.head} comes closest: ${q} puts ${pct(best.share)} of its attention on ${adj} (arrows above; thicker means more).`);
  const prevTop = L.head_finder.top.previous.slice(0, 3).map((h) => `L${h.layer}H${h.head}`);
  para("fluffy-text", `The honest gap: the heads that do this most are largely previous-token heads (the head finder's top previous-token heads are ${prevTop.join(", ")}): they look at the word just before any word, and here the words before ${q} happen to be its adjectives. A typical head instead sends ${pct(best.median_first_token)} of ${q}'s attention (the median over all heads) to the very first token, an “attention sink” that real models use as a place to put attention they do not need.`);
  link("fluffy-text", explorer(f.text, best.layer, best.head, f.query), "Open this head in the explorer →");
  embedButton("fluffy-text", embedOf("arrows", { text: f.text, layer: best.layer, head: best.head, token: f.query }),
    explorer(f.text, best.layer, best.head, f.query), "these arrows");
  link("fluffy-text", `/explain?${new URLSearchParams({ text: f.text, layer: best.layer, head: best.head, token: f.query })}`, "Why it looks there: Q·K step by step →");
}

function moleSection() {
  const c = L.mole, N = c.occurrences.length;
  const traces = [];
  for (let a = 0; a < N; a++) for (let b = a + 1; b < N; b++)
    traces.push({ type: "scatter", mode: "lines", name: `${a + 1} vs ${b + 1}`, x: c.layers, y: c.similarity.map((m) => m[a][b]), line: { color: headColor(a + b) } });
  window.Plotly.react($("mole-chart"), traces, {
    height: 300, margin: { l: 45, r: 10, t: 10, b: 60 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: css("--fg"), size: 11 }, xaxis: { type: "category", title: { text: "layer" } }, yaxis: { title: { text: "cosine similarity" }, range: [0, 1.02] },
    legend: { orientation: "h", y: -0.3 },
  }, { displaylogo: false, responsive: true, showSendToCloud: false });
  const last = c.similarity[c.similarity.length - 1];
  let low = 1;
  for (let a = 0; a < N; a++) for (let b = a + 1; b < N; b++) low = Math.min(low, last[a][b]);
  para("mole-text", `“mole” means an animal, a unit of chemistry and a mark on the skin in these three sentences, but it is the same token in all of them, so at the embedding its three vectors are identical: similarity 1. Layer by layer, attention mixes in the rest of each sentence and the vectors drift apart; at the last layer the least similar pair is at ${low.toFixed(2)}.`);
  const compare = new URLSearchParams([["word", "mole"], ...c.occurrences.map((_, k) => ["s", L.mole_sentences[k]])]);
  link("mole-text", `/compare?${compare}`, "Compare it yourself →");
  embedButton("mole-text", `/embed/compare?${compare}`, `/compare?${compare}`, "this comparison");
}

function towerSection() {
  const box = $("tower-cases");
  for (const t of L.towers) {
    const h = t.heads[0];
    const fig = document.createElement("figure");
    fig.className = "lesson-fig";
    const arrows = document.createElement("div");
    arrows.className = "arrows small";
    const cap = document.createElement("figcaption");
    cap.textContent = `“${t.text}”: in layer ${h.layer}, head ${h.head}, ${quoted(t.tokens[t.query].text)} puts ${pct(h.share)} of its attention on ${quoted(t.tokens[t.query - 1].text)}.`;
    fig.append(arrows, cap);
    box.append(fig);
    arrowsFor(arrows, t.tokens, h, t.query);
  }
  const t0 = L.towers[0], h0 = t0.heads[0];
  embedButton("tower-text", embedOf("arrows", { text: t0.text, layer: h0.layer, head: h0.head, token: t0.query }),
    explorer(t0.text, h0.layer, h0.head, t0.query), `“${t0.text}”`);
  para("tower-text", "The word before “tower” changes what a tower is. In each sentence a head carries that word into “tower”; that is the step that lets later layers treat an Eiffel tower as a landmark and a miniature tower as a toy.");
}

function headsSection() {
  const list = $("finder-list");
  for (const [name, top] of Object.entries(L.head_finder.top)) {
    const li = document.createElement("li");
    const b = Object.assign(document.createElement("b"), { textContent: `${name}: ` });
    const a = Object.assign(document.createElement("a"), { href: explorer(L.fluffy.text, top[0].layer, top[0].head, -1), textContent: `layer ${top[0].layer}, head ${top[0].head} (${top[0].score.toFixed(2)})` });
    li.append(b, a, Object.assign(document.createElement("span"), { className: "muted small", textContent: ` — ${L.head_finder.formulas[name]}` }));
    list.append(li);
  }
}

function ablationSection() {
  const f = L.france, i = f.tokens.length - 1;
  const orig = f.ablated.original[i], now = f.ablated.predictions[i];
  const ids = [...new Set([...orig.map((p) => p.id), ...now.map((p) => p.id)])].slice(0, 6);
  const text = (id) => plotlySafe(label((orig.find((p) => p.id === id) || now.find((p) => p.id === id)).text));
  const prob = (list, id) => list.find((p) => p.id === id)?.prob ?? 0;
  window.Plotly.react($("france-chart"), [
    { type: "bar", name: "every head on", x: ids.map(text), y: ids.map((id) => prob(orig, id)), marker: { color: css("--muted") } },
    { type: "bar", name: `${f.heads_to_france.length} heads off`, x: ids.map(text), y: ids.map((id) => prob(now, id)), marker: { color: css("--accent") } },
  ], {
    barmode: "group", height: 300, margin: { l: 45, r: 10, t: 10, b: 40 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: css("--fg"), size: 11 }, yaxis: { title: { text: "probability of the next token" }, tickformat: ".0%" }, legend: { orientation: "h", y: 1.15 },
  }, { displaylogo: false, responsive: true, showSendToCloud: false });
  const heads = f.heads_to_france.map((h) => `L${h.layer}H${h.head}`).join(", ");
  para("france-text", `“${f.text}” → the model answers ${quoted(orig[0].text)} (${pct(orig[0].prob)}). The heads through which the last token reads ${quoted("France")} most are ${heads}. Switch those ${f.heads_to_france.length} heads off (their output set to zero) and run the model again: its top answer becomes ${quoted(now[0].text)} (${pct(now[0].prob)}), and ${quoted(orig[0].text)} falls to ${pct(prob(now, orig[0].id))}. The country still reaches the last token by other paths, but much less of it: a head is a route for information.`);
  link("france-text", `/?${new URLSearchParams({ text: f.text, token: i, locked: 1, off: f.heads_to_france.map((h) => `${h.layer}.${h.head}`).join(",") })}`, "Try switching heads off yourself →");
}

tokensSection();
fluffySection();
towerSection();
headsSection();
plotlyReady().then(() => {
  moleSection();
  ablationSection();
  document.body.dataset.ready = "1";
});
