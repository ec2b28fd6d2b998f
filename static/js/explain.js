// "Explain this head": the lesson's math, step by step, with the model's real numbers for one
// layer, one head and one query token (or all of them). Numbers come from /api/head?detail.

import { registerSteps } from "./present.js";
import { ApiError, busy, post } from "./api.js";
import { $, el, initialData } from "./dom.js";
import { label } from "./tokens.js";
import { explainStep, explainSteps } from "./views/explain.js";

const initial = initialData();
const models = Object.fromEntries(initial.models.map((m) => [m.id, m]));
const state = { ...initial.state };
let d = initial.data;  // the /api/head detail payload
// ids the model wrote after the text (the explorer's `then`, up to its timeline's step `upto`): run as written
const shown = () => (!state.then?.length ? [] : state.upto >= 0 ? state.then.slice(0, state.upto) : state.then);
const written = () => (shown().length ? { then: shown().join(","), ...(state.upto >= 0 ? { upto: state.upto } : {}) } : {});
window.attnscope = { state, get data() { return d; } };

// ---- one step -------------------------------------------------------------------------------------

function render() {
  const { list, index, step, token: i, parts } = explainStep(d, models[state.model], state);
  state.step = index;
  $("step").replaceChildren(el("h2", { id: "step-title", textContent: `Step ${state.step + 1} of ${list.length}: ${step.title}` }), ...parts);
  $("steps").replaceChildren(...list.map((s, k) => {
    const b = el("button", { type: "button", textContent: `${k + 1}. ${s.title.split(":")[0]}` });
    if (k === state.step) b.setAttribute("aria-current", "step");
    b.addEventListener("click", () => go(k));
    return el("li", {}, b);
  }));
  $("prev").disabled = state.step === 0;
  $("next").disabled = state.step === list.length - 1;
  history.replaceState(null, "", `/explain?${new URLSearchParams({ text: state.text, ...written(), model: state.model, layer: state.layer, head: state.head, token: i, step: state.step + 1, all: state.all ? 1 : 0 })}`);
  document.body.dataset.step = step.id;
}

function go(k) {
  state.step = k;
  render();
  $("step-title")?.focus?.();
}

function controls() {
  const m = models[state.model];
  $("model").replaceChildren(...initial.models.map((x) => new Option(x.name, x.id)));
  $("model").value = state.model;
  $("layer").replaceChildren(...Array.from({ length: m.n_layers }, (_, L) => new Option(String(L), String(L))));
  $("layer").value = String(state.layer);
  $("head").replaceChildren(...Array.from({ length: m.n_heads }, (_, h) => new Option(String(h), String(h))));
  $("head").value = String(state.head);
  $("token").replaceChildren(...d.tokens.map((t, j) => new Option(`${j}: ${label(t)}`, String(j))));
  $("token").value = String(Math.min(state.token, d.tokens.length - 1));
  $("all").checked = state.all;
  $("text").value = shown().length ? state.shown_text : state.text;
}

async function reload() {
  try {
    const r = await post("head", "/api/head", { text: state.text, ...(shown().length ? { then: shown() } : {}), model: state.model,
      layer: state.layer, head: state.head, detail: true });
    if (!r) return;
    d = r;
    state.token = Math.min(state.token, d.tokens.length - 1);
    $("error").hidden = true;
    controls();
    render();
  } catch (e) {
    $("error").hidden = false;
    $("error").textContent = e instanceof ApiError ? e.message : String(e);
  }
}

function wire() {
  const last = () => explainSteps(models[state.model]).length - 1;
  registerSteps({ next: () => go(Math.min(last(), state.step + 1)), prev: () => go(Math.max(0, state.step - 1)),
    label: () => `step ${state.step + 1} of ${last() + 1}` });
  $("prev").addEventListener("click", () => go(state.step - 1));
  $("next").addEventListener("click", () => go(state.step + 1));
  document.addEventListener("keydown", (e) => {
    if (["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName)) return;
    if (e.key === "ArrowRight" || e.key === "PageDown") { e.preventDefault(); go(Math.min(last(), state.step + 1)); }
    if (e.key === "ArrowLeft" || e.key === "PageUp") { e.preventDefault(); go(Math.max(0, state.step - 1)); }
  });
  $("model").addEventListener("change", (e) => {
    const m = models[e.target.value];
    // ids are one vocabulary's: another model reads what was written as text
    const typed = shown().length ? { text: state.shown_text, then: [], upto: -1 } : {};
    Object.assign(state, { model: m.id, layer: Math.min(state.layer, m.n_layers - 1), head: Math.min(state.head, m.n_heads - 1), ...typed });
    reload();
  });
  $("layer").addEventListener("change", (e) => { state.layer = Number(e.target.value); reload(); });
  $("head").addEventListener("change", (e) => { state.head = Number(e.target.value); reload(); });
  $("token").addEventListener("change", (e) => { state.token = Number(e.target.value); render(); });
  $("all").addEventListener("change", (e) => { state.all = e.target.checked; render(); });
  let t = 0;
  // an edit makes it all typed text (what was written is then read by the tokenizer)
  $("text").addEventListener("input", (e) => { clearTimeout(t); t = setTimeout(() => { Object.assign(state, { text: e.target.value, then: [], upto: -1 }); reload(); }, 250); });
  busy.addEventListener("change", (e) => ($("busy").hidden = !e.detail));
}

wire();
if (d) {
  controls();
  render();
} else {
  $("text").value = state.text;
  $("error").hidden = false;
  $("error").textContent = initial.error?.detail ?? "no data";
}
document.body.dataset.ready = "1";
