// The guided lesson: the classic examples with the live model's numbers, and an honest word on
// where the real heads differ from the textbook picture.

import { headColor } from "./colors.js";
import { $, css, el, initialData } from "./dom.js";
import { config, plotlyReady } from "./plotly.js";
import { label, plotlySafe } from "./tokens.js";
import { openEmbed } from "./share.js";
import { drawArrows } from "./views/arrows.js";
import { noFocus } from "./focus.js";

const initial = initialData();
const L = initial.lesson;
const prose = L.sections; // the lesson's words, with their numbers: app/lesson.py's
const para = (id, text) => $(id).append(el("p", { textContent: text }));
const link = (id, href, text) => {
  const a = el("a", { href, textContent: text, className: "more" });
  $(id).append(a);
};
// An "Embed" button in a section's heading: the snippet for embedURL, with link as the plain link.
function embedButton(id, embed, link, what) {
  const b = el("button", { type: "button", className: "embed-section", textContent: "Embed" });
  b.setAttribute("aria-haspopup", "dialog");
  b.title = `embed ${what} in a page or slides`;
  b.addEventListener("click", () => openEmbed({ embed, link }));
  $(id).closest("section").querySelector("h2").append(b);
}
const embedOf = (view, params) => `/embed/${view}?${new URLSearchParams(params)}`;
const explorer = (text, layer, head, token) => `/?${new URLSearchParams({ text, layer, head, token, locked: 1 })}`;

// One head's arrows into one query token, drawn with the explorer's own view.
function arrowsFor(box, tokens, headInfo, query) {
  const n = tokens.length;
  const pattern = { [headInfo.head]: Array.from({ length: n }, (_, q) => (q === query ? headInfo.row : new Array(n).fill(0))) };
  const draw = () => drawArrows(box, { tokens, pattern }, { heads: [headInfo.head], token: query, dir: "out", focus: noFocus, still: true });
  requestAnimationFrame(draw);
  window.addEventListener("resize", draw);
}

function tokensSection() {
  const f = L.fluffy;
  const box = $("tokens-chips");
  for (const t of f.tokens) box.append(el("span", { className: "chip static", textContent: label(t.text) }));
  for (const p of prose.tokens.p) para("tokens-text", p);
}

function fluffySection() {
  const f = L.fluffy, best = f.heads[0];
  arrowsFor($("fluffy-arrows"), f.tokens, best, f.query);
  for (const p of prose.adjectives.p) para("fluffy-text", p);
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
  }, config());
  for (const p of prose.mole.p) para("mole-text", p);
  const compare = new URLSearchParams([["word", c.word], ...prose.mole.sentences.map((s) => ["s", s])]);
  link("mole-text", `/compare?${compare}`, "Compare it yourself →");
  embedButton("mole-text", `/embed/compare?${compare}`, `/compare?${compare}`, "this comparison");
}

function towerSection() {
  const box = $("tower-cases");
  L.towers.forEach((t, i) => {
    const h = t.heads[0];
    const fig = document.createElement("figure");
    fig.className = "lesson-fig";
    const arrows = document.createElement("div");
    arrows.className = "arrows small";
    const cap = document.createElement("figcaption");
    cap.textContent = prose.towers.captions[i];
    fig.append(arrows, cap);
    box.append(fig);
    arrowsFor(arrows, t.tokens, h, t.query);
  });
  const t0 = L.towers[0], h0 = t0.heads[0];
  embedButton("tower-text", embedOf("arrows", { text: t0.text, layer: h0.layer, head: h0.head, token: t0.query }),
    explorer(t0.text, h0.layer, h0.head, t0.query), `“${t0.text}”`);
  for (const p of prose.towers.p) para("tower-text", p);
}

function headsSection() {
  const list = $("finder-list");
  for (const [name, head, formula] of prose.heads.list) {
    const top = L.head_finder.top[name][0];
    const li = document.createElement("li");
    const b = el("b", { textContent: `${name}: ` });
    const a = el("a", { href: explorer(L.fluffy.text, top.layer, top.head, -1), textContent: head });
    li.append(b, a, el("span", { className: "muted small", textContent: ` — ${formula}` }));
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
  }, config());
  for (const p of prose.ablation.p) para("france-text", p);
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
