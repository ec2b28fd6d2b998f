"""Generation, one token at a time: a key/value-cached step per token, sampling as Hugging Face does.

    ids = [t.id for t in model.tokenize(model.chat_prompt("Name three colours."))]
    for t in generate(model, ids, 20, temperature=0.8, top_p=0.9, seed=1):
        print(model.tokenizer.id_text(t.id), t.prob, t.stop_reason)

The prefill is the ordinary forward over the prompt with an empty cache; each later step is the same
forward over one new token, reading every earlier key and value from the cache (forward.KVCache).
"""

import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from .config import ModelConfig
from .errors import EmptyInputError, GenerationError, GenerationTooLongError, NotCausalError
from .forward import KVCache, forward

if TYPE_CHECKING:
    from .model import Model

StopReason = Literal["eos", "length"]


def pattern_names(cfg: ModelConfig) -> frozenset[str]:
    return frozenset(f"blocks.{L}.attn.hook_pattern" for L in range(cfg.n_layers))


def step(
    cfg: ModelConfig, w: Mapping[str, np.ndarray], ids: Sequence[int], kv: KVCache, *,
    attention: bool = True, logits: str | slice | None = "all", rows: slice = slice(None),
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Feed the new token ids after kv's positions (the whole prompt into an empty cache: the prefill).

    -> (logits [new_pos, d_vocab] for the positions `logits` selects, or None;
        pattern [n_layers, head_index, new_pos, key_pos]: the new tokens' queries (those `rows`
        selects) over every position so far, or None without attention). kv grows by len(ids).
    A hook keeps only the selected rows of each layer's pattern as it passes, so a long prompt's
    prefill never holds every layer's [head_index, pos, pos] at once.
    """
    kept = []
    # some rows are copied: a view would keep the layer's whole pattern alive (returns None: unchanged)
    every = rows == slice(None)
    keep = lambda pattern, _name: kept.append(pattern if every else pattern[:, rows].copy())  # noqa: E731
    hooks = dict.fromkeys(pattern_names(cfg), keep) if attention else None
    out, _ = forward(cfg, w, ids, names=(), hooks=hooks, logits=logits, kv=kv)
    return out, np.stack(kept) if attention else None  # hooks run in layer order


# --- sampling: temperature, then top-k, then top-p (Hugging Face's warpers, in its order) ----------

def _softmax(s):  # float64 [d_vocab] -> [d_vocab]; -inf entries get probability 0
    e = np.exp(s - s.max())
    return e / e.sum()


def distribution(logits: np.ndarray, temperature: float = 0.0, top_k: int | None = None,
                 top_p: float | None = None) -> np.ndarray:
    """The probabilities a token is drawn from, float64 [d_vocab] (zero for filtered tokens).

    temperature 0 (greedy) reports the model's own distribution, softmax(logits), and ignores top_k
    and top_p, as Hugging Face's do_sample=False does. Otherwise, in HF's order: divide by the
    temperature; keep the top_k highest scores (every token tied with the k-th stays); keep the
    smallest set of likeliest tokens whose probability sums to >= top_p: HF sorts ascending and
    drops the tokens whose cumulative probability is <= 1 - top_p, always keeping the likeliest.
    Float64 here where HF works in float32: only a boundary within ~1e-7 could fall differently.
    """
    s = np.asarray(logits, dtype=np.float64).reshape(-1)
    if temperature == 0:
        return _softmax(s)
    with np.errstate(over="ignore"):
        t = s / temperature
    # a temperature so small that the scores overflow: its limit, the likeliest token(s)
    s = t if np.isfinite(t.max()) else np.where(s == s.max(), 0.0, -np.inf)
    if top_k is not None and top_k < len(s):
        kth = np.partition(s, -top_k)[-top_k]
        s[s < kth] = -np.inf
    if top_p is not None and top_p < 1:
        order = np.argsort(s, kind="stable")  # ascending, as HF's torch.sort(descending=False)
        drop = np.cumsum(_softmax(s[order])) <= 1 - top_p
        drop[-1] = False  # min_tokens_to_keep = 1
        s[order[drop]] = -np.inf
    return _softmax(s)


def draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    """One index with probability probs[i]: inverse CDF of one uniform draw (never a zero-probability index)."""
    cdf = np.cumsum(probs)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(cdf) - 1))


def top_tokens(probs: np.ndarray, n: int) -> tuple[tuple[int, float], ...]:
    """The n likeliest (id, prob), likeliest first (ties: the lower id first)."""
    n = min(n, len(probs))
    if n <= 0:
        return ()
    idx = np.argpartition(-probs, n - 1)[:n]
    idx = idx[np.lexsort((idx, -probs[idx]))]
    return tuple((int(i), float(probs[i])) for i in idx)


# --- the loop -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GeneratedToken:
    """One chosen token, as soon as it is chosen."""

    id: int
    position: int  # its index in the whole text (the prompt is 0 .. n_prompt - 1)
    prob: float  # its probability under the distribution it was drawn from
    top: tuple[tuple[int, float], ...]  # (id, prob) of the likeliest under that distribution
    # [n_layers, head_index, key_pos = position]: the attention of the query that chose it (at
    # position - 1) over every earlier position; None when generate(..., attention=False)
    pattern: np.ndarray | None
    stop_reason: StopReason | None  # set on the last token: "eos" (it is an end token) or "length"


def _check(model: "Model", ids, max_new_tokens, temperature, top_k, top_p, seed, n_top) -> list[int]:
    if not model.cfg.causal:
        raise NotCausalError(model.id)
    ids = [int(i) for i in np.asarray(ids, dtype=np.int64).reshape(-1)]
    if not ids:
        raise EmptyInputError()
    if any(not 0 <= i < model.cfg.d_vocab for i in ids):
        raise GenerationError(f"token ids must be in [0, {model.cfg.d_vocab})")
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
        raise GenerationError(f"max_new_tokens must be a whole number >= 1, not {max_new_tokens!r}")
    if len(ids) + max_new_tokens > model.max_tokens:
        raise GenerationTooLongError(len(ids), max_new_tokens, model.max_tokens)
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise GenerationError(f"temperature must be a finite number >= 0 (0 is greedy), not {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise GenerationError(f"top_k must be a whole number >= 1 (or none), not {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise GenerationError(f"top_p must be in (0, 1] (or none), not {top_p!r}")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise GenerationError(f"seed must be a whole number >= 0 (or none), not {seed!r}")
    if not isinstance(n_top, int) or n_top < 0:
        raise GenerationError(f"n_top must be a whole number >= 0, not {n_top!r}")
    return ids


def generate(
    model: "Model",
    ids: Sequence[int],
    max_new_tokens: int = 20,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    *,
    n_top: int = 5,
    stop_ids: Sequence[int] | None = None,
    cancel: threading.Event | None = None,
    attention: bool = True,
) -> Iterator[GeneratedToken]:
    """Continue the token ids, yielding each chosen token (GeneratedToken) as soon as it is chosen.

    temperature 0: greedy (the likeliest token, as transformers' generate(do_sample=False));
    otherwise draws from distribution(logits, temperature, top_k, top_p) with
    numpy.random.default_rng(seed): the same seed gives the same tokens.
    Stops after max_new_tokens, after a token in stop_ids (default: the model's end-of-sequence
    ids; () never stops early), when cancel is set (checked before each step), or when the caller
    stops iterating (each step runs only when the next token is asked for).
    Every setting is checked here, before any work: a prompt plus max_new_tokens longer than the
    model's max_tokens raises GenerationTooLongError, a bad setting GenerationError.
    """
    ids = _check(model, ids, max_new_tokens, temperature, top_k, top_p, seed, n_top)
    stops = frozenset(model.eos_ids if stop_ids is None else (int(i) for i in stop_ids))
    return _loop(model.cfg, model.weights, ids, max_new_tokens, float(temperature), top_k, top_p,
                 np.random.default_rng(seed), n_top, stops, cancel, attention)


def _loop(cfg, w, ids, max_new_tokens, temperature, top_k, top_p, rng, n_top, stops, cancel, attention):
    if cancel is not None and cancel.is_set():
        return
    kv = KVCache.empty(cfg, len(ids) + max_new_tokens - 1)  # the last chosen token is never fed
    logits, pattern = step(cfg, w, ids, kv, attention=attention, logits="last", rows=slice(-1, None))  # the prefill
    for i in range(max_new_tokens):
        if cancel is not None and cancel.is_set():
            return
        probs = distribution(logits[-1], temperature, top_k, top_p)
        tok = int(np.argmax(logits[-1])) if temperature == 0 else draw(probs, rng)
        stop = "eos" if tok in stops else "length" if i == max_new_tokens - 1 else None
        yield GeneratedToken(tok, kv.n_pos, float(probs[tok]), top_tokens(probs, n_top),
                             None if pattern is None else pattern[:, :, -1], stop)
        if stop is not None or (cancel is not None and cancel.is_set()):
            return
        logits, pattern = step(cfg, w, [tok], kv, attention=attention)
