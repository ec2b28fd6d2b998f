"""What moved, not only where it looked: four measures of what the heads (and the MLPs) wrote,
computed from one run's captures and the model's own weights.

- moved (Kobayashi et al. 2020, "Attention is not only a weight"): the size of what head h carries
  from key j to query i, ‖pattern[h, i, j] · (v[j, kv(h)] @ W_O[h])‖₂. A sink token can take most of
  the weight and still move almost nothing: its value, as the head writes it, is tiny.
- rollout (Abnar & Zuidema 2020): how much of each input token has reached each position by layer
  L, following the heads' mean attention and the residual connection: Ã = ½·mean_h A + ½·I,
  R_0 = Ã_0, R_L = Ã_L · R_{L-1}.
- direct logit attribution: the logit of one next token (or its difference with another) split into
  what each part wrote into the residual stream at that position (the embeddings, every head, every
  MLP, the constant biases), each passed through the final norm with its scale frozen at the run's
  value. The parts add up to the logit (up to float32 rounding).
- information flow routes (Ferrando & Voita 2024): each block's output split into its parts (the
  residual, what the heads wrote from each token, the MLP's output), each part's importance its
  L1 proximity to the output (as in ALTI, Ferrando et al. 2022) over all the parts'; the routes to
  one token are the edges above a threshold, followed down from the top layer.
"""

from dataclasses import dataclass

import numpy as np

from .analysis import CachedRun
from .engine.forward import layer_norm

F32 = np.float32


class NotCausal(ValueError):
    """The model has no next-token head (an encoder): there is no logit to attribute."""


# --- moved -------------------------------------------------------------------------------------------

def head_writes(cr: CachedRun, layer: int) -> np.ndarray:  # -> [head_index, key_pos, d_model]
    """v[j, kv(h)] @ W_O[h]: what head h writes into the stream for each key j, per unit of weight."""
    cfg, w = cr.model.cfg, cr.model.weights
    v = cr.run.cache[f"blocks.{layer}.attn.hook_v"]  # [pos, kv_head, d_head]
    kv = np.arange(cfg.n_heads) // (cfg.n_heads // cfg.n_kv_heads)  # grouped-query: head h reads kv head h // G
    W_O = np.asarray(w[f"blocks.{layer}.attn.W_O"]).reshape(cfg.n_heads, cfg.d_head, cfg.d_model)  # [head, d_head, d_model]
    return np.matmul(v.transpose(1, 0, 2)[kv], W_O)  # [head, pos, d_head] @ [head, d_head, d_model]


def value_norms(cr: CachedRun, layer: int) -> np.ndarray:  # -> [head_index, key_pos]
    """‖v[j, kv(h)] @ W_O[h]‖₂: what key j moves through head h per unit of weight."""
    return np.linalg.norm(head_writes(cr, layer), axis=-1)


def moved(cr: CachedRun, layer: int) -> np.ndarray:  # -> [head_index, query_pos, key_pos]
    """‖pattern[h, i, j] · (v[j, kv(h)] @ W_O[h])‖₂ = pattern[h, i, j] · ‖v[j, kv(h)] @ W_O[h]‖₂ (weights >= 0)."""
    return cr.run.cache[f"blocks.{layer}.attn.hook_pattern"] * value_norms(cr, layer)[:, None, :]


# --- rollout -----------------------------------------------------------------------------------------

def rollout(cr: CachedRun) -> np.ndarray:  # -> [layer, query_pos, key_pos]
    """R_L[i, j]: the share of input token j in position i after layer L (rows sum to 1). float64 inside."""
    c, n_layers = cr.run.cache, cr.model.cfg.n_layers
    out, R = [], None
    for L in range(n_layers):
        A = c[f"blocks.{L}.attn.hook_pattern"].astype(np.float64).mean(0)  # [query, key]
        A = 0.5 * A + 0.5 * np.eye(len(A))
        A /= A.sum(-1, keepdims=True)
        R = A if R is None else A @ R
        out.append(R)
    return np.stack(out).astype(F32)


# --- direct logit attribution --------------------------------------------------------------------------

def logit_attribution(cr: CachedRun, position: int, target: int, contrast: int | None = None) -> dict:
    """The logit of target after position (minus contrast's, if given), part by part.

    Returns {"value": the model's logit (difference), "scale": the final norm's frozen 1/rms (1/std for
    LayerNorm), "embed", "heads": [layer, head], "mlps": [layer], "bias"}; the parts sum to value.
    """
    model = cr.model
    cfg, w, c = model.cfg, model.weights, cr.run.cache
    if not cfg.causal:
        raise NotCausal(f"{model.id} is an encoder: it predicts no next token, so there is no logit to attribute")
    W_U = w["unembed.W_U"] if "unembed.W_U" in w else w["embed.W_E"].T  # [d_model, d_vocab]
    direction = np.asarray(W_U[:, target], dtype=np.float64)
    if contrast is not None:
        direction = direction - W_U[:, contrast]
    x = c[f"blocks.{cfg.n_layers - 1}.hook_resid_post"][position].astype(np.float64)  # [d_model]
    g = np.asarray(w["ln_final.w"], dtype=np.float64)
    if cfg.norm == "rms":
        scale = 1 / np.sqrt(np.mean(x * x) + cfg.eps)
        centre = lambda p: p  # noqa: E731
    else:  # LayerNorm: each part is mean-centred, as the norm centres their sum
        scale = 1 / np.sqrt(np.var(x) + cfg.eps)
        centre = lambda p: p - p.mean(-1, keepdims=True)  # noqa: E731
    read = g * direction  # [d_model]: the frozen norm's gain, then the unembedding direction
    dla = lambda p: scale * centre(np.asarray(p, dtype=np.float64)) @ read  # noqa: E731

    embed = c["hook_embed"][position].astype(np.float64)
    if "pos_embed.W_pos" in w:
        embed = embed + w["pos_embed.W_pos"][position]
    H, dh = cfg.n_heads, cfg.d_head
    heads, mlps, constant = [], [], np.zeros(cfg.d_model)
    for L in range(cfg.n_layers):
        z = c[f"blocks.{L}.attn.hook_z"][position].astype(np.float64)  # [head, d_head]
        W_O = np.asarray(w[f"blocks.{L}.attn.W_O"], dtype=np.float64).reshape(H, dh, cfg.d_model)
        heads.append(dla(np.einsum("hd,hdm->hm", z, W_O)))  # [head]: each head's write, attributed
        b_out = w.get(f"blocks.{L}.mlp.b_out")
        mlp = c[f"blocks.{L}.hook_mlp_out"][position].astype(np.float64)
        if b_out is not None:
            mlp = mlp - b_out
            constant += b_out
        if (b_O := w.get(f"blocks.{L}.attn.b_O")) is not None:
            constant += b_O
        mlps.append(dla(mlp))
    bias = dla(constant)
    if "ln_final.b" in w:
        bias += float(np.asarray(w["ln_final.b"], dtype=np.float64) @ direction)
    if (b_U := w.get("unembed.b_U")) is not None:
        bias += float(b_U[target] - (0 if contrast is None else b_U[contrast]))
    logits = cr.logits()[position]
    value = float(logits[target]) - (0.0 if contrast is None else float(logits[contrast]))
    return {"value": value, "scale": float(scale), "embed": float(dla(embed)), "heads": np.stack(heads),
            "mlps": np.asarray(mlps), "bias": float(bias)}


# --- information flow routes ------------------------------------------------------------------------

def proximity(y: np.ndarray, y_l1: np.ndarray, parts: np.ndarray) -> np.ndarray:  # y [q, d_model], parts [k, q, d_model] -> [k, q]
    """‖y‖₁ − ‖y − part‖₁ before the max(0, ·): how much closer to y a part is than 0 is. Consumes parts."""
    np.subtract(y, parts, out=parts)
    return y_l1 - np.abs(parts, out=parts).sum(-1)


@dataclass
class Flow:
    """Every edge importance of the information flow graph (Ferrando & Voita 2024) of one run.

    Nodes: x_i^L, position i's residual stream entering layer L; x_i^{L,mid}, after the attention
    block; x_i^{L+1}, after the MLP block. A block's output y is a sum of parts; part z's importance is
    prox(z, y) / Σ_parts prox, prox(z, y) = max(0, ‖y‖₁ − ‖y − z‖₁). The attention block at i sums the
    residual x_i^L and, for every key j, z_ij = Σ_h A^h[i, j] · v_j W_O^h (what the layer's heads write
    from j into i); the MLP block sums x_i^{L,mid} and the MLP's output. Biases are in y, in no part."""

    attention: np.ndarray  # [layer, query_pos, key_pos]: z_ij's importance
    attention_residual: np.ndarray  # [layer, pos]: x_i^L's importance in x_i^{L,mid}
    mlp: np.ndarray  # [layer, pos]: the MLP output's importance in x_i^{L+1}
    mlp_residual: np.ndarray  # [layer, pos]: x_i^{L,mid}'s importance in x_i^{L+1}

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.attention, self.attention_residual, self.mlp, self.mlp_residual))


def flow_attention(cr: CachedRun, layer: int, block_floats: int = 1 << 19) -> tuple[np.ndarray, np.ndarray]:
    """Layer L's attention block -> (importance of z_ij [query, key], of the residual x_i^L [pos]).

    y_i is the block's actual output, b_O included: hook_resid_mid (pre-LN), the sum LN1 normalises
    (post-LN BERT). The n² vectors z_ij are d_model each, so they are made and measured a block of
    queries x keys at a time, a block (~2 MB) small enough to stay in cache through the four passes
    over it (5x faster than 32 MB blocks at 512 tokens); a causal block stops at its last query."""
    c, causal = cr.run.cache, cr.model.cfg.causal
    x = c[f"blocks.{layer}.hook_resid_pre"]  # [pos, d_model]
    y = x + c[f"blocks.{layer}.hook_attn_out"]  # [pos, d_model]
    y_l1 = np.abs(y).sum(-1)  # [pos]
    A = c[f"blocks.{layer}.attn.hook_pattern"]  # [head, query_pos, key_pos]
    w = head_writes(cr, layer).transpose(1, 0, 2)  # [key_pos, head, d_model]
    n, d = x.shape
    prox = np.zeros((n, n), F32)  # [query, key]
    side = max(1, int(np.sqrt(block_floats / d)))
    for q0 in range(0, n, side):
        q1 = min(n, q0 + side)
        for k0 in range(0, q1 if causal else n, side):
            k1 = min(q1 if causal else n, k0 + side)
            z = np.matmul(A[:, q0:q1, k0:k1].transpose(2, 1, 0), w[k0:k1])  # [key, q, head] @ [key, head, d_model] -> [key, q, d_model]
            prox[q0:q1, k0:k1] = proximity(y[q0:q1], y_l1[q0:q1], z).T
    np.maximum(prox, 0, out=prox)
    resid = np.maximum(proximity(y, y_l1, x[None].copy())[0], 0)  # [pos]
    total = resid + prox.sum(-1)  # [pos]
    safe = np.where(total > 0, total, 1)  # all-zero proximities (y = 0): every importance is 0
    return prox / safe[:, None], resid / safe


def flow_mlp(cr: CachedRun, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Layer L's MLP block -> (importance of the MLP output [pos], of the residual x_i^{L,mid} [pos]).

    GPT-NeoX's parallel residual: its MLP reads x_i^L, not x_i^{L,mid}; x_i^{L+1} is still the sum
    mid + out, so these importances (of the parts of that sum) hold as they are. Only a drawing
    that shows the MLP fed by the mid node would say more than the model did."""
    cfg, w, c = cr.model.cfg, cr.model.weights, cr.run.cache
    b = f"blocks.{layer}."
    mid = c[b + "hook_resid_pre"] + c[b + "hook_attn_out"]  # [pos, d_model]: hook_resid_mid, as the forward pass adds it
    if cfg.post_ln:  # BERT's mid node is LN1 of that sum, recomputed as the forward pass does
        mid = layer_norm(mid, w[b + "ln1.w"], w[b + "ln1.b"], cfg.eps)
    out = c[b + "hook_mlp_out"]  # [pos, d_model]
    y = mid + out  # hook_resid_post (pre-LN); the sum LN2 normalises (post-LN)
    prox = np.maximum(proximity(y, np.abs(y).sum(-1), np.stack([out, mid])), 0)  # [2, pos]
    total = prox.sum(0)
    return tuple(prox / np.where(total > 0, total, 1))


def flow(cr: CachedRun) -> Flow:
    """Every layer's edge importances (the graph for any token and threshold is flow_routes')."""
    att = [flow_attention(cr, L) for L in range(cr.model.cfg.n_layers)]
    ffn = [flow_mlp(cr, L) for L in range(cr.model.cfg.n_layers)]
    return Flow(*(np.stack(a) for a in zip(*att)), *(np.stack(f) for f in zip(*ffn)))


ROUTE_KINDS = ("mlp", "mlp_residual", "attention_residual", "attention")


def flow_routes(f: Flow, position: int, threshold: float) -> list[tuple[str, int, int, int, float]]:
    """The information flow routes to x_position at the top, extracted top-down (the paper's
    algorithm): start with that node; going down a layer at a time, keep every edge whose importance
    is >= threshold and whose target node is already kept, and keep its source node.

    Returns edges (kind, layer, from, to, importance): "mlp" and "mlp_residual" go from x_to^{L,mid} to
    x_to^{L+1} (from == to), "attention_residual" from x_to^L to x_to^{L,mid}, "attention" from
    x_from^L to x_to^{L,mid}. Importances are compared as given (the API compares its rounded values)."""
    edges, kept = [], {position}  # kept: positions whose node above the current block is in the graph
    for L in reversed(range(f.mlp.shape[0])):
        mid = set()
        for i in sorted(kept):
            for kind, imp in (("mlp", f.mlp[L, i]), ("mlp_residual", f.mlp_residual[L, i])):
                if imp >= threshold:
                    edges.append((kind, L, i, i, float(imp)))
                    mid.add(i)
        kept = set()
        for i in sorted(mid):
            if f.attention_residual[L, i] >= threshold:
                edges.append(("attention_residual", L, i, i, float(f.attention_residual[L, i])))
                kept.add(i)
            for j in np.flatnonzero(f.attention[L, i] >= threshold):
                edges.append(("attention", L, int(j), i, float(f.attention[L, i, j])))
                kept.add(int(j))
    return edges
