// The explorer page: type a sentence, see attention, hover a token. The parts, one module each:
//   store.js              the state (mirrored in the URL: every state is a permalink)
//   explorer/data.js      what the views need from the server, keyed by state; the cache; staleness
//   explorer/views.js     the views bound to state and data: drawn only from the current state's data
//   explorer/controls.js  the controls, one group a function
//   explorer/exports.js   the export toolbars
//   explorer/write.js     letting the model write (streamed), and the timeline of what it wrote
//   focus.js              hover, focus, lock and release of a token (shared with embeds and lessons)
// This file puts them together and paints the first view from the data inline in the page.

import { ApiError, busy } from "./api.js";
import { $, initialData } from "./dom.js";
import { ablationControls, headControls, sentenceControls, temperatureControls, whyControls } from "./explorer/controls.js";
import { DataCache, keyOf } from "./explorer/data.js";
import { wireExports } from "./explorer/exports.js";
import { explorerViews, wanted } from "./explorer/views.js";
import { sideView } from "./explorer/side.js";
import { writeControls } from "./explorer/write.js";
import { tokenFocus } from "./focus.js";
import { loadPlotly } from "./plotly.js";
import { registerSteps } from "./present.js";
import { Store, shownThen, stateFromInitial } from "./store.js";

const initial = initialData();
const models = Object.fromEntries(initial.models.map((m) => [m.id, m]));
const store = new Store({ ...stateFromInitial(initial.state), writing: false });
if (store.state.cmp && models[store.state.cmp]) {  // side B's layer and head within its model's config
  const m = models[store.state.cmp];
  store.state.cmpLayer = Math.min(store.state.cmpLayer, m.n_layers - 1);
  store.state.cmpHead = Math.min(store.state.cmpHead, m.n_heads - 1);
} else store.state.cmp = "";
const cache = new DataCache();
const focus = tokenFocus(store);
window.attnscope = { store, rendered: null, painted: null };  // for the curious (and for tests): the live state

// ---- errors: the message of the current state's failed request, never an older one's ----------------

function showError(e) {
  const box = $("error");
  box.hidden = !e;
  document.body.classList.toggle("stale", !!e);
  if (e) box.textContent = e instanceof ApiError ? e.message : `Something went wrong: ${e.message}`;
}

function currentError(want = wanted(store.state, models, cache)) {
  for (const key of want.keys()) {
    const e = cache.get(key);
    if (e?.status === "error") return e.error;
  }
  return null;
}

// ---- a model switch keeps the focused token on the same characters --------------------------------

let remapFrom = null;  // the tokens on screen when the model changed, until the new ones arrive

function remap() {
  remapFrom = cache.get(keyOf("attention", store.state))?.value?.tokens ?? remapFrom;
}

// A token's characters without the spaces around them (one tokenizer keeps " cat", another "cat").
function core(t, text) {
  const piece = text.slice(t.start, t.end);
  return [t.start + piece.length - piece.trimStart().length, t.end - piece.length + piece.trimEnd().length];
}

// The new token with the same characters; else the last one overlapping them (the piece that has
// read the whole word); -1 if none (a special token such as [CLS] has no characters).
function sameCharacters(was, tokens, text) {
  const [a, b] = core(was, text);
  if (b <= a) return -1;
  const exact = tokens.findIndex((t) => { const [c, d] = core(t, text); return c === a && d === b; });
  if (exact >= 0) return exact;
  return tokens.findLastIndex((t) => { const [c, d] = core(t, text); return d > c && c < b && d > a; });
}

// The focused token must exist in the tokens of the current state (a shorter text, another model).
function keepTokenInRange() {
  const s = store.state;
  const a = cache.get(keyOf("attention", s));
  if (a?.status !== "ready") return;
  const tokens = a.value.tokens;
  const shown = shownThen(s);
  if (s.upto < 0 && s.then.length && a.value.text !== undefined && writing.recordFor(s)?.tokens?.slice(0, s.then.length).every((t) => t.end !== undefined) !== true)
    writing.learn(s.model, s.text, s.then, a.value.text, tokens.slice(tokens.length - s.then.length));
  else if (shown.length && a.value.text !== undefined) writing.learnSpans(s, tokens.slice(tokens.length - shown.length));
  if (remapFrom) {
    const was = remapFrom[s.token];
    remapFrom = null;
    if (was) {
      const j = sameCharacters(was, tokens, s.text);
      store.set(j >= 0 ? { token: j } : { token: -1, locked: false });
      return;
    }
  }
  if (s.token >= tokens.length) store.set({ token: -1, locked: false });
}

// ---- the controls and the views ---------------------------------------------------------------------

const ablation = ablationControls({ store, models });
const writing = writeControls({ store, models, onError: showError });
const controls = [sentenceControls({ store, models, remap, shownText: writing.shownText }), headControls({ store, models }),
  temperatureControls({ store, models }), ablation, whyControls({ store }), writing];
const views = explorerViews({ store, cache, models, focus, pickHead: ablation.pick, onError: showError, record: writing.recordFor,
  append: (id) => store.set({ then: [...shownThen(store.state), id], upto: -1 }) });

// side B (a second model beside this one): its own data from the same cache, drawn under the same rule
const side = sideView({ store, cache, models, shownText: writing.shownText,
  mainData: () => { const a = cache.get(keyOf("attention", store.state)); return a?.status === "ready" ? a.value : null; },
  mainChips: () => (views.fresh("arrows") ? views.geometry("arrows")?.chips : null) });

const FOCUS = new Set(["token", "locked"]);  // a hover: no control shows these, no data depends on them

function update(changed) {
  const focusOnly = changed.size > 0 && [...changed].every((k) => FOCUS.has(k));  // a hover needs no data
  if (!focusOnly) {
    const want = wanted(store.state, models, cache);
    cache.want(new Map([...want, ...side.wanted()]));  // one want: a need of either side is never aborted by the other's
    keepTokenInRange();
    showError(currentError(want));
  }
  views.render(changed);
  side.render(changed);
}

store.addEventListener("change", (e) => {
  if (e.detail.has("text")) remapFrom = null;  // its characters were of another text
  // an explained prediction belongs to its text and model (a position, a token id of that vocabulary)
  if ((e.detail.has("text") || e.detail.has("model")) && store.get("whyTarget") >= 0) return store.set({ whyAt: -1, whyTarget: -1, whyVs: -1 });
  if (![...e.detail].every((k) => FOCUS.has(k))) for (const c of controls) c.show(store.state);
  update(e.detail);
});
cache.addEventListener("data", () => update(new Set()));
store.addEventListener("record", () => {
  for (const c of controls) c.show(store.state);
  views.render(new Set(["record"]));
  if (store.state.cmp) { cache.want(new Map([...wanted(store.state, models, cache), ...side.wanted()])); side.render(new Set()); }  // B reads the written text, now known
});

// ---- the rest of the page ---------------------------------------------------------------------------

function wirePage() {
  $("unlock").addEventListener("click", focus.release);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") { focus.release(); side.release(); } });
  let slow = 0;
  busy.addEventListener("change", (e) => {
    clearTimeout(slow);
    if (e.detail) slow = setTimeout(() => ($("busy").hidden = false), 120);
    else $("busy").hidden = true;
  });
  const redraw = () => { views.render(new Set(), { resized: true }); side.render(new Set(), { resized: true }); };  // both sides, for a new box
  let resize = 0;
  window.addEventListener("resize", () => { clearTimeout(resize); resize = setTimeout(redraw, 120); });
  window.addEventListener("attnscope:print", redraw);  // now, not debounced: at the paper's width
  let urlTimer = 0;
  const explainLink = () => ($("explain-link").href = `/explain?${store.query()}`);
  store.addEventListener("change", () => {
    clearTimeout(urlTimer);
    urlTimer = setTimeout(() => { history.replaceState(null, "", store.toURL()); explainLink(); }, 150);
  });
  explainLink();
  wireExports({ store, models, views, cache, showError });
  // presenting: Page Down / Page Up walk through what the model wrote, a token at a time, or (nothing
  // written) through the heads, layer after layer
  const walk = (d) => {
    const s = store.state;
    if (s.then.length) {
      const k = Math.min(s.then.length, Math.max(0, shownThen(s).length + d));
      return store.set({ upto: k >= s.then.length ? -1 : k, token: -1, locked: false });
    }
    const m = models[s.model], i = s.layer * m.n_heads + s.head + d;
    const k = Math.min(m.n_layers * m.n_heads - 1, Math.max(0, i));
    store.set({ layer: Math.floor(k / m.n_heads), head: k % m.n_heads, heads: [k % m.n_heads] });
  };
  registerSteps({ next: () => walk(1), prev: () => walk(-1), label: () => (store.get("then").length
    ? `written: step ${shownThen(store.state).length} of ${store.get("then").length}` : `layer ${store.get("layer")} · head ${store.get("head")}`) });
}

// Resolves when the page shows the current state: no keystroke waiting, nothing on its way for it,
// every view drawn from its data (or the state's error shown).
window.attnscope.settled = () => new Promise((resolve) => {
  const sentence = controls[0];
  const check = () => {
    const waiting = [...wanted(store.state, models, cache).keys()].some((k) => cache.get(k)?.status !== "ready" && cache.get(k)?.status !== "error");
    if (!sentence.pending() && !waiting && !views.drawing() && (views.allFresh() || currentError()) && side.settled()) resolve(true);
    else setTimeout(check, 25);
  };
  check();
});
window.attnscope.geometry = (view) => views.geometry(view);  // what a view drew (for exports and tests)

function start() {
  wirePage();
  for (const c of controls) c.show(store.state);
  const d = initial.data;
  const s = store.state;
  if (d) {  // the server's first view, built for exactly this state
    if (initial.state.written) writing.learn(s.model, s.text, s.then, initial.state.written.whole, initial.state.written.tokens);
    cache.put("attention", s, d.attention);
    cache.put("head", s, d.head);
    cache.put("grid", s, d.grid);
    if (d.predictions && Number(initial.state.temperature) === s.temperature) cache.put("predictions", s, d.predictions);
  }
  update(new Set());
  if (initial.error && !d) showError(new ApiError(422, initial.error));
  document.body.dataset.ready = "1";
  // plotly.js (preloaded) runs once this first paint is on screen: a frame, then a task after it
  requestAnimationFrame(() => setTimeout(loadPlotly));
}

start();
