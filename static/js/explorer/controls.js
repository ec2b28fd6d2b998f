// The explorer's controls, one group a function: each wires its inputs to the store and returns
// show(state), which puts the state back into them (after a permalink, a model switch, a grid click).
// The controls never fetch or draw views: views.js does, from the state.

import { headColor } from "../colors.js";
import { $, el } from "../dom.js";

const TYPING_MS = 220;  // the text goes into the state this long after the last keystroke

// The sentence and the model. pending() is true while a keystroke waits for its debounce.
// remap() keeps a locked token on its characters across a model switch. The box shows shownText(s):
// the text, then what the model wrote after it up to the timeline's step; an edit makes it all typed text.
export function sentenceControls({ store, models, remap, shownText }) {
  const text = $("text"), model = $("model");
  model.replaceChildren(...Object.values(models).map((m) => new Option(`${m.name}${m.default ? " (default)" : ""}`, m.id)));
  const shown = () => shownText(store.state) ?? text.value;
  text.value = shown();
  let typing = 0;
  text.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { typing = 0; store.set({ text: text.value, then: [], upto: -1 }); }, TYPING_MS);
  });
  model.addEventListener("change", () => {
    const m = models[model.value];
    const layer = Math.min(store.get("layer"), m.n_layers - 1), head = Math.min(store.get("head"), m.n_heads - 1);
    remap();  // the focused token, by its characters, in the new model's tokens
    // ids are one vocabulary's: another model reads what was written as text
    const then = store.get("then").length ? { text: shown(), then: [], upto: -1 } : {};
    store.set({ model: m.id, layer, head, heads: [head], headsOff: [], ...then });
  });
  return {
    pending: () => typing !== 0 || (shownText(store.state) !== null && text.value !== shownText(store.state)),
    show(s) {
      const want = shownText(s);
      if (!typing && want !== null && text.value !== want) {  // the text came from elsewhere (a link, a script, the model)
        text.value = want;
        text.rows = Math.min(8, Math.max(2, want.split("\n").length, Math.ceil(want.length / 90)));  // written text grows the box
      }
      model.value = s.model;
      const m = models[s.model];
      $("facts").textContent = `${m.name} · ${m.architecture} ${m.causal ? "(causal: each token sees only earlier ones)" : "(encoder: every token sees every token)"}`
        + ` · ${m.n_layers} layers × ${m.n_heads} heads${m.n_kv_heads !== m.n_heads ? ` (${m.n_kv_heads} key/value heads)` : ""}`
        + ` · d_model ${m.d_model} · d_head ${m.d_head} · up to ${m.max_tokens} tokens`;
    },
  };
}

// Which head: the layer slider, the head picker, the heads drawn in the arrow views, the direction,
// and the measure (where it looks: the weights; what it moved: weight × the value's norm as written).
export function headControls({ store, models }) {
  const layer = $("layer"), head = $("head");
  layer.addEventListener("input", () => store.set({ layer: Number(layer.value) }));
  head.addEventListener("change", () => {
    const h = Number(head.value), was = store.get("head");
    store.set({ head: h, heads: [h, ...store.get("heads").filter((x) => x !== was && x !== h)] });
  });
  for (const r of document.querySelectorAll('input[name="dir"]')) r.addEventListener("change", () => store.set({ dir: r.value }));
  for (const r of document.querySelectorAll('input[name="measure"]')) r.addEventListener("change", () => store.set({ measure: r.value }));
  return {
    show(s) {
      const m = models[s.model];
      layer.max = String(m.n_layers - 1);
      layer.value = String(s.layer);
      $("layer-out").textContent = `${s.layer} / ${m.n_layers - 1}`;
      if (head.options.length !== m.n_heads) head.replaceChildren(...Array.from({ length: m.n_heads }, (_, h) => new Option(String(h), String(h))));
      head.value = String(s.head);
      document.querySelector(`input[name="dir"][value="${s.dir}"]`).checked = true;
      document.querySelector(`input[name="measure"][value="${s.measure}"]`).checked = true;
      $("heads").replaceChildren(...Array.from({ length: m.n_heads }, (_, h) => {
        const b = el("button", { type: "button", className: "head-chip", textContent: String(h), title: `draw head ${h} in the arrow views`,
          style: { "--c": headColor(h) }, attrs: { "aria-pressed": String(s.heads.includes(h)) } });
        b.addEventListener("click", () => {
          const heads = store.get("heads");
          const next = heads.includes(h) ? heads.filter((x) => x !== h) : [...heads, h];
          store.set({ heads: next.length ? next : [store.get("head")] });
        });
        return b;
      }));
    },
  };
}

// The temperature of the next-token probabilities (causal models only: an encoder predicts nothing).
export function temperatureControls({ store, models }) {
  const t = $("temperature");
  t.addEventListener("input", () => store.set({ temperature: Number(t.value) }));
  return {
    show(s) {
      $("temperature-row").hidden = !models[s.model].causal;
      t.value = String(s.temperature);
      $("temperature-out").textContent = Number(s.temperature).toFixed(2);
    },
  };
}

// Why this prediction: the token it is weighed against (none: the logit itself).
export function whyControls({ store }) {
  $("why-vs").addEventListener("change", (e) => store.set({ whyVs: Number(e.target.value) }));
  return { show() {} };  // the options depend on the predictions: the view fills them
}

// Switching heads off (causal models): the switched-off list, the mode, the touch toggle. A pick in
// the grid goes through pick(L, H, event): it selects the head, or switches it off with Shift, Alt
// or the switch-off mode.
export function ablationControls({ store, models }) {
  $("off-mode").addEventListener("change", (e) => store.set({ offMode: e.target.value }));
  $("off-clear").addEventListener("click", () => store.set({ headsOff: [] }));
  const toggle = (key) => {
    const off = store.get("headsOff");
    store.set({ headsOff: off.includes(key) ? off.filter((k) => k !== key) : [...off, key] });
  };
  return {
    pick(L, H, e) {
      const switching = models[store.get("model")].causal && (e.shiftKey || e.altKey || $("switch-mode").checked);
      if (switching) toggle(`${L}.${H}`);
      else store.set({ layer: L, head: H, heads: [H] });
    },
    show(s) {
      $("ablation").hidden = !models[s.model].causal;
      $("off-list").replaceChildren(...s.headsOff.map((k) => {
        const b = el("button", { type: "button", className: "off-chip", textContent: `L${k.replace(".", " H")} ✕`, title: "switch this head back on" });
        b.addEventListener("click", () => toggle(k));
        return b;
      }));
      $("off-none").hidden = s.headsOff.length > 0;
      $("off-mode").value = s.offMode;
    },
  };
}
