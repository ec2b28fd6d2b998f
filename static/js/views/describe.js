// A text alternative for the selected head, for screen readers and for anyone skimming.

import { quoted } from "../tokens.js";

// measure "moved": pattern holds what the head carried from each key (norms), not where it looks.
export function describe({ tokens, pattern, layer, head, token, dir, causal, measure = "weight" }) {
  const moved = measure === "moved";
  const n = tokens.length;
  const P = pattern[head];
  if (!P) return "";
  const top = (pairs) => pairs.sort((a, b) => b.w - a.w).slice(0, 3).map((p) => `${quoted(tokens[p.j])} (${p.w.toFixed(2)})`).join(", ");
  if (token >= 0) {
    if (dir === "out") {
      const pairs = P[token].map((w, j) => ({ j, w })).filter((p) => !(causal && p.j > token));
      return `Layer ${layer}, head ${head}: ${quoted(tokens[token])} ${moved ? "takes most from" : "attends most to"} ${top(pairs)}.`;
    }
    const pairs = P.map((row, j) => ({ j, w: row[token] })).filter((p) => !(causal && p.j < token));
    return `Layer ${layer}, head ${head}: ${quoted(tokens[token])} ${moved ? "gives most to" : "is read most by"} ${top(pairs)}.`;
  }
  const best = [];
  for (let i = 0; i < n; i++) {
    let j = 0;
    for (let k = 1; k < n; k++) if (P[i][k] > P[i][j]) j = k;
    best.push({ i, j, w: P[i][j] });
  }
  best.sort((a, b) => b.w - a.w);
  const strongest = best.filter((b) => b.i !== b.j).slice(0, 3)
    .map((b) => `${quoted(tokens[b.i])} → ${quoted(tokens[b.j])} (${b.w.toFixed(2)})`).join(", ");
  return `Layer ${layer}, head ${head}: ${moved ? "most moved (query → the key it takes from, ‖·‖₂)" : "strongest links (query → key)"}: ${strongest || "each token to itself"}.`;
}
