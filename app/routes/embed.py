"""Embeds: one view per chrome-less page, driven only by its URL, made to sit in an <iframe> on
another site (the CSP allows any frame ancestor under /embed/ only), and an oEmbed 1.0 endpoint
that turns an attnscope URL (an embed, or a full page that has one) into the iframe's HTML."""

from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import QueryParams
from pydantic import ValidationError

from .. import payloads
from ..deps import RunnerDep
from ..engine import EngineError, Model
from ..http import ApiError, error_body, error_response, public_base
from ..httpcache import cached_page
from ..lesson import COMPARE_DEFAULT, DEFAULT_HEAD, DEFAULT_LAYER, LENS_SENTENCE, LESSON_SENTENCE
from ..runs import Runner
from ..payloads import GRID_POOL
from ..schemas import AttentionRequest, CompareRequest, HeadRequest, LensRequest
from ..text import parse_then, query_problem
from ..templating import EMBED_OF_PAGE, TEMPLATES
from ..vendor import plotly_url

router = APIRouter(include_in_schema=False)

VIEWS = {"arrows": "Arrows between tokens", "heatmap": "Heatmap of one head", "grid": "All heads at a glance",
         "explain": "One head, step by step", "compare": "Same word, new meaning",
         "lens": "The prediction forming, layer by layer"}
COMMON = ("model", "theme", "static")
HEAD = ("text", "then", "layer", "head", "token")  # then: ids written after the text (the explorer's generated text)
# the head views show the weights or, with measure=moved, what each head moved (as the explorer's toggle)
MEASURES = ("weight", "moved")
# the URL parameters each embed reads, in the order its URLs are written
PARAMS = {"arrows": HEAD + ("measure",) + COMMON, "heatmap": HEAD + ("measure",) + COMMON, "grid": HEAD + ("measure",) + COMMON,
          "explain": HEAD + ("step", "all") + COMMON, "compare": ("word", "sentences") + COMMON,
          "lens": ("text",) + COMMON}
PLOTLY = {"heatmap", "explain", "compare", "lens"}  # the views that draw with plotly.js
THEMES = ("auto", "light", "dark")
# default iframe sizes (CSS px) per view; the embed reports its real height to the parent page
SIZES = {"arrows": (640, 300), "heatmap": (640, 600), "grid": (640, 440), "explain": (640, 640),
         "compare": (640, 860), "lens": (640, 780)}
CACHE_AGE = 3600


class BadParam(Exception):
    """A URL parameter the embed cannot use, with a message the frame shows."""


def _int_param(q, name: str, default: int) -> int:
    value = q.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise BadParam(f"{name} must be a whole number, not {value!r}") from None


def embed_query(view: str, pairs: list[tuple[str, str]]) -> str:
    """The embed's query string from any attnscope URL's parameters: only those the view reads, in a
    fixed order (the compare page's repeated `s` are the embed's `sentences`)."""
    pairs = [("sentences" if k == "s" else k, v) for k, v in pairs if v != ""]
    upto = next((v for k, v in pairs if k == "upto"), "")
    if upto.isdigit():  # the explorer's timeline: the embed shows the ids up to the step on screen
        pairs = [(k, ",".join(v.split(",")[:int(upto)]) if k == "then" else v) for k, v in pairs]
    return urlencode([(k, v) for name in PARAMS[view] for k, v in pairs if k == name])


def embed_state(view: str, q: QueryParams, runner: Runner) -> dict:
    """The state from the URL's parameters (none: the defaults). Unlike the full pages, a bad value is
    an error shown in the frame, not a silent default: the embed's author should see what went wrong."""
    theme = q.get("theme") or "auto"
    state = {"model": q.get("model") or runner.registry.default, "theme": theme if theme in THEMES else "auto",
             "static": q.get("static") == "1"}
    if view == "compare":
        sentences = q.getlist("sentences") or q.getlist("s")
        word = q.get("word") or COMPARE_DEFAULT[0]
        if not sentences and word == COMPARE_DEFAULT[0]:
            sentences = COMPARE_DEFAULT[1]
        if not 2 <= len(sentences) <= 4:
            raise BadParam(f"compare needs 2 to 4 sentences that share the word, one &sentences=... each ({len(sentences)} given)")
        return state | {"word": word, "sentences": list(sentences)}
    text = q.get("text", LENS_SENTENCE if view == "lens" else LESSON_SENTENCE)
    state["text"] = text
    if view == "lens":
        return state
    try:
        parse_then(q.get("then"))
    except ValueError as e:
        raise BadParam(str(e)) from None
    then, upto = q.get("then") or None, q.get("upto") or ""
    if then and upto.isdigit():  # an explorer URL at a step of its timeline: the ids up to that step
        then = ",".join(then.split(",")[:int(upto)]) or None
    state["then"] = then
    # explain needs a query token: 'creature' in the lesson sentence, else the last token (-1)
    token_default = 3 if view == "explain" and text == LESSON_SENTENCE else -1
    state |= {"layer": _int_param(q, "layer", DEFAULT_LAYER), "head": _int_param(q, "head", DEFAULT_HEAD), "token": _int_param(q, "token", token_default)}
    if view == "explain":
        state |= {"step": _int_param(q, "step", 1), "all": q.get("all") == "1"}
    else:
        measure = q.get("measure") or "weight"
        if measure not in MEASURES:
            raise BadParam(f"measure must be weight (where it looks) or moved (what it moved), not {measure!r}")
        state["measure"] = measure
    return state


def n_explain_steps(model: Model) -> int:
    """static/js/views/explain.js's steps: 7, plus RoPE for rotary models (Llama, GPT-NeoX) and the mask for causal models."""
    return 7 + model.cfg.rotary + model.cfg.causal


def view_data(runner: Runner, view: str, state: dict) -> dict:
    """The view's data, built by the same functions as the API responses (so the numbers are the API's)."""
    if view != "compare" and not state["text"].strip():
        raise BadParam("the text is empty: add ?text=... to the embed's URL")
    model = runner.model(state["model"])
    if view == "compare":
        try:
            req = CompareRequest(model=model.id, sentences=state["sentences"], word=state["word"])
        except ValidationError as e:
            raise BadParam("; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())) from None
        return {"compare": payloads.compare_payload(runner, req)}
    common = {"text": state["text"], "model": model.id, **({"then": parse_then(state["then"])} if state.get("then") else {})}
    if view == "lens":
        return {"lens": payloads.lens_payload(runner, LensRequest(**common, top_k=5))}
    if view == "explain":
        data = {"head": payloads.head_payload(runner, HeadRequest(**common, layer=state["layer"], head=state["head"], detail=True))}
        tokens = data["head"]["tokens"]
        if state["token"] == -1:
            state["token"] = len(tokens) - 1
        if not 1 <= state["step"] <= n_explain_steps(model):
            raise BadParam(f"step {state['step']} is out of range: this model's explanation has steps 1-{n_explain_steps(model)}")
    elif view == "grid":
        data = {"grid": payloads.attention_payload(runner, AttentionRequest(**common, encoding="uint8", measure=state["measure"], pool=GRID_POOL))}
        payloads.check_layer(model, state["layer"])
        payloads.check_head(model, state["head"])
        tokens = data["grid"]["tokens"]
    else:
        data = {"attention": payloads.attention_payload(runner, AttentionRequest(**common, layers=[state["layer"]],
                                                                                 measure=state["measure"]))}
        payloads.check_head(model, state["head"])
        if view == "heatmap":
            data["head"] = payloads.head_payload(runner, HeadRequest(**common, layer=state["layer"], head=state["head"]))
        tokens = data["attention"]["tokens"]
    lowest = 0 if view == "explain" else -1
    if not lowest <= state["token"] < len(tokens):
        none = "" if lowest == 0 else " (-1 for none)"
        raise BadParam(f"token {state['token']} is out of range: this text has tokens 0-{len(tokens) - 1}{none}")
    return data


def page_url(base: str, view: str | None, state: dict | None) -> str:
    """The full page that shows the embed's view with its state (the explorer for the head views)."""
    if not view or not state:
        return f"{base}/"
    if view == "compare":
        return f"{base}/compare?" + urlencode([("word", state["word"]), ("model", state["model"])] + [("s", s) for s in state["sentences"]])
    keys = {"explain": ("text", "then", "model", "layer", "head", "token", "step", "all"), "lens": ("text", "model")}
    path = {"explain": "/explain", "lens": "/lens"}.get(view, "/")
    values = {**state, "all": "1" if state.get("all") else None, "measure": "moved" if state.get("measure") == "moved" else None}
    return f"{base}{path}?" + urlencode([(k, values[k]) for k in keys.get(view, HEAD + ("model", "measure"))
                                         if values.get(k) is not None])


def state_pairs(view: str, state: dict) -> list[tuple[str, str]]:
    values = {**state, "static": "1" if state.get("static") else None, "all": "1" if state.get("all") else None,
              "measure": "moved" if state.get("measure") == "moved" else None}
    return [(k, str(values[k])) for k in PARAMS[view] if k != "sentences" and values.get(k) is not None] + \
        [("sentences", s) for s in state.get("sentences", [])]


def render_embed(request: Request, view: str | None, initial: dict, status: int = 200) -> HTMLResponse:
    base = public_base(request)
    state = initial.get("state")
    context = {
        "initial": initial, "view": view, "title": VIEWS.get(view, "Not an embed"),
        "theme": (state or {}).get("theme", "auto"), "plotly": plotly_url() if view in PLOTLY else None,
        "page_url": page_url(base, view, state),
        "oembed_url": None if view not in VIEWS else f"{base}/oembed?" + urlencode(
            {"url": f"{base}/embed/{view}?{embed_query(view, state_pairs(view, state))}"}),
        "public_base": base,
    }
    return TEMPLATES.TemplateResponse(request, "embed.html", context, status_code=status)


@router.get("/embed/{view:path}", response_class=HTMLResponse)
def embed(view: str, request: Request, runner: RunnerDep):
    return cached_page(request, lambda: embed_page(view, request, runner))


def embed_page(view: str, request: Request, runner: Runner) -> HTMLResponse:
    if view not in VIEWS:
        error = {"error": "unknown_view", "detail": f"there is no embed called {view!r}: use one of {', '.join(VIEWS)}"}
        return render_embed(request, None, {"view": None, "state": None, "data": None, "error": error}, 404)
    state, data, error = None, None, None
    try:
        state = embed_state(view, request.query_params, runner)
        data = view_data(runner, view, state)
    except BadParam as e:
        error = {"error": "bad_parameter", "detail": str(e)}
    except (EngineError, ApiError) as e:
        error = error_body(e)
    if error:
        data = None
    state = state or embed_state(view, QueryParams(), runner)  # the URL could not be read: show the defaults
    models = {m["id"]: m for m in payloads.models_public(runner)}
    initial = {"view": view, "state": state, "model": models.get(state["model"]), "data": data, "error": error}
    return render_embed(request, view, initial, 422 if error else 200)


# --- oEmbed 1.0 (https://oembed.com/) --------------------------------------------------------------

def _size(q, name: str) -> int | None:
    value = q.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit() or int(value) < 1:
        raise ApiError(400, "bad_parameter", f"{name} must be a positive whole number of pixels, not {value!r}")
    return int(value)


def _attr(s: str) -> str:
    return s.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def _short(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[:n - 1] + "…"


def oembed_title(view: str, pairs: list[tuple[str, str]]) -> str:
    params = dict(pairs)
    if view == "compare":
        sentences = [v for k, v in pairs if k in ("s", "sentences")]
        word = params.get("word") or COMPARE_DEFAULT[0]
        n = len(sentences) or (len(COMPARE_DEFAULT[1]) if word == COMPARE_DEFAULT[0] else 0)
        return f"attnscope · {VIEWS[view].lower()}: “{_short(word, 40)}” in {n} sentences"
    text = params.get("text", LENS_SENTENCE if view == "lens" else LESSON_SENTENCE)
    moved = " (what it moved)" if "measure" in PARAMS[view] and params.get("measure") == "moved" else ""
    return f"attnscope · {VIEWS[view].lower()}{moved}: “{_short(text)}”"


@router.get("/oembed")
def oembed(request: Request):
    return cached_page(request, lambda: oembed_answer(request))


def oembed_answer(request: Request) -> Response:
    q = request.query_params
    fmt = q.get("format") or "json"
    if fmt != "json":
        return error_response(501, "format_not_implemented", f"format {fmt!r} is not implemented: use format=json")
    try:
        maxwidth, maxheight = _size(q, "maxwidth"), _size(q, "maxheight")
    except ApiError as e:
        return error_response(e.status, e.error, e.detail)
    url = q.get("url") or ""
    base = public_base(request)
    parts = urlsplit(url)
    ours = parts.scheme in ("http", "https") and parts.netloc == urlsplit(base).netloc
    path = parts.path or "/"
    view = EMBED_OF_PAGE.get(path) or (path.removeprefix("/embed/") if path.startswith("/embed/") else None)
    if not ours or view not in VIEWS:
        return error_response(404, "not_found", f"{url!r} is not an attnscope page or embed URL of {base}")
    if problem := query_problem(parts.query):  # the embed URL's own query, checked as Utf8Query checks ours
        return error_response(422, "invalid_text", f"url: {problem}")
    pairs = parse_qsl(parts.query)
    src = f"{base}/embed/{view}" + (f"?{query}" if (query := embed_query(view, pairs)) else "")
    width, height = SIZES[view]
    width, height = min(width, maxwidth or width), min(height, maxheight or height)
    title = oembed_title(view, pairs)
    html = (f'<iframe src="{_attr(src)}" width="{width}" height="{height}" title="{_attr(title)}" loading="lazy" '
            f'style="border:0;width:100%"></iframe>')
    return JSONResponse({"type": "rich", "version": "1.0", "title": title, "provider_name": "attnscope",
                         "provider_url": f"{base}/", "cache_age": CACHE_AGE, "html": html, "width": width, "height": height})
