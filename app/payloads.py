"""The payloads behind every endpoint, page and embed, and their checks: plain functions of (runner,
request) that return plain data (numpy arrays allowed: orjson encodes them). Routers import this
module and nothing else of each other, so a page's numbers are the API's by construction."""

import base64
import logging

import numpy as np

from . import analysis, contributions, lesson
from .engine import Model, ModelLoadError
from .http import ApiError, dumps
from .lesson import (COMPARE_DEFAULT, DEFAULT_HEAD, DEFAULT_LAYER, FRANCE_SENTENCE, LESSON_SENTENCE, MOLE_MEANINGS,
                     MOLE_SENTENCES, TOWER_SENTENCES)
from .runs import Runner
from .schemas import (AttentionRequest, AttributionRequest, CompareRequest, FlowRequest, HeadRequest, HeadsRequest, LensRequest,
                      PredictionsRequest, ResidualRequest, RolloutRequest)

log = logging.getLogger("attnscope.api")


def models_public(runner: Runner) -> list[dict]:
    """The models this server can run (status ready), loading any not loaded yet; one that fails is
    logged and left out (it is in models_unavailable, with why): a broken model never hides the others.
    A model another request is loading now is not waited for (models_unavailable: "loading")."""
    reg, out = runner.registry, []
    for src in reg.sources.values():
        status, _ = reg.status(src.id)
        if status == "not_loaded":
            try:
                runner.model(src.id)
            except ModelLoadError as e:
                log.warning("model %s is listed but cannot load: %s", src.id, e)
                continue
        elif status != "ready":
            continue
        m = runner.model(src.id)
        info = m.info()
        out.append({k: info[k] for k in ("id", "architecture", "model_type", "causal", "n_layers", "n_heads", "n_kv_heads",
                                         "d_model", "d_head", "d_rotary", "max_tokens")} | {"name": m.name, "default": src.id == reg.default,
                                                                  "chat": bool(m.chat_template) and m.cfg.causal,
                                                                  "status": "ready", "source": str(src.hf) if src.hf else None,
                                                                  "size_bytes": reg.nbytes(src.id)})
    return out


def models_unavailable(runner: Runner) -> list[dict]:
    """Every model named that cannot run now: its status (loading, failed, not_loaded) and the reason."""
    reg, out = runner.registry, []
    for src in reg.sources.values():
        status, reason = reg.status(src.id)
        if status != "ready":
            out.append({"id": src.id, "name": src.name, "status": status, "reason": reason,
                        "source": str(src.hf) if src.hf else None, "size_bytes": reg.nbytes(src.id)})
    return out


def check_layer(model: Model, layer: int) -> None:
    if not 0 <= layer < model.cfg.n_layers:
        raise ApiError(422, "out_of_range", f"layer {layer} is out of range: {model.id} has layers 0-{model.cfg.n_layers - 1}",
                       n_layers=model.cfg.n_layers)


def check_head(model: Model, head: int) -> None:
    if not 0 <= head < model.cfg.n_heads:
        raise ApiError(422, "out_of_range", f"head {head} is out of range: {model.id} has heads 0-{model.cfg.n_heads - 1}",
                       n_heads=model.cfg.n_heads)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def binary_array(p: np.ndarray, encoding: str, causal: bool, peak: float = 1.0) -> dict:
    """[head, query, key] values in [0, peak] as base64 bytes; a causal pattern sends only its lower
    triangle (row i holds keys 0..i), since the rest is 0 by construction. uint8 stores value / peak."""
    if causal:
        rows, cols = np.tril_indices(p.shape[-1])
        p = p[:, rows, cols]
    peak = float(peak) or 1.0
    data = analysis.quantize_uint8(p / np.float32(peak) if peak != 1.0 else p) if encoding == "uint8" else p.astype("<f2")
    return {"dtype": encoding, "shape": [int(p.shape[0]), *([int(len(rows) and rows[-1] + 1)] * 2 if causal else p.shape[1:])],
            "packing": "tril" if causal else "full", "scale": peak / 255 if encoding == "uint8" else 1.0, "data": _b64(data)}


GRID_POOL = 64  # the heads grid's thumbnails: at most 64 x 64 blocks each (static/js/views/grid.js MAX_PIXELS)


def max_pool(p: np.ndarray, size: int) -> tuple[np.ndarray, list[int]]:
    """[head, n, n] -> ([head, size, size], edges): block (a, b) is the largest value over queries
    edges[a]..edges[a+1]-1 and keys edges[b]..edges[b+1]-1, edges[a] = floor(a n / size), so a sharp
    weight never vanishes from a thumbnail (sampling every k-th row would skip it). Causal: a block
    above the diagonal covers masked entries only (0), as in the full pattern; n <= size: unchanged."""
    n = p.shape[-1]
    if n <= size:
        return p, list(range(n + 1))
    edges = [a * n // size for a in range(size + 1)]  # strictly increasing since n > size
    starts = edges[:-1]
    return np.maximum.reduceat(np.maximum.reduceat(p, starts, axis=1), starts, axis=2), edges


def attention_payload(runner: Runner, req: AttentionRequest) -> dict:
    model = runner.model(req.model)
    layers = list(range(model.cfg.n_layers)) if req.layers is None else list(dict.fromkeys(req.layers))
    for L in layers:
        check_layer(model, L)
    cr = runner.run(model, req.text, req.then)
    if req.measure == "weight":
        values, peak = analysis.patterns(cr, layers), lambda p: 1.0
    else:
        values, peak = {str(L): contributions.moved(cr, L) for L in layers}, lambda p: p.max()
    edges = None
    if req.pool is not None and len(cr.run.tokens) > req.pool:
        pooled = {L: max_pool(p, req.pool) for L, p in values.items()}
        # no layers asked (layers: []): nothing pooled, no edges (next() on nothing raised StopIteration in the pool)
        values, edges = {L: v for L, (v, _) in pooled.items()}, next(iter(pooled.values()), (None, None))[1]
    if req.encoding == "json":
        attn = {L: np.round(p, 4) for L, p in values.items()}
    else:
        attn = {L: binary_array(p, req.encoding, model.cfg.causal, peak(p)) for L, p in values.items()}
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "n_layers": model.cfg.n_layers,
            "n_heads": model.cfg.n_heads, "causal": model.cfg.causal, "encoding": req.encoding, "measure": req.measure,
            "attention": attn, **({"text": cr.run.text} if req.then else {}), **({"pool": {"edges": edges}} if edges else {})}


def head_payload(runner: Runner, req: HeadRequest) -> dict:
    model = runner.model(req.model)
    check_layer(model, req.layer)
    check_head(model, req.head)
    cr = runner.run(model, req.text, req.then)
    h = analysis.head_detail(cr, req.layer, req.head)
    # 5 decimals of the float32 values, rounded in float64: numpy rounds a float32 array in float32
    # (x * 1e5 rounds first), which for ~4% of values lands one unit off the nearest 5-decimal number,
    # and differently from the exports that round the same float32 in float64 (viewdata.v_out_norm)
    r = lambda a: np.round(np.asarray(a, dtype=np.float64), 5)  # noqa: E731
    want = set(req.parts or ("qkv", "scores", "pattern", "z"))
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "layer": req.layer, "head": req.head,
            "kv_head": h["kv_head"], "d_head": model.cfg.d_head, "scale": h["scale"],
            **({"q": r(h["q"]), "k": r(h["k"]), "v": r(h["v"])} if "qkv" in want else {}),
            **({"scores": analysis.scores_public(h["scores"])} if "scores" in want else {}),
            **({"pattern": np.round(h["pattern"], 6)} if "pattern" in want else {}), **({"z": r(h["z"])} if "z" in want else {}),
            # as /api/attention's JSON writes what moved (4 decimals), so the explorer's heatmap and the exports agree
            **({"moved": np.round(contributions.moved(cr, req.layer)[req.head], 4)} if "moved" in want else {}),
            **({k: r(v) for k, v in analysis.head_inputs_outputs(cr, req.layer, req.head).items()} if req.detail else {}),
            **({"v_out_norm": r(contributions.value_norms(cr, req.layer)[req.head])} if req.detail else {})}


def require_causal(model: Model) -> None:
    if not model.cfg.causal:
        raise ApiError(422, "not_causal", f"{model.id} is an encoder ({model.cfg.architecture}): it does not predict next tokens")


def ablation_run(runner: Runner, model: Model, req) -> analysis.CachedRun | None:
    """The run with req.ablate's heads switched off (cached), or None when nothing is switched off."""
    heads = sorted(set(map(tuple, req.ablate)))
    for L, h in heads:
        check_layer(model, L)
        check_head(model, h)
    if not heads:
        return None
    key = (model.id, req.text, tuple(req.then), tuple(heads), req.ablate_mode)
    return runner.runs.get_or_compute(key, lambda: analysis.ablated_run(model, req.text, heads, req.ablate_mode, req.then))


def ablation_fields(req, changed, original) -> dict:
    if changed is None:
        return {"ablate": [], "ablate_mode": req.ablate_mode}
    return {"ablate": sorted(set(map(tuple, req.ablate))), "ablate_mode": req.ablate_mode, "original": original}


def predictions_payload(runner: Runner, req: PredictionsRequest) -> dict:
    model = runner.model(req.model)
    require_causal(model)
    cr = runner.run(model, req.text, req.then)
    ablated = ablation_run(runner, model, req)
    original = analysis.read_next(model, cr.run.tokens, analysis.top_k(model, cr.logits(), req.top_k, req.temperature))
    changed = None if ablated is None else analysis.read_next(
        model, cr.run.tokens, analysis.top_k(model, ablated.logits(), req.top_k, req.temperature))
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "temperature": req.temperature,
            "predictions": original if changed is None else changed, **ablation_fields(req, changed, original)}


def rollout_payload(runner: Runner, req: RolloutRequest) -> dict:
    model = runner.model(req.model)
    cr = runner.run(model, req.text, req.then)
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "layers": [str(L) for L in range(model.cfg.n_layers)],
            "rollout": np.round(contributions.rollout(cr), 6)}


def attribution_payload(runner: Runner, req: AttributionRequest) -> dict:
    model = runner.model(req.model)
    require_causal(model)
    cr = runner.run(model, req.text, req.then)
    n = len(cr.run.tokens)
    position = n - 1 if req.position is None else req.position
    if not 0 <= position < n:
        raise ApiError(422, "out_of_range", f"position {position} is out of range: the text has positions 0-{n - 1}")
    for name in ("target", "contrast"):
        if (t := getattr(req, name)) is not None and t >= model.cfg.d_vocab:
            raise ApiError(422, "out_of_range", f"{name} {t} is not a token id of {model.id} (0-{model.cfg.d_vocab - 1})")
    target = int(cr.logits()[position].argmax()) if req.target is None else req.target
    a = contributions.logit_attribution(cr, position, target, req.contrast)
    tk = model.tokenizer
    pending = tk.next_piece(cr.run.tokens, position)  # a byte piece reads as the character it completes, or as its bytes
    ref = lambda i: None if i is None else {"id": i, "text": tk.id_text(i), **tk.read_next(i, *pending)}  # noqa: E731
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "position": position, "target": ref(target),
            "contrast": ref(req.contrast), **a}


FLOW_TOP_HEADS = 3  # heads named per attention edge


def flow_payload(runner: Runner, req: FlowRequest) -> dict:
    """The information flow graph: every block's importances (attention edges above min_importance,
    with the heads that moved most along each), and the routes to one token for one threshold."""
    model = runner.model(req.model)
    cr = runner.run(model, req.text, req.then)
    n = len(cr.run.tokens)
    position = n - 1 if req.position is None else req.position
    if not 0 <= position < n:
        raise ApiError(422, "out_of_range", f"position {position} is out of range: the text has positions 0-{n - 1}")
    f = runner.runs.get_or_compute((model.id, "flow", req.text, tuple(req.then)), lambda: contributions.flow(cr))
    # rounded as sent, in float64: the graph here and one a client rebuilds compare the same numbers
    r = contributions.Flow(*(np.round(a.astype(np.float64), 4) for a in (f.attention, f.attention_residual, f.mlp, f.mlp_residual)))
    layers = []
    for L in range(model.cfg.n_layers):
        i, j = map(np.ascontiguousarray, np.nonzero(r.attention[L] >= req.min_importance))  # (nonzero's are strided views)
        moved = contributions.moved(cr, L)[:, i, j].T  # [edge, head]
        top = np.ascontiguousarray(np.argsort(-moved, axis=1, kind="stable")[:, :FLOW_TOP_HEADS])
        layers.append({"query": i, "key": j, "importance": r.attention[L, i, j], "heads": top,
                       "moved": np.round(np.take_along_axis(moved, top, 1).astype(np.float64), 4)})
    graph = [{"kind": k, "layer": L, "source": s, "target": t, "importance": imp}
             for k, L, s, t, imp in contributions.flow_routes(r, position, req.threshold)]
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "n_layers": model.cfg.n_layers,
            "n_heads": model.cfg.n_heads, "causal": model.cfg.causal, "layers": [str(L) for L in range(model.cfg.n_layers)],
            "position": position, "threshold": req.threshold, "min_importance": req.min_importance, "attention": layers,
            "attention_residual": r.attention_residual, "mlp": r.mlp, "mlp_residual": r.mlp_residual, "graph": graph}


def residual_payload(runner: Runner, req: ResidualRequest) -> dict:
    model = runner.model(req.model)
    cr = runner.run(model, req.text, req.then)
    g = analysis.residual_geometry(cr, req.normalize)
    cos = [[None] * len(cr.run.tokens)] + np.round(g["cosine_to_previous"], 6).tolist()
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "layers": g["layers"], "normalize": req.normalize,
            "pca_2d": np.round(g["pca_2d"], 5), "pca_3d": np.round(g["pca_3d"], 5),
            "explained_variance_2d": np.round(g["explained_variance_2d"], 6),
            "explained_variance_3d": np.round(g["explained_variance_3d"], 6),
            "norms": np.round(g["norms"], 4), "cosine_to_previous": cos}


def lens_payload(runner: Runner, req: LensRequest) -> dict:
    model = runner.model(req.model)
    require_causal(model)
    cr = runner.run(model, req.text, req.then)
    ablated = ablation_run(runner, model, req)
    original = analysis.lens(cr, req.top_k)
    changed = None if ablated is None else analysis.lens(ablated, req.top_k)
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "layers": analysis.boundaries(model),
            "lens": original if changed is None else changed, **ablation_fields(req, changed, original)}


def compare_payload(runner: Runner, req: CompareRequest) -> dict:
    model = runner.model(req.model)
    runs = [runner.run(model, text) for text in req.sentences]
    try:
        c = analysis.compare(runs, req.sentences, req.word)
    except analysis.WordNotFound as e:
        raise ApiError(422, "word_not_found", f"{e}: {req.sentences[e.sentence]!r}", sentence=e.sentence) from None
    return {"model": model.id, "word": req.word, "layers": c["layers"], "occurrences": c["occurrences"],
            "similarity": np.round(c["similarity"], 6), "pca_2d": np.round(c["pca_2d"], 5),
            "explained_variance_2d": np.round(c["explained_variance_2d"], 6)}


def head_scores(runner: Runner, model: Model, cr: analysis.CachedRun) -> dict[str, np.ndarray]:
    """Every head finder score of every head (analysis.HEAD_SCORES), the induction probe's cached per model."""
    # a 3-tuple key: no text's run, keyed (model id, text), can be taken for it
    induction = runner.runs.get_or_compute((model.id, "induction-probe", None),
                                           lambda: analysis.induction_scores(model, contributions.moved))
    return analysis.head_scores(cr, induction, contributions.moved)


def top_heads(s: np.ndarray, top: int) -> list[dict]:  # s: [layer, head] -> the top heads, highest first
    order = np.argsort(-s, axis=None, kind="stable")[:top]
    return [{"layer": int(i // s.shape[1]), "head": int(i % s.shape[1]), "score": round(float(s.flat[i]), 4)} for i in order]


def heads_payload(runner: Runner, req: HeadsRequest) -> dict:
    model = runner.model(req.model)
    cr = runner.run(model, req.text, req.then)
    scores = head_scores(runner, model, cr)
    top = {name: top_heads(s, req.top) for name, s in scores.items()}
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "formulas": analysis.HEAD_SCORES,
            "variants": analysis.HEAD_VARIANTS, "scores": {k: np.round(v, 4) for k, v in scores.items()}, "top": top}


# --- the lesson ----------------------------------------------------------------------------------

class LessonWordSplit(ApiError, ValueError):
    """The model's tokenizer splits a word the lesson reads as one token ('creature', 'tower', ...): the
    lesson cannot be told with it. An ApiError (a 422 from /lesson), and a ValueError (one line from the CLI)."""

    def __init__(self, model_id: str, word: str, text: str, tokens: list[str]):
        super().__init__(422, "lesson_word_split", f"the lesson needs {word!r} as one token of {text!r}, but {model_id}'s "
                         f"tokenizer gives {tokens}: use a model whose vocabulary has the word, such as the default",
                         word=word, tokens=tokens)


def lesson_token(model: Model, tokens, text: str, word: str) -> int:
    """The index of the token that is `word` (case and spaces aside) in the run of `text`."""
    for i, t in enumerate(tokens):
        if t.text.strip().lower() == word:
            return i
    raise LessonWordSplit(model.id, word, text, [t.text for t in tokens])


def lesson_card(runner: Runner, model: Model, text: str, layer: int, head: int, query: int) -> dict:
    """One head's computation for one query token, step by step, from /api/head's detail payload (the
    numbers /explain shows): e, q = W_q e, each key's k, v, q·k, the scaled score s, the weight w and
    what it moved, and z = Σ_j w_j v_j."""
    d = head_payload(runner, HeadRequest(text=text, model=model.id, layer=layer, head=head, detail=True))
    h = analysis.head_detail(runner.run(model, text), layer, head)  # the unrounded q and k, for q·k as the forward pass takes it
    dots = h["q"][query].astype(np.float64) @ h["k"][: query + 1].astype(np.float64).T
    w, vn = d["pattern"][query], d["v_out_norm"]
    moved = w[: query + 1] * vn[: query + 1]
    pre = "q_pre_rope" if "q_pre_rope" in d else "q"
    keys = [{"index": j, "text": d["tokens"][j]["text"], "k": d["k_pre_rope" if pre != "q" else "k"][j], "v": d["v"][j],
             "dot": round(float(dots[j]), 4), "score": d["scores"][query][j], "weight": round(float(w[j]), 4),
             "v_out_norm": round(float(vn[j]), 4), "moved": round(float(moved[j]), 4),
             "share": round(float(moved[j] / moved.sum()), 4)} for j in range(query + 1)]
    return {"layer": layer, "head": head, "query": query, "kv_head": d["kv_head"], "d_model": model.cfg.d_model,
            "d_head": model.cfg.d_head, "scale": d["scale"], "rope": pre != "q", "e": d["e"][query],
            "e_norm": round(float(np.linalg.norm(d["e"][query])), 4), "q": d[pre][query], "keys": keys,
            "z": d["z"][query], "z_norm": round(float(np.linalg.norm(d["z"][query])), 4),
            "out_norm": round(float(np.linalg.norm(d["out"][query])), 4)}


def lesson_embeddings(cr: analysis.CachedRun, first: int = 6) -> dict:
    """Each token's context-free vector (hook_embed): its first numbers and its length."""
    e = cr.run.cache["hook_embed"]  # [pos, d_model]
    return {"d_model": int(e.shape[1]), "first": np.round(e[:, :first], 4),
            "norm": np.round(np.linalg.norm(e.astype(np.float64), axis=-1), 4)}


def head_rows(cr: analysis.CachedRun, layer: int, head: int) -> dict:
    """One head's weights and what it moved as shares of each row ([query][key] each), for hoverable arrows."""
    return {"layer": layer, "head": head, "pattern": np.round(cr.run.cache[f"blocks.{layer}.attn.hook_pattern"][head], 4),
            "moved": np.round(analysis.per_row(contributions.moved(cr, layer)[head]), 4)}


def lesson_specialists(scores: dict[str, np.ndarray], top: int = 3) -> dict:
    """The head finder for the lesson: each pattern's top heads by its score with key 0 left out (first:
    with it), each with the same score with key 0 kept and on what moved (key 0 left out)."""
    rows = []
    r = lambda x: round(float(x), 4)  # noqa: E731
    for p in analysis.HEAD_PATTERNS:
        sink = "kept" if p == "first" else "left out"
        name, moved = analysis.score_name(p, "weight", sink), analysis.score_name(p, "moved", sink)
        rows.append({"pattern": p, "name": name, "moved_name": moved, "heads": [
            t | {"kept": r(scores[p][t["layer"], t["head"]]), "moved": r(scores[moved][t["layer"], t["head"]]),
                 "first": r(scores["first"][t["layer"], t["head"]])}
            for t in top_heads(scores[name], top)]})
    names = [n for row in rows for n in (row["name"], row["moved_name"], row["pattern"])]
    return {"rows": rows, "formulas": {n: analysis.HEAD_SCORES[n] for n in dict.fromkeys(names)}}


class LessonData:
    """The lesson's data for one model, kept in the run cache (counted by the size of its JSON)."""

    def __init__(self, data: dict):
        self.data, self.nbytes = data, len(dumps(data))


def lesson_data(runner: Runner, model_id: str | None = None) -> dict:
    """The lesson's live examples, computed with the model (default: the default model), and its text
    with their numbers ("sections", app/lesson.py's). Computed once per model, then cached (a 3-tuple
    key, apart from the runs' (model id, text)); callers only read it."""
    model = runner.model(model_id)
    return runner.runs.get_or_compute((model.id, "lesson", None), lambda: LessonData(build_lesson(runner, model))).data


def build_lesson(runner: Runner, model: Model) -> dict:
    moved = contributions.moved
    fluffy = runner.run(model, LESSON_SENTENCE)
    toks = fluffy.run.tokens
    creature = lesson_token(model, toks, LESSON_SENTENCE, "creature")
    adjectives = [lesson_token(model, toks, LESSON_SENTENCE, w) for w in ("fluffy", "blue")]
    scores = head_scores(runner, model, fluffy)
    previous = scores[analysis.score_name("previous", "weight", "left out")]
    linking = analysis.heads_linking(fluffy, creature, adjectives, moved, 5)
    for h in linking:
        h["previous"] = round(float(previous[h["layer"], h["head"]]), 4)
        h["keys"] = [{"index": k, "weight": round(float(h["row"][k]), 4), "moved": round(float(h["moved_row"][k]), 4)}
                     for k in adjectives]

    towers, rows = [], []
    for text in TOWER_SENTENCES:
        cr = runner.run(model, text)
        t = lesson_token(model, cr.run.tokens, text, "tower")
        rows.append(analysis.query_rows(cr, t, moved))
        towers.append({"text": text, "tokens": analysis.tokens_public(cr.run), "query": t,
                       "heads": analysis.heads_linking(cr, t, [t - 1], moved, 3)})
    shared = analysis.shared_head(rows, [t["query"] - 1 for t in towers])
    shared["previous"] = round(float(previous[shared["layer"], shared["head"]]), 4)
    for t in towers:
        t["rows"] = head_rows(runner.run(model, t["text"]), shared["layer"], shared["head"])
    tower_compare = compare_payload(runner, CompareRequest(model=model.id, word="tower", sentences=TOWER_SENTENCES))
    next_after = [predictions_payload(runner, PredictionsRequest(text=t["text"], model=model.id, top_k=3))["predictions"][t["query"]]
                  for t in towers]

    france = FRANCE_SENTENCE
    cr = runner.run(model, france)
    ft = cr.run.tokens
    to_france = analysis.heads_linking(cr, len(ft) - 1, [lesson_token(model, ft, france, "france")], moved, 5)
    heads_off = [(h["layer"], h["head"]) for h in to_france]
    ablation = predictions_payload(runner, PredictionsRequest(text=france, model=model.id, top_k=5, ablate=heads_off))
    mole = compare_payload(runner, CompareRequest(model=model.id, word=COMPARE_DEFAULT[0], sentences=MOLE_SENTENCES))
    data = {
        "model": {"id": model.id, "name": model.name, "n_layers": model.cfg.n_layers, "n_heads": model.cfg.n_heads,
                  "d_model": model.cfg.d_model, "d_head": model.cfg.d_head},
        "fluffy": {"text": LESSON_SENTENCE, "tokens": analysis.tokens_public(fluffy.run), "query": creature, "keys": adjectives,
                   "embedding": lesson_embeddings(fluffy), "heads": linking,
                   "card": lesson_card(runner, model, LESSON_SENTENCE, DEFAULT_LAYER, DEFAULT_HEAD, creature),
                   "rows": head_rows(fluffy, DEFAULT_LAYER, DEFAULT_HEAD),
                   "first_token": analysis.first_token_summary(fluffy, creature, scores, moved, contributions.value_norms)},
        "towers": towers, "tower_head": shared, "tower_compare": tower_compare, "tower_next": next_after,
        "mole": mole, "mole_sentences": MOLE_SENTENCES, "mole_meanings": MOLE_MEANINGS,
        "head_finder": lesson_specialists(scores),
        "france": {"text": france, "tokens": analysis.tokens_public(cr.run), "ablated": ablation, "heads_to_france": to_france},
    }
    return data | {"sections": lesson.sections(data)}
