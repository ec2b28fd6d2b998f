// The explorer page: type a sentence, see attention, hover a token.
// State lives in one Store (mirrored in the URL); data comes inline for the first paint, then from
// the API, one channel per kind of request so that a stale response never overwrites a newer one.

import { ApiError, busy, decodePattern, post } from "./api.js";
import { headColor } from "./colors.js";
import { arrowsSVG, exportURL, gridSVG, heatmapImage, linesSVG, save } from "./export.js";
import { plotlyReady } from "./plotly.js";
import { Store, stateFromInitial } from "./store.js";
import { buildChips, drawArrows } from "./views/arrows.js";
import { describe } from "./views/describe.js";
import { drawGrid } from "./views/grid.js";
import { drawHeatmap, highlight } from "./views/heatmap.js";
import { buildLines, drawLines } from "./views/lines.js";
import { drawPredictions } from "./views/predictions.js";

const $ = (id) => document.getElementById(id);
const initial = JSON.parse($("initial").textContent);
const models = Object.fromEntries(initial.models.map((m) => [m.id, m]));
const store = new Store(stateFromInitial(initial.state));
window.attnscope = { store };  // for the curious (and for tests): the live state

// What the views draw. key says which text/model/layer a piece belongs to.
const data = { tokens: null, tokensKey: "", pattern: null, patternKey: "", head: null, headKey: "", grid: null,
  gridKey: "", predictions: null, predKey: "" };
let chips = [];
let lines = null;

const model = () => models[store.get("model")];
const textKey = (s = store.state) => `${s.model}\u0000${s.text}`;

// ---- applying data ------------------------------------------------------------------------------

function setTokens(tokens, key) {
  if (key === data.tokensKey) return;
  data.tokens = tokens;
  data.tokensKey = key;
  const handlers = { onHover: hover, onLeave: leave, onClick: toggleLock, onKey: chipKey };
  chips = buildChips($("arrows"), tokens, handlers);
  lines = buildLines($("lines"), tokens, { onHover: hover, onLeave: leave, onClick: toggleLock });
  if (store.get("token") >= tokens.length) store.set({ token: -1, locked: false });
}

function applyAttention(p, s) {
  setTokens(p.tokens, textKey(s));
  data.pattern = p.attention[String(s.layer)];
  data.patternKey = `${textKey(s)}\u0000${s.layer}`;
}

function applyGrid(p, s) {
  const data_ = {};
  for (const [L, a] of Object.entries(p.attention)) data_[L] = decodePattern(a);
  data.grid = { data: data_, n: p.tokens.length, nLayers: p.n_layers, nHeads: p.n_heads, causal: p.causal };
  data.gridKey = textKey(s);
}

// ---- drawing --------------------------------------------------------------------------------------

function drawFocus(remeasure = false) {
  if (!data.pattern || !data.tokens) return;
  const s = store.state;
  const view = { heads: s.heads, token: s.token, dir: s.dir };
  if (lines) drawLines(lines, data.pattern, view, remeasure);  // before the arrows touch the DOM: no forced layout
  drawArrows($("arrows"), chips, data.pattern, view);
  highlight($("heatmap"), data.tokens.length, s.token, s.dir);
  $("describe").textContent = describe({ tokens: data.tokens, pattern: data.pattern, layer: s.layer, head: s.head,
    token: s.token, dir: s.dir, causal: model().causal });
  const lock = $("lock");
  lock.hidden = !(s.locked && s.token >= 0);
  if (!lock.hidden) $("lock-token").textContent = chips[s.token]?.textContent ?? "";
  drawPreds();
}

function drawPreds() {
  if (!data.tokens) return;
  const s = store.state;
  const causal = model().causal;
  const p = data.predictions;
  if (causal && (!p || p.predictions.length !== data.tokens.length)) {  // still on its way for this text
    $("predictions").replaceChildren(Object.assign(document.createElement("p"), { className: "muted", textContent: "Computing the next-token probabilities…" }));
    return;
  }
  drawPredictions($("predictions"), { tokens: data.tokens, predictions: causal ? p.predictions : null,
    original: p?.original ?? null, off: s.off, position: s.token, temperature: s.temperature });
  drawOffList();
  $("temperature-row").hidden = !causal;
}

function markRendered() {
  const s = store.state;
  window.attnscope.rendered = { text: s.text, model: s.model, layer: s.layer, head: s.head, grid: data.gridKey === textKey(s) };
}

async function drawHeat() {
  if (!data.pattern || !data.tokens) return;
  await plotlyReady();
  const s = store.state;
  const scores = data.headKey === `${data.patternKey}\u0000${s.head}` ? data.head.scores : null;
  await drawHeatmap($("heatmap"), { tokens: data.tokens, pattern: data.pattern[s.head], scores, causal: model().causal,
    layer: s.layer, head: s.head }, (q) => toggleLock(q));
  highlight($("heatmap"), data.tokens.length, s.token, s.dir);
  markRendered();
}

function drawAllHeads() {
  if (!data.grid) return;
  const s = store.state;
  drawGrid($("grid"), { ...data.grid, layer: s.layer, head: s.head, off: model().causal ? s.off : [] }, (L, H, e) => {
    const switching = model().causal && (e.shiftKey || e.altKey || $("switch-mode").checked);
    if (!switching) return store.set({ layer: L, head: H, heads: [H] });
    const key = `${L}.${H}`;
    const off = s.off.includes(key) ? s.off.filter((k) => k !== key) : [...s.off, key];
    store.set({ off });
  });
}

// The switched-off heads, each a button that switches it back on.
function drawOffList() {
  const s = store.state;
  const box = $("off-list");
  $("ablation").hidden = !model().causal;
  box.replaceChildren(...s.off.map((k) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "off-chip";
    b.textContent = `L${k.replace(".", " H")} ✕`;
    b.title = "switch this head back on";
    b.addEventListener("click", () => store.set({ off: store.get("off").filter((x) => x !== k) }));
    return b;
  }));
  $("off-none").hidden = s.off.length > 0;
  $("off-mode").value = s.offMode;
}

function drawHeadChips() {
  const el = $("heads");
  const s = store.state;
  el.replaceChildren(...Array.from({ length: model().n_heads }, (_, h) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "head-chip";
    b.style.setProperty("--c", headColor(h));
    b.textContent = String(h);
    b.setAttribute("aria-pressed", String(s.heads.includes(h)));
    b.title = `draw head ${h} in the arrow views`;
    b.addEventListener("click", () => {
      const heads = s.heads.includes(h) ? s.heads.filter((x) => x !== h) : [...s.heads, h];
      store.set({ heads: heads.length ? heads : [store.get("head")] });
    });
    return b;
  }));
}

function drawControls() {
  const s = store.state;
  const m = model();
  $("model").value = s.model;
  $("layer").max = String(m.n_layers - 1);
  $("layer").value = String(s.layer);
  $("layer-out").textContent = `${s.layer} / ${m.n_layers - 1}`;
  const head = $("head");
  if (head.options.length !== m.n_heads)
    head.replaceChildren(...Array.from({ length: m.n_heads }, (_, h) => new Option(String(h), String(h))));
  head.value = String(s.head);
  document.querySelector(`input[name="dir"][value="${s.dir}"]`).checked = true;
  $("temperature").value = String(s.temperature);
  $("temperature-out").textContent = Number(s.temperature).toFixed(2);
  $("facts").textContent = `${m.name} · ${m.architecture} ${m.causal ? "(causal: each token sees only earlier ones)" : "(encoder: every token sees every token)"}`
    + ` · ${m.n_layers} layers × ${m.n_heads} heads${m.n_kv_heads !== m.n_heads ? ` (${m.n_kv_heads} key/value heads)` : ""}`
    + ` · d_model ${m.d_model} · d_head ${m.d_head} · up to ${m.max_tokens} tokens`;
  drawHeadChips();
}

// ---- fetching -------------------------------------------------------------------------------------

function showError(e) {
  const el = $("error");
  if (!e) {
    el.hidden = true;
    document.body.classList.remove("stale");
    return;
  }
  el.hidden = false;
  el.textContent = e instanceof ApiError ? e.message : `Something went wrong: ${e.message}`;
  document.body.classList.add("stale");
}

async function fetchLayer() {
  const s = { ...store.state };
  const body = { text: s.text, model: s.model };
  const [att, head] = await Promise.all([
    post("attention", "/api/attention", { ...body, layers: [s.layer] }),
    post("head", "/api/head", { ...body, layer: s.layer, head: s.head }),
  ]);
  if (!att || !head || textKey(s) !== textKey() || s.layer !== store.get("layer")) return false;
  applyAttention(att, s);
  data.head = head;
  data.headKey = `${data.patternKey}\u0000${s.head}`;
  return true;
}

async function fetchHead() {
  const s = { ...store.state };
  const head = await post("head", "/api/head", { text: s.text, model: s.model, layer: s.layer, head: s.head });
  if (!head || textKey(s) !== textKey() || s.layer !== store.get("layer") || s.head !== store.get("head")) return false;
  data.head = head;
  data.headKey = `${textKey(s)}\u0000${s.layer}\u0000${s.head}`;
  return true;
}

async function fetchPredictions() {
  const s = { ...store.state };
  if (!model().causal) {
    data.predictions = null;
    return true;
  }
  const ablate = s.off.map((k) => k.split(".").map(Number));
  const p = await post("predictions", "/api/predictions", { text: s.text, model: s.model, top_k: 10, temperature: s.temperature,
    ablate, ablate_mode: s.offMode });
  if (!p || textKey(s) !== textKey() || s.temperature !== store.get("temperature") || s.off.join() !== store.get("off").join()
      || s.offMode !== store.get("offMode")) return false;
  data.predictions = p;
  data.predKey = `${textKey(s)}\u0000${s.temperature}`;
  return true;
}

async function fetchGrid() {
  const s = { ...store.state };
  const g = await post("grid", "/api/attention", { text: s.text, model: s.model, encoding: "uint8" });
  if (!g || textKey(s) !== textKey()) return false;
  applyGrid(g, s);
  return true;
}

async function guarded(work) {
  try {
    const ok = await work();
    if (ok !== false) showError(null);
    return ok;
  } catch (e) {
    showError(e);
    return false;
  }
}

async function refreshText() {
  const ok = await guarded(async () => {
    const preds = fetchPredictions();  // in parallel; drawn when it arrives
    if (!(await fetchLayer())) return false;
    data.predictions = data.predKey.startsWith(`${textKey()}\u0000`) ? data.predictions : null;
    drawFocus();
    await drawHeat();
    if (await preds) drawPreds();
    return true;
  });
  if (ok) await guarded(async () => (await fetchGrid()) && (drawAllHeads(), markRendered(), true));
}

// ---- exports --------------------------------------------------------------------------------------

// The server's files (/export/...) for the live state: the links follow the store.
function exportLinks() {
  const s = store.state;
  for (const a of document.querySelectorAll("a[data-export-link]")) {
    const [view, fmt] = a.dataset.exportLink.split(".");
    a.href = exportURL(view, fmt, s);
  }
}

function exportName(view) {
  const s = store.state;
  if (view === "grid") return "attnscope-grid";
  const heads = view === "heatmap" ? [s.head] : s.heads;
  return `attnscope-${view}-L${s.layer}-H${heads.join("+")}${view !== "heatmap" && s.token >= 0 ? `-T${s.token}` : ""}`;
}

// PNG and SVG of what is on screen, made in the browser
async function exportImage(view, format) {
  const s = store.state;
  const m = model();
  const heads = view === "heatmap" || view === "grid" ? [s.head] : s.heads;
  const token = s.token >= 0 && data.tokens ? `, query token ${s.token} ${chips[s.token]?.textContent ?? ""}` : "";
  const about = { desc: s.text, caption: view === "grid"
    ? `${m.id} · every layer × head (brightness √weight) · selected: layer ${s.layer}, head ${s.head}`
    : `${m.id} · layer ${s.layer} · head${heads.length > 1 ? "s" : ""} ${heads.join(", ")}${token}` };
  const name = exportName(view);
  if (view === "heatmap") {
    await plotlyReady();
    return heatmapImage($("heatmap"), format, name);
  }
  if (!data.pattern || !data.tokens) return;
  const focus = { heads: s.heads, token: s.token, dir: s.dir };
  let svg;
  if (view === "arrows") svg = arrowsSVG($("arrows"), { title: "attnscope: arrows between tokens", ...about });
  else if (view === "lines") svg = linesSVG($("lines"), lines, data.pattern, focus, { title: "attnscope: query → key lines", ...about });
  else if (view === "grid") {
    if (!data.grid) return;
    svg = gridSVG($("grid"), { ...data.grid, off: m.causal ? s.off : [] }, { title: "attnscope: every layer × head", ...about });
  }
  await save(svg, format, name);
}

function wireExports() {
  for (const b of document.querySelectorAll("button[data-export]")) {
    b.addEventListener("click", async () => {
      if (b.getAttribute("aria-disabled") === "true") return;  // busy (not `disabled`: that would drop the keyboard focus)
      b.setAttribute("aria-disabled", "true");
      try {
        await exportImage(b.dataset.export, b.dataset.format);
      } catch (e) {
        showError(new Error(`the ${b.dataset.format.toUpperCase()} could not be made (${e.message})`));
      } finally {
        b.removeAttribute("aria-disabled");
      }
    });
  }
  exportLinks();
  store.addEventListener("change", exportLinks);
}

// ---- interaction ----------------------------------------------------------------------------------

function hover(i) {
  if (!store.get("locked")) store.set({ token: i });
}

function leave() {
  if (!store.get("locked")) store.set({ token: -1 });
}

function toggleLock(i) {
  const s = store.state;
  if (s.locked && s.token === i) store.set({ locked: false });
  else store.set({ token: i, locked: true });
}

function unlock() {
  if (store.get("locked")) store.set({ locked: false, token: -1 });
}

function chipKey(e, i) {
  const n = chips.length;
  const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: n - 1 }[e.key];
  if (to !== undefined) {
    e.preventDefault();
    const j = Math.max(0, Math.min(n - 1, to));
    chips[i].tabIndex = -1;
    chips[j].tabIndex = 0;
    chips[j].focus();
    if (store.get("locked")) store.set({ token: j });
  } else if (e.key === "Escape") {
    unlock();
  }
}

let typing = 0;
function onTextInput() {
  clearTimeout(typing);
  typing = setTimeout(() => store.set({ text: $("text").value }), 220);
}

function wire() {
  const modelSel = $("model");
  modelSel.replaceChildren(...initial.models.map((m) => new Option(`${m.name}${m.default ? " (default)" : ""}`, m.id)));
  $("text").value = store.get("text");
  $("text").addEventListener("input", onTextInput);
  modelSel.addEventListener("change", () => {
    const m = models[modelSel.value];
    const layer = Math.min(store.get("layer"), m.n_layers - 1), head = Math.min(store.get("head"), m.n_heads - 1);
    store.set({ model: m.id, layer, head, heads: [head], token: -1, locked: false, off: [] });
  });
  $("layer").addEventListener("input", (e) => store.set({ layer: Number(e.target.value) }));
  $("head").addEventListener("change", (e) => {
    const h = Number(e.target.value);
    store.set({ head: h, heads: [h, ...store.get("heads").filter((x) => x !== store.get("head") && x !== h)] });
  });
  for (const r of document.querySelectorAll('input[name="dir"]')) r.addEventListener("change", (e) => store.set({ dir: e.target.value }));
  $("temperature").addEventListener("input", (e) => store.set({ temperature: Number(e.target.value) }));
  $("unlock").addEventListener("click", unlock);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") unlock();
  });
  let slow = 0;
  busy.addEventListener("change", (e) => {
    clearTimeout(slow);
    if (e.detail) slow = setTimeout(() => ($("busy").hidden = false), 120);
    else $("busy").hidden = true;
  });
  let resize = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resize);
    resize = setTimeout(() => { drawFocus(true); drawAllHeads(); }, 120);
  });
  let urlTimer = 0;
  store.addEventListener("change", () => {
    clearTimeout(urlTimer);
    urlTimer = setTimeout(() => {
      history.replaceState(null, "", store.toURL());
      $("explain-link").href = `/explain?${store.query()}`;
    }, 150);
  });

  store.on(["text", "model"], async (s, changed) => {
    if (changed.has("model")) drawControls();
    await refreshText();
  });
  store.on(["layer"], async () => {
    drawControls();
    drawAllHeads();
    if (await guarded(fetchLayer)) { drawFocus(); await drawHeat(); }
  });
  store.on(["head"], async (s, changed) => {
    if (changed.has("layer")) return;  // handled with the layer
    drawControls();
    drawAllHeads();
    drawFocus();
    await drawHeat();
    if (await guarded(fetchHead)) await drawHeat();
  });
  store.on(["heads"], () => { drawHeadChips(); drawFocus(); });
  store.on(["token", "dir", "locked"], (s, changed) => {
    if (changed.has("dir")) drawControls();
    drawFocus();
  });
  $("off-mode").addEventListener("change", (e) => store.set({ offMode: e.target.value }));
  $("off-clear").addEventListener("click", () => store.set({ off: [] }));
  store.on(["off", "offMode"], async () => {
    drawAllHeads();
    drawOffList();
    if (await guarded(fetchPredictions)) drawPreds();
  });
  store.on(["temperature"], async () => {
    drawControls();
    if (await guarded(fetchPredictions)) drawPreds();
  });
}

// ---- first paint from inline data -----------------------------------------------------------------

async function start() {
  wire();
  wireExports();
  $("explain-link").href = `/explain?${store.query()}`;
  drawControls();
  if (initial.error) showError(new ApiError(422, initial.error));
  const d = initial.data;
  if (d) {
    const s = store.state;
    applyAttention(d.attention, s);
    data.head = d.head;
    data.headKey = `${data.patternKey}\u0000${s.head}`;
    data.predictions = d.predictions ?? null;
    applyGrid(d.grid, s);
    drawFocus();
    drawAllHeads();
    await drawHeat();
  }
  markRendered();
  document.body.dataset.ready = "1";
}

start();
