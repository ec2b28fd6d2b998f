"""Embeds: one view (arrows, heatmap or grid) per chrome-less page, driven only by its URL, made
to sit in an <iframe> on another site (the CSP allows any frame ancestor under /embed/ only), and
an oEmbed 1.0 endpoint that turns an attnscope URL into the iframe's HTML."""

from urllib.parse import urlencode, urlsplit, parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..engine import EngineError
from ..http import Api, ApiError, error_body, error_response
from ..schemas import LESSON_SENTENCE, AttentionRequest, HeadRequest
from . import api as api_routes
from .pages import TEMPLATES, models_public, plotly_url

router = APIRouter(include_in_schema=False)

VIEWS = {"arrows": "Arrows between tokens", "heatmap": "Heatmap of one head", "grid": "All heads at a glance"}
PARAMS = ("text", "model", "layer", "head", "token", "theme", "static")
THEMES = ("auto", "light", "dark")
# default iframe sizes (CSS px) per view; the embed reports its real height to the parent page
SIZES = {"arrows": (640, 300), "heatmap": (640, 600), "grid": (640, 440)}
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


def embed_query(params: dict) -> str:
    """The embed's query string: only the parameters it reads, in a fixed order."""
    return urlencode([(k, params[k]) for k in PARAMS if params.get(k) not in (None, "")])


def embed_state(request: Request, api: Api) -> dict:
    """The state from the URL. Unlike the explorer, a bad value is an error shown in the frame,
    not a silent default: the embed's author should see what went wrong."""
    q = request.query_params
    theme = q.get("theme") or "auto"
    state = {"text": q.get("text", LESSON_SENTENCE), "model": q.get("model") or api.registry.default,
             "theme": theme if theme in THEMES else "auto", "static": q.get("static") == "1",
             "layer": 2, "head": 3, "token": -1}
    state["layer"] = _int_param(q, "layer", 2)
    state["head"] = _int_param(q, "head", 3)
    state["token"] = _int_param(q, "token", -1)
    return state


def view_data(api: Api, view: str, state: dict) -> dict:
    """The view's data, built by the same functions as the API responses (so the numbers are the API's)."""
    if not state["text"].strip():
        raise BadParam("the text is empty: add ?text=... to the embed's URL")
    model = api.model(state["model"])
    common = {"text": state["text"], "model": model.id}
    if view == "grid":
        data = {"grid": api_routes.attention_payload(api, AttentionRequest(**common, encoding="uint8"))}
        api_routes.check_layer(model, state["layer"])
        api_routes.check_head(model, state["head"])
        tokens = data["grid"]["tokens"]
    else:
        data = {"attention": api_routes.attention_payload(api, AttentionRequest(**common, layers=[state["layer"]]))}
        api_routes.check_head(model, state["head"])
        if view == "heatmap":
            data["head"] = api_routes.head_payload(api, HeadRequest(**common, layer=state["layer"], head=state["head"]))
        tokens = data["attention"]["tokens"]
    if not -1 <= state["token"] < len(tokens):
        raise BadParam(f"token {state['token']} is out of range: this text has tokens 0-{len(tokens) - 1} (-1 for none)")
    return data


def render_embed(request: Request, view: str | None, initial: dict, status: int = 200) -> HTMLResponse:
    base = str(request.base_url).rstrip("/")
    state = initial.get("state") or {}
    query = embed_query({**state, "static": "1" if state.get("static") else None}) if state else ""
    explorer_query = urlencode([(k, state[k]) for k in ("text", "model", "layer", "head", "token") if k in state])
    context = {
        "initial": initial, "view": view, "title": VIEWS.get(view, "Not an embed"), "theme": state.get("theme", "auto"),
        "plotly": plotly_url() if view == "heatmap" else None,
        "explorer_url": f"{base}/?{explorer_query}" if explorer_query else f"{base}/",
        "oembed_url": f"{base}/oembed?" + urlencode({"url": f"{base}/embed/{view}?{query}"}) if view in VIEWS else None,
    }
    return TEMPLATES.TemplateResponse(request, "embed.html", context, status_code=status)


@router.get("/embed/{view:path}", response_class=HTMLResponse)
def embed(view: str, request: Request):
    api: Api = request.app.state.api
    if view not in VIEWS:
        error = {"error": "unknown_view", "detail": f"there is no embed called {view!r}: use one of {', '.join(VIEWS)}"}
        return render_embed(request, None, {"view": None, "state": None, "data": None, "error": error}, 404)
    state, data, error = None, None, None
    try:
        state = embed_state(request, api)
        data = view_data(api, view, state)
    except BadParam as e:
        error = {"error": "bad_parameter", "detail": str(e)}
    except (EngineError, ApiError) as e:
        error = error_body(e)
    if state is None:  # the URL could not even be read: show the error with the default state
        state = {"text": LESSON_SENTENCE, "model": api.registry.default, "theme": "auto", "static": False,
                 "layer": 2, "head": 3, "token": -1}
    models = {m["id"]: m for m in models_public(api)}
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


@router.get("/oembed")
def oembed(request: Request):
    q = request.query_params
    fmt = q.get("format") or "json"
    if fmt != "json":
        return error_response(501, "format_not_implemented", f"format {fmt!r} is not implemented: use format=json")
    try:
        maxwidth, maxheight = _size(q, "maxwidth"), _size(q, "maxheight")
    except ApiError as e:
        return error_response(e.status, e.error, e.detail)
    url = q.get("url") or ""
    base = str(request.base_url).rstrip("/")
    parts = urlsplit(url)
    ours = parts.scheme in ("http", "https") and parts.netloc == urlsplit(base).netloc
    path = parts.path or "/"
    view = "heatmap" if path == "/" else path.removeprefix("/embed/") if path.startswith("/embed/") else None
    if not ours or view not in VIEWS:
        return error_response(404, "not_found", f"{url!r} is not an attnscope explorer or embed URL of {base}")
    params = dict(parse_qsl(parts.query))
    src = f"{base}/embed/{view}" + (f"?{query}" if (query := embed_query(params)) else "")
    width, height = SIZES[view]
    if maxwidth:
        width = min(width, maxwidth)
    if maxheight:
        height = min(height, maxheight)
    text = params.get("text", LESSON_SENTENCE)
    title = f"attnscope · {VIEWS[view].lower()}: “{text if len(text) <= 80 else text[:79] + '…'}”"
    html = (f'<iframe src="{_attr(src)}" width="{width}" height="{height}" title="{_attr(title)}" loading="lazy" '
            f'style="border:0;width:100%"></iframe>')
    return {"type": "rich", "version": "1.0", "title": title, "provider_name": "attnscope", "provider_url": f"{base}/",
            "cache_age": CACHE_AGE, "html": html, "width": width, "height": height}
