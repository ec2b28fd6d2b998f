"""The JSON API: /api/models, /api/attention, /api/head, /api/predictions, /api/residual, the
lessons' /api/compare, /api/lens, /api/heads, what moved: /api/rollout, /api/attribution, /api/flow, and
/api/generate (app/generation.py: a step per pool job, streamed as it writes).

Each route resolves what it can on the event loop (model id, cache), and does the work (forward
pass, encoding) in the compute pool via Runner.respond; the payloads are app/payloads.py's, and one
run of a text serves every endpoint.

Every view but /api/generate is @cacheable (a pure function of its request: ETag, 304, Cache-Control,
app/httpcache.py) and has a GET twin at the same path (app/twins.py), added at the end of this module:
the same answer from query parameters, which a shared cache can keep. /api/generate stays no-store:
sampling without a seed is not a function of the request."""

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from .. import generation, payloads
from ..http import dumps
from ..deps import RunnerDep
from ..twins import add_get_twins, cacheable
from ..schemas import (AttentionPublic, AttentionRequest, AttributionPublic, AttributionRequest, ComparePublic, CompareRequest,
                       ErrorPublic, FlowPublic, FlowRequest, GeneratePublic, GenerateRequest, HeadPublic, HeadRequest, HeadsPublic, HeadsRequest, LensPublic,
                       LensRequest, ModelsPublic, PredictionsPublic, PredictionsRequest, ResidualPublic, ResidualRequest,
                       RolloutPublic, RolloutRequest)

router = APIRouter(prefix="/api", tags=["api"])

ERRORS = {
    404: {"model": ErrorPublic, "description": "unknown model (the message lists the valid ids)"},
    413: {"model": ErrorPublic, "description": "request body too large"},
    422: {"model": ErrorPublic, "description": "empty text, too many tokens, layer/head out of range, invalid request"},
    503: {"model": ErrorPublic, "description": "overloaded (retry after Retry-After seconds) or model unavailable"},
}


@router.get("/models", response_model=ModelsPublic)
def list_models(runner: RunnerDep):
    """The models this server can run; the default one first is not guaranteed: see `default`."""
    return {"models": payloads.models_public(runner), "unavailable": payloads.models_unavailable(runner)}


@router.post("/attention", response_model=AttentionPublic, responses=ERRORS)
@cacheable
async def attention(req: AttentionRequest, request: Request, runner: RunnerDep):
    """Every attention pattern of the text (or of the layers asked for): where each head looks, or
    (measure=moved) how much it carries from each key to each query."""
    key = (req.model, "attention", req.text, tuple(req.then), None if req.layers is None else tuple(req.layers), req.encoding, req.measure,
           req.pool)
    return await runner.respond(request, key, lambda: payloads.attention_payload(runner, req))


@router.post("/head", response_model=HeadPublic, responses=ERRORS)
@cacheable
async def head(req: HeadRequest, request: Request, runner: RunnerDep):
    """One head in full: q, k, v, the scaled scores before the softmax, the pattern and z."""
    key = (req.model, "head", req.text, tuple(req.then), req.layer, req.head, req.detail, None if req.parts is None else tuple(sorted(set(req.parts))))
    return await runner.respond(request, key, lambda: payloads.head_payload(runner, req))


@router.post("/predictions", response_model=PredictionsPublic, responses=ERRORS)
@cacheable
async def predictions(req: PredictionsRequest, request: Request, runner: RunnerDep):
    """For each position, the top-k next tokens (softmax of the final logits), most likely first."""
    key = (req.model, "predictions", req.text, tuple(req.then), req.top_k, req.temperature, tuple(map(tuple, req.ablate)), req.ablate_mode)
    return await runner.respond(request, key, lambda: payloads.predictions_payload(runner, req))


@router.post("/rollout", response_model=RolloutPublic, responses=ERRORS)
@cacheable
async def rollout(req: RolloutRequest, request: Request, runner: RunnerDep):
    """Attention rollout: how much of each input token has reached each position, layer by layer."""
    key = (req.model, "rollout", req.text, tuple(req.then))
    return await runner.respond(request, key, lambda: payloads.rollout_payload(runner, req))


@router.post("/attribution", response_model=AttributionPublic, responses=ERRORS)
@cacheable
async def attribution(req: AttributionRequest, request: Request, runner: RunnerDep):
    """Why this prediction: the logit of a next token split into what the embeddings, each head, each
    MLP and the biases wrote at that position (direct logit attribution; the parts sum to the logit)."""
    key = (req.model, "attribution", req.text, tuple(req.then), req.position, req.target, req.contrast)
    return await runner.respond(request, key, lambda: payloads.attribution_payload(runner, req))


@router.post("/flow", response_model=FlowPublic, responses=ERRORS)
@cacheable
async def flow(req: FlowRequest, request: Request, runner: RunnerDep):
    """The information flow graph (Ferrando & Voita 2024): how much each part of every block (the
    residual, what the heads wrote from each token, the MLP) makes up its output, and the routes that
    lead to one token at the top, kept where each edge's importance is at least the threshold."""
    key = (req.model, "flow", req.text, tuple(req.then), req.position, req.threshold, req.min_importance)
    return await runner.respond(request, key, lambda: payloads.flow_payload(runner, req))


@router.post("/residual", response_model=ResidualPublic, responses=ERRORS)
@cacheable
async def residual(req: ResidualRequest, request: Request, runner: RunnerDep):
    """Each token's residual-stream vector at every layer boundary, projected by PCA (2-D and 3-D)."""
    key = (req.model, "residual", req.text, tuple(req.then), req.normalize)
    return await runner.respond(request, key, lambda: payloads.residual_payload(runner, req))


@router.post("/lens", response_model=LensPublic, responses=ERRORS)
@cacheable
async def lens(req: LensRequest, request: Request, runner: RunnerDep):
    """The logit lens: what the model would predict from each layer's residual stream, position by position."""
    key = (req.model, "lens", req.text, tuple(req.then), req.top_k, tuple(map(tuple, req.ablate)), req.ablate_mode)
    return await runner.respond(request, key, lambda: payloads.lens_payload(runner, req))


@router.post("/compare", response_model=ComparePublic, responses=ERRORS)
@cacheable
async def compare(req: CompareRequest, request: Request, runner: RunnerDep):
    """The same word in 2-4 sentences: how similar its vectors are, layer by layer (identical at the
    embedding when it is the same token, diverging as context flows in)."""
    key = (req.model, "compare", tuple(req.sentences), req.word)
    return await runner.respond(request, key, lambda: payloads.compare_payload(runner, req))


@router.post("/heads", response_model=HeadsPublic, responses=ERRORS)
@cacheable
async def heads(req: HeadsRequest, request: Request, runner: RunnerDep):
    """The head finder: every head scored on simple patterns (previous token, first token, self, broad,
    induction), with the formula of each score; the text is used for all but induction."""
    key = (req.model, "heads", req.text, tuple(req.then), req.top)
    return await runner.respond(request, key, lambda: payloads.heads_payload(runner, req))


@router.post("/generate", response_model=GeneratePublic, responses=ERRORS | {
    200: {"content": {"application/x-ndjson": {}}, "description": "JSON, or with stream: one JSON line per event"}})
async def generate(req: GenerateRequest, request: Request, runner: RunnerDep):
    """Write up to max_new_tokens after the text (causal models only: not_causal otherwise), greedy or sampled,
    each token one key/value-cached step. The answer's `then`, sent with text = its `prompt` to any view
    (/api/attention, /api/predictions...), shows what the model computed at any step of the writing."""
    w = await generation.start(runner, req)
    if req.stream:
        return StreamingResponse(generation.lines(runner, w), media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    async for _ in generation.tokens(runner, w, request):
        pass
    summary = await runner.pool.run(w.summary, shed=False)  # a read of the whole text: off the event loop
    return Response(dumps(summary), media_type="application/json", headers={"Cache-Control": "no-store"})


add_get_twins(router)  # last: a GET twin for every @cacheable POST view above
