// Letting the model write: one likeliest token, or N tokens streamed from /api/generate as it chooses
// them (Stop closes the stream, which stops the server's work), and the timeline of what it wrote.
//
// What was written is state like any other: `then`, the ids after the text, which every view sends as
// they are (typed text is tokenized; written text may read back as other tokens, so it never is), and
// `upto`, how many of them the views show: the timeline's step. While tokens stream in, the views wait
// (state.writing: nothing is fetched) and say so; they draw the text once the writing stops.
//
// The record keeps, for the ids written after a text, each token's text and span in the whole text and,
// when this page wrote it, the probability it was drawn with and the alternatives.

import { ApiError } from "../api.js";
import { $, el } from "../dom.js";
import { described, label } from "../tokens.js";
import { percent } from "../views/predictions.js";
import { shownThen } from "../store.js";

const sameIds = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// One generation as ndjson lines: onLine(obj) for each; resolves at the end of the stream.
async function streamLines(body, signal, onLine) {
  const r = await fetch("/api/generate", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  const reader = r.body.getReader(), decoder = new TextDecoder();
  let rest = "";
  for (;;) {
    const { value, done } = await reader.read();
    rest += decoder.decode(value ?? new Uint8Array(), { stream: !done });
    let nl;
    while ((nl = rest.indexOf("\n")) >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      if (line.trim()) onLine(JSON.parse(line));
    }
    if (done) return;
  }
}

export function writeControls({ store, models, onError }) {
  // record: {model, text, then: ids, whole: the text followed by what they wrote, tokens: [{id, text, start, end, prob?, top?}]}
  let record = null, ctrl = null;

  const recordFor = (s) => (record && record.model === s.model && record.text === s.text && sameIds(record.then.slice(0, s.then.length), s.then)
    && record.then.length >= s.then.length ? record : null);

  // keep what a new record knows of the same tokens (the probabilities this page saw them written with)
  function remember(next) {
    const old = record && record.model === next.model && record.text === next.text ? record : null;
    let same = old ? 0 : -1;  // how far the two agree from the start: only those tokens are the same tokens
    while (old && same < next.tokens.length && old.tokens[same]?.id === next.tokens[same].id) same++;
    if (old) next.tokens = next.tokens.map((t, i) => (i < same && old.tokens[i].prob !== undefined && t.prob === undefined
      ? { ...t, prob: old.tokens[i].prob, top: old.tokens[i].top, settings: old.tokens[i].settings } : t));
    record = next;
    store.dispatchEvent(new CustomEvent("record"));
  }

  // the text the sentence box shows for s: the text, then what the shown ids wrote (null: not known yet)
  function shownText(s) {
    const shown = shownThen(s);
    if (!shown.length) return s.text;
    const r = recordFor(s);
    if (!r || r.tokens.length < shown.length) return null;
    if (shown.length === r.then.length) return r.whole;
    const end = r.tokens[shown.length - 1].end;  // a token streamed in has no span until the summary (or the views' data) says
    return end === undefined ? null : r.whole.slice(0, Math.max(s.text.length, end));
  }

  const settings = (s) => ({ temperature: s.writeT, ...(s.writeT > 0 && s.topK !== "" ? { top_k: s.topK } : {}),
    ...(s.writeT > 0 && s.topP !== "" && s.topP < 1 ? { top_p: s.topP } : {}), ...(s.seed !== "" ? { seed: s.seed } : {}) });

  function status(text) { $("write-status").textContent = text; }

  // write n tokens after what the views show (greedy: the likeliest each time, whatever the settings)
  async function write(n, greedy = false) {
    const s = store.state;
    if (ctrl || !models[s.model].causal || s.text.trim() === "") return;
    // a keystroke still on its way into the state: write after it, not before
    if (shownText(s) !== null && $("text").value !== shownText(s)) return status("the sentence is still being typed: write again in a moment");
    const given = shownThen(s), chat = s.chat && !given.length && models[s.model].chat;  // a chat frame goes around a new prompt only
    const body = { text: s.text, model: s.model, max_new_tokens: n, ...(given.length ? { then: given } : {}), ...(chat ? { chat: true } : {}),
      ...(greedy ? { temperature: 0 } : settings(s)), stream: true, n_top: 5 };
    const base = { model: s.model, text: s.text };
    ctrl = new AbortController();
    const started = performance.now();
    let got = 0, prompt = s.text, lastWritten = "";
    const tokens = (recordFor(s)?.tokens ?? given.map((id) => ({ id, text: "…" }))).slice(0, given.length);
    showButtons(true);
    status(n === 1 ? "writing one token…" : `writing… 0 of ${n} tokens`);
    store.set({ writing: true, locked: false, token: -1, whyAt: -1, whyTarget: -1, whyVs: -1 });
    try {
      await streamLines(body, ctrl.signal, (line) => {
        if (line.type === "start") {
          prompt = line.prompt;
          if (prompt !== s.text) store.set({ text: prompt, then: [], upto: -1 });  // the chat frame is part of the text
        } else if (line.type === "token") {
          got++;
          lastWritten = line.written;
          const { type, written, ...token } = line;
          tokens.push({ ...token, settings: body });
          const then = [...given, ...tokens.slice(given.length).map((t) => t.id)];
          // spans arrive with the summary: until then the box shows the text written so far
          if (store.get("model") !== body.model || store.get("text") !== prompt) throw new Error("the text or model changed while the model wrote");
          remember({ ...base, text: prompt, then, whole: prompt + lastWritten, tokens: tokens.slice() });
          store.set({ then, upto: -1 });
          const secs = (performance.now() - started) / 1000;
          if (n > 1) status(`writing… ${got} of ${n} tokens (${(got / secs).toFixed(1)} per second)`);
        } else if (line.type === "done") {
          if (store.get("model") !== body.model || store.get("text") !== prompt) throw new Error("the text or model changed while the model wrote");
          const givenTokens = line.prompt_tokens.slice(line.prompt_tokens.length - given.length);  // with their spans
          remember({ model: line.model, text: line.prompt, then: line.then, whole: line.prompt + line.text,
            tokens: [...givenTokens, ...line.tokens.map((t) => ({ ...t, settings: body }))] });
          store.set({ then: line.then, upto: -1 });
          const why = { eos: "it wrote its end-of-text token", length: `${got} token${got === 1 ? "" : "s"}, as asked` }[line.stop_reason] ?? line.stop_reason;
          const seed = line.settings.seed !== null && line.settings.temperature > 0 ? ` · seed ${line.settings.seed}` : "";
          status(`wrote ${got} token${got === 1 ? "" : "s"}: stopped because ${why}${seed}`);
        } else if (line.type === "error") {
          throw new Error(line.detail);
        }
      });
    } catch (e) {
      ctrl.abort();  // whatever stopped us here, the server stops writing too
      if (e.name === "AbortError") status(`stopped after ${got} token${got === 1 ? "" : "s"}`);
      else { status(""); onError(e); }
    } finally {
      ctrl = null;
      showButtons(false);
      store.set({ writing: false });
    }
  }

  function showButtons(writing) {
    $("write-one").disabled = writing;
    $("write-n").disabled = writing;
    $("write-stop").hidden = !writing;
    $("text").readOnly = writing;
    $("model").disabled = writing;  // what is written is in this model's vocabulary
  }

  $("write-one").addEventListener("click", () => write(1, true));
  $("write-n").addEventListener("click", () => write(store.get("writeN")));
  $("write-stop").addEventListener("click", () => ctrl?.abort());
  const num = (id, key, parse) => $(id).addEventListener("change", (e) => store.set({ [key]: parse(e.target.value) }));
  const opt = (lo, hi, int) => (v) => (v === "" || !Number.isFinite(Number(v)) ? "" : Math.min(hi, Math.max(lo, int ? Math.round(Number(v)) : Number(v))));
  num("write-count", "writeN", (v) => opt(1, 128, true)(v) || 20);
  num("write-t", "writeT", (v) => opt(0, 100, false)(v) || 0);
  num("write-topk", "topK", opt(1, 1e6, true));
  num("write-topp", "topP", opt(0.01, 1, false));
  num("write-seed", "seed", opt(0, Number.MAX_SAFE_INTEGER, true));
  $("write-chat").addEventListener("change", (e) => store.set({ chat: e.target.checked }));
  $("timeline-step").addEventListener("input", (e) => goTo(Number(e.target.value)));

  // the timeline: step k shows the text with the first k written tokens; the newest in focus
  function goTo(k) {
    const s = store.state;
    const upto = k >= s.then.length ? -1 : Math.max(0, k);
    store.set({ upto, token: -1, locked: false, whyAt: -1, whyTarget: -1, whyVs: -1 });
  }

  function showTimeline(s) {
    const box = $("timeline");
    box.hidden = !s.then.length;
    if (!s.then.length) return;
    const r = recordFor(s), k = shownThen(s).length;
    const slider = $("timeline-step");
    slider.max = String(s.then.length);
    slider.value = String(k);
    const newest = k > 0 ? r?.tokens[k - 1] : null;
    $("timeline-out").textContent = k === 0 ? `step 0 of ${s.then.length}: the text before anything was written`
      : `step ${k} of ${s.then.length}: ${newest ? label(newest) : "…"}${newest?.prob !== undefined ? ` (written with p = ${percent(newest.prob)})` : ""}`;
    $("timeline-tokens").replaceChildren(...s.then.map((id, i) => {
      const t = r?.tokens[i];
      const b = el("button", { type: "button", className: "tl-chip", textContent: t ? label(t) : "…",
        title: `step ${i + 1}: show the text up to here${t?.prob !== undefined ? ` (written with p = ${percent(t.prob)})` : ""}`,
        attrs: { "aria-current": String(i + 1 === k), "aria-label": `step ${i + 1}: ${t ? described(t) : `token ${id}`}` } });
      if (i + 1 > k) b.classList.add("later");
      b.addEventListener("click", () => goTo(i + 1));
      return b;
    }));
  }

  return {
    shownText,
    recordFor,
    // a record from elsewhere (the page's inline data, an attention answer for every written id)
    learn(model, text, then, whole, tokens) { remember({ model, text, then, whole, tokens }); },
    // spans of the first tokens, from an answer for a step of the timeline (tokens: those written up to it)
    learnSpans(s, tokens) {
      const r = recordFor(s);
      if (!r || tokens.every((t, i) => r.tokens[i]?.end !== undefined)) return;
      remember({ ...r, tokens: r.tokens.map((t, i) => (i < tokens.length && tokens[i].id === t.id ? { ...t, ...tokens[i] } : t)) });
    },
    writing: () => ctrl !== null,
    show(s) {
      const causal = models[s.model].causal;
      $("write").hidden = !causal;
      $("write-count").value = String(s.writeN);
      $("write-t").value = String(s.writeT);
      $("write-topk").value = String(s.topK);
      $("write-topp").value = String(s.topP);
      $("write-seed").value = String(s.seed);
      $("write-chat").checked = s.chat;
      $("write-chat").disabled = shownThen(s).length > 0 || !models[s.model].chat;
      for (const id of ["write-topk", "write-topp"]) $(id).disabled = !(s.writeT > 0);
      showTimeline(causal ? s : { ...s, then: [] });
    },
  };
}
