// The guided lesson: the classic examples with the live model's numbers, told with what the heads
// moved as well as where they looked. Every sentence of it is app/lesson.py's (the page's inline
// JSON, "sections"); this module only lays those strings and the numbers out, and makes the token
// chips hoverable as in the explorer (focus.js).

import { headColor } from "./colors.js";
import { $, css, el, initialData } from "./dom.js";
import { tokenFocus } from "./focus.js";
import { config, plotlyReady } from "./plotly.js";
import { openEmbed } from "./share.js";
import { Store } from "./store.js";
import { label, legendAfter, plotlySafe, quoted } from "./tokens.js";
import { drawArrows } from "./views/arrows.js";

const L = initialData().lesson;
const prose = L.sections; // the lesson's words, with their numbers: app/lesson.py's
const paras = (id, list = []) => $(id).append(...list.map((text) => el("p", { textContent: text })));
const link = (id, href, text) => $(id).append(el("a", { href, textContent: text, className: "more" }));
// the explorer on a sentence; with a token, locked on it
const explorer = (params) => `/?${new URLSearchParams({ ...params, ...("token" in params ? { locked: 1 } : {}) })}`;
const pct = (x) => `${(100 * x).toFixed(0)}%`;

// An "Embed" button in a section's heading: the snippet for embed, with link as the plain link.
function embedButton(id, embed, href, what) {
  const b = el("button", { type: "button", className: "embed-section", textContent: "Embed", title: `embed ${what} in a page or slides` });
  b.setAttribute("aria-haspopup", "dialog");
  b.addEventListener("click", () => openEmbed({ embed, link: href }));
  $(id).closest("section").querySelector("h2").append(b);
}
const embedOf = (view, params) => `/embed/${view}?${new URLSearchParams(params)}`;

// A figure of token chips whose focus (hover, keyboard, click to lock) lives in its own store, as in
// the explorer; draw(state, focus) redraws it, on every focus change and when its width changes.
function hoverable(box, draw, extra = {}) {
  const store = new Store({ token: -1, locked: false, ...extra });
  const focus = tokenFocus(store);
  const redraw = () => draw(store.state, focus);
  store.on(["token", "locked", ...Object.keys(extra)], redraw);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") focus.release(); });  // as the explorer
  let width = -1;
  new ResizeObserver(() => { if (box.clientWidth !== width) { width = box.clientWidth; redraw(); } }).observe(box);
  return store;
}

// One head's arrows into the focused token (or the lesson's query when none is), by weight or by
// what moved (each row's shares): rows = {layer, head, pattern, moved}.
function headArrows(box, tokens, rows, query, measure = () => "weight") {
  return (state, focus) => {
    const token = state.token >= 0 ? state.token : query;
    const pattern = { [rows.head]: measure(state) === "moved" ? rows.moved : rows.pattern };
    drawArrows(box, { tokens, pattern }, { heads: [rows.head], token, dir: "out", focus });
    return token;
  };
}

// "token reads: ‘a’ 72%, ‘blue’ 16%, …" (the three largest of a row)
function rowSummary(tokens, row, token) {
  const top = row.map((w, k) => [w, k]).sort((a, b) => b[0] - a[0]).slice(0, 3);
  return `${quoted(tokens[token])} (token ${token}): ${top.map(([w, k]) => `${quoted(tokens[k])} ${pct(w)}`).join(", ")}`;
}

function table(t, { head, rows }, cell = (td) => td) {
  t.replaceChildren(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { textContent: h })))),
    el("tbody", {}, ...rows.map((r, i) => el("tr", {}, ...r.map((c, j) => cell(el("td", { textContent: c }), i, j))))));
  return t;
}

// "Try your own sentence": a box that opens another page with the reader's text.
function tryBox(id, value, href) {
  const box = document.querySelector(`.try-box[data-try="${id}"]`);
  const input = el("input", { type: "text", className: "sentence", value, name: "text", spellcheck: false, id: `try-${id}` });
  const form = el("form", { className: "try" },
    el("label", { htmlFor: `try-${id}`, textContent: prose[id].try }),
    el("div", { className: "try-row" }, input, el("button", { type: "submit", textContent: "Open →" })));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value.trim()) location.href = href(input.value);
  });
  box.append(form);
}

// ---- the sections -----------------------------------------------------------------------------

function tokensSection() {
  const f = L.fluffy, box = $("tokens-chips");
  hoverable(box, (state, focus) => {
    const token = state.token >= 0 ? state.token : f.query;
    drawArrows(box, { tokens: f.tokens, pattern: {} }, { heads: [], token, dir: "out", focus });
    $("tokens-vector").textContent = prose.tokens.vectors[token];
  });
  legendAfter(box, f.tokens);
  paras("tokens-text", prose.tokens.p);
  tryBox("tokens", f.text, (text) => explorer({ text }));
}

function cardView() {
  const c = prose.adjectives.card, box = $("card");
  const lines = (list) => list.map(([formula, what]) => el("div", { className: "math-line" },
    el("code", { textContent: formula }), el("span", { textContent: what })));
  box.append(el("h3", { textContent: c.title }), ...lines(c.lines),
    el("div", { className: "table-wrap" }, table(el("table", { className: "nums lesson-table" }), c.table)), ...lines(c.after));
}

function fluffySection() {
  const f = L.fluffy, a = prose.adjectives, rows = f.rows;
  paras("fluffy-intro", a.p);
  cardView();
  paras("fluffy-card-text", a.p_card);
  const radios = $("fluffy-measure");
  radios.append(el("legend", { textContent: `layer ${rows.layer}, head ${rows.head}:` }));
  const box = $("fluffy-arrows");
  const draw = headArrows(box, f.tokens, rows, f.query, (s) => s.measure);
  legendAfter(box, f.tokens);
  const store = hoverable(box, (state, focus) => {
    const token = draw(state, focus);
    $("fluffy-caption").textContent = `${a.measures[state.measure]} · ${rowSummary(f.tokens, (state.measure === "moved" ? rows.moved : rows.pattern)[token].slice(0, token + 1), token)}`;
  }, { measure: "weight" });
  for (const [value, text] of Object.entries(a.measures)) {
    const input = el("input", { type: "radio", name: "fluffy-measure", value, checked: value === "weight" });
    input.addEventListener("change", () => store.set({ measure: value }));
    radios.append(el("label", {}, input, ` ${text}`));
  }
  paras("fluffy-sink", a.p_sink);
  table($("movers"), a.table, (td, i, j) => {
    if (j !== 0) return td;
    const h = f.heads[i];
    td.replaceChildren(el("a", { href: explorer({ text: f.text, layer: h.layer, head: h.head, token: f.query, measure: "moved" }), textContent: td.textContent }));
    return td;
  });
  paras("fluffy-text", a.p_end);
  const here = { text: f.text, layer: rows.layer, head: rows.head, token: f.query };
  link("fluffy-text", explorer(here), "Open this head in the explorer →");
  link("fluffy-text", `/explain?${new URLSearchParams(here)}`, "Every step, for any token: explain this head →");
  embedButton("fluffy-text", embedOf("arrows", here), explorer(here), "these arrows");
  tryBox("adjectives", f.text, (text) => explorer({ text, layer: rows.layer, head: rows.head }));
}

function moleSection() {
  const c = L.mole, m = prose.mole;
  $("mole-sentences").append(...m.sentences.map((s) => el("li", { textContent: s })));
  const colours = [0, 6, 7];  // rose, teal, olive: apart, and mid-tones that read on light and dark
  const traces = m.legend.map(([name, a, b], i) => ({ type: "scatter", mode: "lines", name: plotlySafe(name), x: c.layers,
    y: c.similarity.map((s) => s[a][b]), line: { color: headColor(colours[i % 3]) } }));
  window.Plotly.react($("mole-chart"), traces, {
    height: 320, margin: { l: 45, r: 10, t: 10, b: 60 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: css("--fg"), size: 11 }, xaxis: { type: "category", title: { text: "layer" } }, yaxis: { title: { text: "cosine similarity" }, range: [0, 1.02] },
    legend: { orientation: "h", y: -0.3 },
  }, config());
  paras("mole-text", m.p);
  const compare = new URLSearchParams([["word", c.word], ...L.mole_sentences.map((s) => ["s", s])]);
  link("mole-text", `/compare?${compare}`, "Compare it yourself →");
  embedButton("mole-text", `/embed/compare?${compare}`, `/compare?${compare}`, "this comparison");
  tryBox("mole", "a mole dug under the garden", (text) => `/compare?${new URLSearchParams([["word", c.word], ...L.mole_sentences.map((s) => ["s", s]), ["s", text]])}`);
}

function towerSection() {
  const box = $("tower-cases"), t = prose.towers, h = L.tower_head;
  L.towers.forEach((tower, i) => {
    const arrows = el("div", { className: "arrows small" });
    const readout = el("p", { className: "muted small", attrs: { "aria-live": "polite" } });
    box.append(el("figure", { className: "lesson-fig" }, arrows, readout, el("figcaption", { textContent: t.captions[i] })));
    const draw = headArrows(arrows, tower.tokens, tower.rows, tower.query);
    legendAfter(arrows, tower.tokens);
    hoverable(arrows, (state, focus) => {
      const token = draw(state, focus);
      readout.textContent = `L${h.layer}H${h.head} · ${rowSummary(tower.tokens, tower.rows.pattern[token].slice(0, token + 1), token)}`;
    });
  });
  paras("tower-text", t.p);
  const t0 = L.towers[0], here = { text: t0.text, layer: h.layer, head: h.head, token: t0.query };
  embedButton("tower-text", embedOf("arrows", here), explorer(here), `“${t0.text}”`);
  tryBox("towers", t0.text, (text) => explorer({ text, layer: h.layer, head: h.head }));
}

function headsSection() {
  const list = $("finder-list"), rows = L.head_finder.rows;
  paras("heads-text", prose.heads.p);
  prose.heads.list.forEach(([name, head, formula], i) => {
    const top = rows[i].heads[0];
    list.append(el("li", {}, el("b", { textContent: `${name}: ` }),
      el("a", { href: explorer({ text: L.fluffy.text, layer: top.layer, head: top.head }), textContent: head }),
      el("details", { className: "formula-details" }, el("summary", { textContent: "formula" }), el("span", { className: "muted small", textContent: formula }))));
  });
  paras("heads-end", prose.heads.p_end);
  tryBox("heads", L.fluffy.text, (text) => `/lens?${new URLSearchParams({ text })}`);
}

function ablationSection() {
  const f = L.france, i = f.tokens.length - 1;
  const orig = f.ablated.original[i], now = f.ablated.predictions[i];
  const ids = [...new Set([...orig.map((p) => p.id), ...now.map((p) => p.id)])].slice(0, 6);
  const text = (id) => plotlySafe(label(orig.find((p) => p.id === id) || now.find((p) => p.id === id)));
  const prob = (list, id) => list.find((p) => p.id === id)?.prob ?? 0;
  window.Plotly.react($("france-chart"), [
    { type: "bar", name: "every head on", x: ids.map(text), y: ids.map((id) => prob(orig, id)), marker: { color: css("--muted") } },
    { type: "bar", name: `${f.heads_to_france.length} heads off`, x: ids.map(text), y: ids.map((id) => prob(now, id)), marker: { color: css("--accent") } },
  ], {
    barmode: "group", height: 300, margin: { l: 45, r: 10, t: 10, b: 40 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: css("--fg"), size: 11 }, yaxis: { title: { text: "probability of the next token" }, tickformat: ".0%" }, legend: { orientation: "h", y: 1.15 },
  }, config());
  legendAfter($("france-chart"), ids.map((id) => orig.find((p) => p.id === id) || now.find((p) => p.id === id)));
  paras("france-text", prose.ablation.p);
  const off = f.heads_to_france.map((h) => `${h.layer}.${h.head}`).join(",");
  link("france-text", explorer({ text: f.text, token: i, off }), "Try switching heads off yourself →");
  tryBox("ablation", f.text, (text) => `/?${new URLSearchParams({ text, off })}`);
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
