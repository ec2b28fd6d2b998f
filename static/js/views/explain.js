// One attention head, step by step, with the model's numbers (the /api/head detail payload): the
// steps of the lesson's math and, for one step, the elements that show it. Used by /explain and by
// its embed (/embed/explain).

import { plotlyScale } from "../colors.js";
import { css, el, sharpCanvas } from "../dom.js";
import { baseLayout, config, plotlyReady } from "../plotly.js";
import { label, legend, plotlySafe, quoted } from "../tokens.js";

const fmt = (x) => (x === null || x === undefined ? "−∞" : Math.abs(x) >= 1000 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : x.toFixed(4));
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
const norm = (a) => Math.sqrt(dot(a, a));

// ---- steps -------------------------------------------------------------------------------------------

export function explainSteps(m) {
  const llama = m.architecture === "llama" || m.architecture === "gpt_neox"; // rotary positions (Pythia's on part of each head)
  return [
    { id: "input", title: "The input e: one vector per token" },
    { id: "qkv", title: "Queries, keys, values: Q = W_q e, K = W_k e, V = W_v e" },
    ...(llama ? [{ id: "rope", title: "Rotary positions: q and k turned by their position" }] : []),
    { id: "dot", title: "Dot products: how well each key matches the query, q · k" },
    { id: "scale", title: `Scaling: divide by √d_head = √${m.d_head}` },
    ...(m.causal ? [{ id: "mask", title: "The causal mask: no looking ahead" }] : []),
    { id: "softmax", title: "Softmax: scores become weights that sum to 1" },
    { id: "sum", title: "The weighted sum of values: z = Σ w_j v_j" },
    { id: "out", title: "Back into the stream: the head's share of the update" },
  ];
}

// ---- drawing helpers -------------------------------------------------------------------------------

let tip = null;  // one hover tip for every strip, made on first use

// A matrix of numbers as colour cells (diverging purple-orange, colour-blind safe); hover shows a value.
// perRow: each row on its own scale (named in its label), for rows of very different sizes: its 98th
// percentile |value|, so that a few huge dimensions (the residual stream has some) do not wash the
// rest out; larger values saturate.
function strips(rows, rowLabels, { highlight = -1, weights = null, height = 14, caption = "", perRow = false } = {}) {
  const n = rows.length, dcols = rows[0]?.length ?? 0;
  const wrap = el("figure", { className: "strips" });
  const canvas = el("canvas");
  const width = Math.min(900, Math.max(dcols * 8, 320));
  const cw = width / dcols, left = perRow ? 170 : 110;
  const ctx = sharpCanvas(canvas, left + width, n * height);
  const peak = (r) => Math.max(1e-9, ...r.map(Math.abs));
  const p98 = (r) => { const a = r.map(Math.abs).sort((x, y) => x - y); return Math.max(1e-9, a[Math.floor(0.98 * (a.length - 1))]); };
  const all = peak(rows.flat()), maxOf = rows.map((r) => (perRow ? p98(r) : all));
  const dark = isDark();
  const mid = dark ? [42, 44, 52] : [247, 247, 247], neg = [84, 39, 136], pos = [179, 88, 6];
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  rows.forEach((row, i) => {
    ctx.fillStyle = css(i === highlight ? "--accent" : "--fg");
    ctx.textAlign = "right";
    const name = `${rowLabels[i]}${weights ? ` ×${weights[i].toFixed(2)}` : ""}`.slice(0, 22);
    ctx.fillText(perRow ? `${name} (±${maxOf[i].toPrecision(3)})` : name, left - 6, i * height + height / 2);
    row.forEach((v, j) => {
      const t = Math.min(1, Math.abs(v) / maxOf[i]), c = v < 0 ? neg : pos;
      ctx.fillStyle = `rgb(${mid.map((m, k) => Math.round(m + (c[k] - m) * t)).join(",")})`;
      ctx.fillRect(left + j * cw, i * height + 1, Math.ceil(cw), height - 2);
    });
    if (i === highlight) {
      ctx.strokeStyle = css("--accent");
      ctx.lineWidth = 2;
      ctx.strokeRect(left - 1, i * height, width + 2, height);
    }
  });
  canvas.addEventListener("mousemove", (e) => {
    if (!tip) document.body.append(tip = el("div", { className: "tip", hidden: true }));
    const r = canvas.getBoundingClientRect();
    const j = Math.floor((e.clientX - r.left - left) / cw), i = Math.floor((e.clientY - r.top) / height);
    if (i < 0 || i >= n || j < 0 || j >= dcols) { tip.hidden = true; return; }
    tip.hidden = false;
    tip.textContent = `${rowLabels[i]} · dim ${j}: ${rows[i][j].toFixed(5)}`;
    tip.style.transform = `translate(${e.clientX + 12}px, ${e.clientY + 12}px)`;
  });
  canvas.addEventListener("mouseleave", () => tip && (tip.hidden = true));
  canvas.dataset.rows = String(n);
  canvas.dataset.cols = String(dcols);
  wrap.append(canvas);
  if (caption) wrap.append(el("figcaption", { textContent: `${caption} Colour: purple negative, orange positive, ${perRow ? "each row on its own scale" : `scaled to the largest |value| ${fmt(all)}`}.` }));
  return wrap;
}

// A table of numbers per key token, with bars; values: {key: [...]}; columns: [{key, head, bar?}]
function table(columns, rows) {
  const t = el("table", { className: "nums" });
  t.append(el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { textContent: c.head })))));
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr", { className: r.className || "" });
    for (const c of columns) {
      const v = r[c.key];
      const td = el("td");
      if (c.bar && typeof v === "number") {
        const bar = el("span", { className: "bar" });
        bar.style.setProperty("--p", String(Math.max(0, Math.min(1, v))));
        td.append(bar, el("span", { textContent: fmt(v) }));
      } else td.textContent = typeof v === "number" ? fmt(v) : v ?? "";
      tr.append(td);
    }
    body.append(tr);
  }
  t.append(body);
  return t;
}

function heat(title, z, names) {
  const div = el("div", { className: "explain-heat" });
  plotlyReady().then(() => window.Plotly.react(div, [{
    type: "heatmap", z, x: names.map((_, i) => i), y: names.map((_, i) => i), colorscale: plotlyScale("viridis"), hoverongaps: false,
    hovertemplate: "query %{y} → key %{x}<br>%{z:.4f}<extra></extra>",
  }], baseLayout(title, {
    height: 360, margin: { l: 80, r: 10, t: 30, b: 80 }, plot_bgcolor: "rgba(128,128,140,0.18)",
    xaxis: { tickmode: "array", tickvals: names.map((_, i) => i), ticktext: names, tickangle: -45 },
    yaxis: { tickmode: "array", tickvals: names.map((_, i) => i), ticktext: names, autorange: "reversed" },
  }), config()));
  return div;
}

// Dark when the panel colour is dark: follows the page's theme (the reader's system, or an embed's ?theme=).
function isDark() {
  const [r, g, b] = (getComputedStyle(document.body).backgroundColor.match(/\d+/g) || [255, 255, 255]).map(Number);
  return 0.299 * r + 0.587 * g + 0.114 * b < 128;
}

// ---- one step -------------------------------------------------------------------------------------

// explainStep(d, m, state): d = /api/head detail payload, m = the model (from /api/models),
// state = {layer, head, token, step, all}. Returns the steps, the clamped step index and query token,
// and the elements that show the step.
export function explainStep(d, m, state) {
  const list = explainSteps(m);
  const index = Math.max(0, Math.min(list.length - 1, state.step));
  const step = list[index];
  const toks = d.tokens, n = toks.length, i = Math.min(state.token, n - 1);
  const names = toks.map((t) => label(t));
  const safe = names.map(plotlySafe);
  const qTok = quoted(toks[i]);
  const keys = [...Array(n).keys()].filter((j) => state.all || !m.causal || j <= i);
  const parts = [];
  const p = (text) => parts.push(el("p", { textContent: text }));
  const formula = (text) => parts.push(el("p", { className: "formula", textContent: text }));
  const rawDot = (q, j) => dot(d.q[q], d.k[j]);
  switch (step.id) {
    case "input":
      formula(`e_j = ${m.architecture === "bert" ? "the residual stream entering layer " + state.layer : (m.architecture === "llama" ? "RMSNorm" : "LayerNorm") + "(residual stream entering layer " + state.layer + ")"}: ${m.d_model} numbers per token`);
      p(`Every token arrives at layer ${state.layer} as a vector of ${m.d_model} numbers. At layer 0 it is the context-free embedding of the token; deeper, earlier layers have already mixed context in. The query token ${qTok} (row ${i}) has ‖e‖ = ${fmt(norm(d.e[i]))}.`);
      parts.push(strips(d.e, names, { highlight: i, caption: `e for each of the ${n} tokens (rows) across ${m.d_model} dimensions.` }));
      break;
    case "qkv": {
      const q = d.q_pre_rope ?? d.q, k = d.k_pre_rope ?? d.k;
      formula(`q_j = W_q e_j,  k_j = W_k e_j,  v_j = W_v e_j:  ${m.d_model} numbers → ${m.d_head} numbers each (head ${state.head}${m.n_kv_heads !== m.n_heads ? `, reading key/value head ${d.kv_head} shared by ${m.n_heads / m.n_kv_heads} query heads` : ""})`);
      p(`Three learned matrices turn each token's vector into a query (what it is looking for), a key (what it offers to others) and a value (what it passes on if chosen). For ${qTok}: ‖q‖ = ${fmt(norm(q[i]))}, ‖k‖ = ${fmt(norm(k[i]))}, ‖v‖ = ${fmt(norm(d.v[i]))}.`);
      parts.push(el("h4", { textContent: "queries q" }), strips(q, names, { highlight: i }));
      parts.push(el("h4", { textContent: "keys k" }), strips(k, names, { highlight: -1 }));
      parts.push(el("h4", { textContent: "values v" }), strips(d.v, names, { highlight: -1, caption: "Rows are tokens, columns the head's dimensions." }));
      break;
    }
    case "rope": {
      const R = m.d_rotary || m.d_head, half = R / 2; // Pythia turns only the first R of d_head dimensions
      formula(`rotate each pair (x_d, x_{d+${half}})${R < m.d_head ? `, d < ${half},` : ""} by the angle position × θ_d, θ_d = base^(−2d/${R})${R < m.d_head ? `; dimensions ${R} to ${m.d_head - 1} are not turned` : ""}`);
      p(`Rotary models (the Llama family, Pythia) mark position by rotating q and k (rotary embeddings): after the rotation, q·k depends on how far apart the two tokens are, not where they are. Token 0 is not rotated. For ${qTok} at position ${i}: before, q·k_0 = ${fmt(dot(d.q_pre_rope[i], d.k_pre_rope[0]))}; after, ${fmt(rawDot(i, 0))}.`);
      parts.push(el("h4", { textContent: "q before → after the rotation" }), strips([d.q_pre_rope[i], d.q[i]], ["before", "after"]));
      parts.push(el("h4", { textContent: "k after the rotation (these are dotted with q)" }), strips(d.k, names, { caption: "The keys every query now compares against." }));
      break;
    }
    case "dot":
      formula(`q_${i} · k_j = Σ_d q_${i},d k_j,d   (${m.d_head} products added up)`);
      p(`The query of ${qTok} is compared with every key it may see: a large dot product means "this key is what I am looking for".`);
      if (state.all) parts.push(heat("q · k (every query, every key)", d.scores.map((row) => row.map((s) => (s === null ? null : s / d.scale))), safe));
      else parts.push(table([{ key: "tok", head: "key token" }, { key: "dot", head: `q_${i} · k_j` }],
        keys.map((j) => ({ tok: `${j}: ${names[j]}`, dot: rawDot(i, j) }))));
      break;
    case "scale":
      formula(`s_j = (q · k_j) / √${m.d_head} = (q · k_j) × ${d.scale.toFixed(4)}`);
      p("Dividing by √d_head keeps the scores in a range where the softmax is not saturated, whatever the head size.");
      if (state.all) parts.push(heat("scaled scores (masked cells empty)", d.scores, safe));
      else parts.push(table([{ key: "tok", head: "key token" }, { key: "dot", head: "q · k_j" }, { key: "s", head: "s_j" }],
        keys.map((j) => ({ tok: `${j}: ${names[j]}`, dot: rawDot(i, j), s: d.scores[i][j] }))));
      break;
    case "mask":
      formula("s_j = −∞ for every key j after the query: e^(−∞) = 0, so they get no weight");
      p(`A causal language model predicts the next token, so a token may not look at the ones after it. ${qTok} (position ${i}) sees keys 0–${i}.`);
      if (state.all) parts.push(heat("scores after the mask", d.scores, safe));
      else parts.push(table([{ key: "tok", head: "key token" }, { key: "s", head: "s_j after the mask" }],
        [...Array(n).keys()].map((j) => ({ tok: `${j}: ${names[j]}`, s: d.scores[i][j], className: j > i ? "masked" : "" }))));
      break;
    case "softmax": {
      const row = d.scores[i], mx = Math.max(...row.filter((s) => s !== null));
      const ex = row.map((s) => (s === null ? 0 : Math.exp(s - mx))), sum = ex.reduce((a, b) => a + b, 0);
      formula(`w_j = e^(s_j − max) / Σ_k e^(s_k − max)   (max = ${fmt(mx)}, Σ = ${fmt(sum)})`);
      p(`The weights are positive and add up to 1: they say how much of each token's value ${qTok} takes. The strongest: ${quoted(toks[d.pattern[i].indexOf(Math.max(...d.pattern[i]))])} (${Math.max(...d.pattern[i]).toFixed(3)}).`);
      if (state.all) parts.push(heat("weights: the attention pattern", d.pattern.map((r, q) => r.map((w, j) => (m.causal && j > q ? null : w))), safe));
      else parts.push(table([{ key: "tok", head: "key token" }, { key: "s", head: "s_j" }, { key: "e", head: "e^(s_j − max)" }, { key: "w", head: "weight w_j", bar: true }],
        keys.map((j) => ({ tok: `${j}: ${names[j]}`, s: d.scores[i][j], e: ex[j], w: d.pattern[i][j] }))));
      break;
    }
    case "sum": {
      formula(`z_${i} = Σ_j w_j v_j   (${m.d_head} numbers: the head's output for ${qTok})`);
      p("Each value is scaled by its weight and the results are added: tokens with more weight contribute more of what they carry.");
      const ks = keys.filter((j) => d.pattern[i][j] > 0);
      parts.push(strips(ks.map((j) => d.v[j].map((x) => x * d.pattern[i][j])), ks.map((j) => names[j]), { weights: ks.map((j) => d.pattern[i][j]), caption: "w_j v_j for each key (rows)." }));
      parts.push(el("h4", { textContent: "their sum z (the model's own hook_z)" }), strips([d.z[i]], ["z"]));
      if (d.v_out_norm) {  // what each key really moves: weight × the size of its value as the head writes it
        const moved = ks.map((j) => d.pattern[i][j] * d.v_out_norm[j]);
        const top = Math.max(1e-12, ...moved);
        p("A weight says where the head looks, not how much it moves: a key whose value is small moves little however much weight it takes. "
          + "What key j moves into the stream is w_j · ‖v_j W_O‖ (Kobayashi et al. 2020).");
        parts.push(table([{ key: "tok", head: "key token" }, { key: "w", head: "weight w_j", bar: true }, { key: "n", head: "‖v_j W_O‖" },
          { key: "m", head: "moved w_j‖v_j W_O‖" }, { key: "share", head: "share of what moved", bar: true }],
        ks.map((j, x) => ({ tok: names[j], w: d.pattern[i][j], n: d.v_out_norm[j], m: moved[x], share: moved[x] / moved.reduce((a, b) => a + b, 0),
          className: moved[x] === top ? "best" : "" }))));
      }
      break;
    }
    case "out": {
      const o = d.out[i], a = d.attn_out[i], r = d.resid_pre[i];
      const after = r.map((x, k) => x + a[k]);
      formula(`Δ_${i} = z_${i} W_O[head ${state.head}]: back to ${m.d_model} numbers; the layer adds the sum over its ${m.n_heads} heads (plus a bias) to the stream`);
      p(`This head changes the vector of ${qTok} by ‖Δ‖ = ${fmt(norm(o))}; all ${m.n_heads} heads together by ${fmt(norm(a))}, on a stream of norm ${fmt(norm(r))}. Direction kept: cos(before, after) = ${(dot(r, after) / norm(r) / norm(after)).toFixed(4)}. This is how context flows into a word's meaning, a little at each layer.`);
      parts.push(strips([r, o, a, after], ["stream before", "this head", "all heads", "stream after"], { perRow: true, height: 24,
        caption: `For ${qTok}. Each row has its own scale (in brackets: its 98th percentile |value|; larger values saturate): one head's change is far smaller than the stream, and would be invisible on the stream's scale.` }));
      break;
    }
  }
  const marks = legend(toks);  // "· = a space before the word", when the labels show one
  if (marks) parts.push(el("p", { className: "token-legend", textContent: marks }));
  return { list, index, step, token: i, parts };
}
