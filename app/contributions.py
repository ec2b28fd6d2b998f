"""What moved, not only where it looked: three measures of what the heads (and the MLPs) wrote,
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
"""

import numpy as np

from .analysis import CachedRun

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
