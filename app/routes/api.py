"""The JSON API: /api/models, /api/attention, /api/head, /api/predictions, /api/residual.

Each route resolves what it can on the event loop (model id, cache), and does the work (forward
pass, encoding) in the compute pool via Api.respond; one run of a text serves every endpoint."""

import base64
import logging

import numpy as np
from fastapi import APIRouter, Request

from .. import analysis
from ..deps import ApiDep
from ..engine import Model, ModelLoadError
from ..http import Api, ApiError
from ..schemas import (AttentionPublic, AttentionRequest, ComparePublic, CompareRequest, ErrorPublic, HeadPublic,
                       HeadRequest, HeadsPublic, HeadsRequest, LensPublic, LensRequest, ModelsPublic, PredictionsPublic, PredictionsRequest,
                       ResidualPublic, ResidualRequest)

log = logging.getLogger("attnscope.api")
router = APIRouter(prefix="/api", tags=["api"])

ERRORS = {
    404: {"model": ErrorPublic, "description": "unknown model (the message lists the valid ids)"},
    413: {"model": ErrorPublic, "description": "request body too large"},
    422: {"model": ErrorPublic, "description": "empty text, too many tokens, layer/head out of range, invalid request"},
    503: {"model": ErrorPublic, "description": "overloaded (retry after Retry-After seconds) or model unavailable"},
}


@router.get("/models", response_model=ModelsPublic)
def list_models(api: ApiDep):
    """The models this server can run; the default one first is not guaranteed: see `default`."""
    out = []
    for src in api.registry.available():
        try:
            m = api.model(src.id)
        except ModelLoadError as e:  # a broken user model must not hide the working ones
            log.warning("model %s is listed but cannot load: %s", src.id, e)
            continue
        info = m.info()
        out.append({k: info[k] for k in ("id", "architecture", "causal", "n_layers", "n_heads", "n_kv_heads",
                                         "d_model", "d_head", "max_tokens")} | {"name": m.name, "default": src.id == api.registry.default})
    return {"models": out}


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


def binary_array(p: np.ndarray, encoding: str, causal: bool) -> dict:
    """[head, query, key] weights as base64 bytes; a causal pattern sends only its lower triangle
    (row i holds keys 0..i), since the rest is 0 by construction."""
    if causal:
        rows, cols = np.tril_indices(p.shape[-1])
        p = p[:, rows, cols]
    data = analysis.quantize_uint8(p) if encoding == "uint8" else p.astype("<f2")
    return {"dtype": encoding, "shape": [int(p.shape[0]), *([int(len(rows) and rows[-1] + 1)] * 2 if causal else p.shape[1:])],
            "packing": "tril" if causal else "full", "scale": 1 / 255 if encoding == "uint8" else 1.0, "data": _b64(data)}


def attention_payload(api: Api, req: AttentionRequest) -> dict:
    model = api.model(req.model)
    layers = list(range(model.cfg.n_layers)) if req.layers is None else list(dict.fromkeys(req.layers))
    for L in layers:
        check_layer(model, L)
    cr = api.run(model, req.text)
    pats = analysis.patterns(cr, layers)
    if req.encoding == "json":
        attn = {L: np.round(p, 4) for L, p in pats.items()}
    else:
        attn = {L: binary_array(p, req.encoding, model.cfg.causal) for L, p in pats.items()}
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "n_layers": model.cfg.n_layers,
            "n_heads": model.cfg.n_heads, "causal": model.cfg.causal, "encoding": req.encoding, "attention": attn}


@router.post("/attention", response_model=AttentionPublic, responses=ERRORS)
async def attention(req: AttentionRequest, request: Request, api: ApiDep):
    """Every attention pattern of the text (or of the layers asked for)."""
    key = (req.model, "attention", req.text, None if req.layers is None else tuple(req.layers), req.encoding)
    return await api.respond(request, key, lambda: attention_payload(api, req))


def head_payload(api: Api, req: HeadRequest) -> dict:
    model = api.model(req.model)
    check_layer(model, req.layer)
    check_head(model, req.head)
    cr = api.run(model, req.text)
    h = analysis.head_detail(cr, req.layer, req.head)
    r = lambda a: np.round(a, 5)  # noqa: E731
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "layer": req.layer, "head": req.head,
            "kv_head": h["kv_head"], "d_head": model.cfg.d_head, "scale": h["scale"],
            "q": r(h["q"]), "k": r(h["k"]), "v": r(h["v"]), "scores": analysis.scores_public(h["scores"]),
            "pattern": np.round(h["pattern"], 6), "z": r(h["z"]),
            **({k: r(v) for k, v in analysis.head_inputs_outputs(cr, req.layer, req.head).items()} if req.detail else {})}


@router.post("/head", response_model=HeadPublic, responses=ERRORS)
async def head(req: HeadRequest, request: Request, api: ApiDep):
    """One head in full: q, k, v, the scaled scores before the softmax, the pattern and z."""
    key = (req.model, "head", req.text, req.layer, req.head, req.detail)
    return await api.respond(request, key, lambda: head_payload(api, req))


def require_causal(model: Model) -> None:
    if not model.cfg.causal:
        raise ApiError(422, "not_causal", f"{model.id} is an encoder ({model.cfg.architecture}): it does not predict next tokens")


def ablated(api: Api, model: Model, req) -> analysis.CachedRun | None:
    """The run with req.ablate's heads switched off (cached), or None when nothing is switched off."""
    heads = sorted(set(map(tuple, req.ablate)))
    for L, h in heads:
        check_layer(model, L)
        check_head(model, h)
    if not heads:
        return None
    key = (model.id, req.text, tuple(heads), req.ablate_mode)
    return api.runs.get_or_compute(key, lambda: analysis.ablated_run(model, req.text, heads, req.ablate_mode))


def ablation_fields(req, changed, original) -> dict:
    if changed is None:
        return {"ablate": [], "ablate_mode": req.ablate_mode}
    return {"ablate": sorted(set(map(tuple, req.ablate))), "ablate_mode": req.ablate_mode, "original": original}


def predictions_payload(api: Api, req: PredictionsRequest) -> dict:
    model = api.model(req.model)
    require_causal(model)
    cr = api.run(model, req.text)
    off = ablated(api, model, req)
    original = analysis.top_k(model, cr.logits(), req.top_k, req.temperature)
    changed = None if off is None else analysis.top_k(model, off.logits(), req.top_k, req.temperature)
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "temperature": req.temperature,
            "predictions": original if changed is None else changed, **ablation_fields(req, changed, original)}


@router.post("/predictions", response_model=PredictionsPublic, responses=ERRORS)
async def predictions(req: PredictionsRequest, request: Request, api: ApiDep):
    """For each position, the top-k next tokens (softmax of the final logits), most likely first."""
    key = (req.model, "predictions", req.text, req.top_k, req.temperature, tuple(map(tuple, req.ablate)), req.ablate_mode)
    return await api.respond(request, key, lambda: predictions_payload(api, req))


def residual_payload(api: Api, req: ResidualRequest) -> dict:
    model = api.model(req.model)
    cr = api.run(model, req.text)
    g = analysis.residual_geometry(cr, req.normalize)
    cos = [[None] * len(cr.run.tokens)] + np.round(g["cosine_to_previous"], 6).tolist()
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "layers": g["layers"], "normalize": req.normalize,
            "pca_2d": np.round(g["pca_2d"], 5), "pca_3d": np.round(g["pca_3d"], 5),
            "explained_variance_2d": np.round(g["explained_variance_2d"], 6),
            "explained_variance_3d": np.round(g["explained_variance_3d"], 6),
            "norms": np.round(g["norms"], 4), "cosine_to_previous": cos}


@router.post("/residual", response_model=ResidualPublic, responses=ERRORS)
async def residual(req: ResidualRequest, request: Request, api: ApiDep):
    """Each token's residual-stream vector at every layer boundary, projected by PCA (2-D and 3-D)."""
    key = (req.model, "residual", req.text, req.normalize)
    return await api.respond(request, key, lambda: residual_payload(api, req))


def lens_payload(api: Api, req: LensRequest) -> dict:
    model = api.model(req.model)
    require_causal(model)
    cr = api.run(model, req.text)
    off = ablated(api, model, req)
    original = analysis.lens(cr, req.top_k)
    changed = None if off is None else analysis.lens(off, req.top_k)
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "layers": analysis.boundaries(model),
            "lens": original if changed is None else changed, **ablation_fields(req, changed, original)}


@router.post("/lens", response_model=LensPublic, responses=ERRORS)
async def lens(req: LensRequest, request: Request, api: ApiDep):
    """The logit lens: what the model would predict from each layer's residual stream, position by position."""
    key = (req.model, "lens", req.text, req.top_k, tuple(map(tuple, req.ablate)), req.ablate_mode)
    return await api.respond(request, key, lambda: lens_payload(api, req))


def compare_payload(api: Api, req: CompareRequest) -> dict:
    model = api.model(req.model)
    runs = [api.run(model, text) for text in req.sentences]
    try:
        c = analysis.compare(runs, req.sentences, req.word)
    except analysis.WordNotFound as e:
        raise ApiError(422, "word_not_found", f"{e}: {req.sentences[e.sentence]!r}", sentence=e.sentence) from None
    return {"model": model.id, "word": req.word, "layers": c["layers"], "occurrences": c["occurrences"],
            "similarity": np.round(c["similarity"], 6), "pca_2d": np.round(c["pca_2d"], 5),
            "explained_variance_2d": np.round(c["explained_variance_2d"], 6)}


@router.post("/compare", response_model=ComparePublic, responses=ERRORS)
async def compare(req: CompareRequest, request: Request, api: ApiDep):
    """The same word in 2-4 sentences: how similar its vectors are, layer by layer (identical at the
    embedding when it is the same token, diverging as context flows in)."""
    key = (req.model, "compare", tuple(req.sentences), req.word)
    return await api.respond(request, key, lambda: compare_payload(api, req))


def heads_payload(api: Api, req: HeadsRequest) -> dict:
    model = api.model(req.model)
    cr = api.run(model, req.text)
    induction = api.runs.get_or_compute((model.id, "induction-probe"), lambda: analysis.induction_scores(model))
    scores = analysis.head_scores(cr, induction)
    top = {}
    for name, s in scores.items():
        order = np.argsort(-s, axis=None, kind="stable")[: req.top]
        top[name] = [{"layer": int(i // s.shape[1]), "head": int(i % s.shape[1]), "score": round(float(s.flat[i]), 4)} for i in order]
    return {"model": model.id, "tokens": analysis.tokens_public(cr.run), "formulas": analysis.HEAD_SCORES,
            "scores": {k: np.round(v, 4) for k, v in scores.items()}, "top": top}


@router.post("/heads", response_model=HeadsPublic, responses=ERRORS)
async def heads(req: HeadsRequest, request: Request, api: ApiDep):
    """The head finder: every head scored on simple patterns (previous token, first token, self, broad,
    induction), with the formula of each score; the text is used for all but induction."""
    key = (req.model, "heads", req.text, req.top)
    return await api.respond(request, key, lambda: heads_payload(api, req))
