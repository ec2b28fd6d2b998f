"""HTML pages. Jinja renders the shell; the first view's data travels inline as JSON in a
<script type="application/json"> (|tojson), so the page draws before any API round trip.

Each page's state and initial data come from its URL's query alone (PAGES: path -> its template and
the function of the query that computes them), and page_html renders a page without a request:
`attnscope pack` saves a page from these same functions. Each page is a pure function of its URL, the
models and the code: cached_page gives it an ETag, Cache-Control and 304s (app/httpcache.py)."""

import posixpath
import re
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import QueryParams

from .. import payloads
from ..analysis import token_public
from ..deps import RunnerDep
from ..engine import EngineError
from ..http import ApiError, accepts_gzip, error_body, error_response, public_base
from ..httpcache import cached_page
from ..lesson import COMPARE_DEFAULT, DEFAULT_HEAD, DEFAULT_LAYER, LENS_SENTENCE, LESSON_SENTENCE
from ..runs import Runner
from ..payloads import GRID_POOL
from ..schemas import AttentionRequest, HeadRequest, PredictionsRequest
from ..templating import EMBED_OF_PAGE, ROOT, TEMPLATES
from ..text import parse_then
from ..vendor import plotly_bundle, plotly_url

router = APIRouter(include_in_schema=False)
# an error shown inline that says nothing of the URL: the page must not be cached with it
TRANSIENT = ("model_unavailable", "overloaded")


# each page's module script (templates/*.html's block script), whose imports the page preloads
PAGE_SCRIPTS = {"explorer": "main.js", "explain": "explain.js", "compare": "compare.js", "lens": "lens.js", "lesson": "lesson.js"}
STATIC_JS = ROOT / "static" / "js"
IMPORT = re.compile(r"""(?:^|\n)\s*(?:import|export)\b[^;'"]*?["'](\.{1,2}/[\w/.-]+\.js)["']""")


@lru_cache(maxsize=None)
def module_graph(entry: str) -> tuple[str, ...]:
    """Every module static/js/entry imports, transitively (static imports; paths under static/js): the page's
    <link rel="modulepreload">s, so that the browser asks for them all at once, not one level of imports
    per round trip (the explorer's go 5 deep)."""
    seen, todo = [], [entry]
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.append(path)
        source = (STATIC_JS / path).read_text(encoding="utf-8")
        todo += [posixpath.normpath(posixpath.join(posixpath.dirname(path), m[1])) for m in IMPORT.finditer(source)]
    return tuple(seen[1:])


def context(page: str, initial: dict, query: QueryParams, plotly: str, oembed_url: str | None = None,
            public_base: str | None = None, preload: bool = True) -> dict:
    """What templates/{page}.html is rendered with. preload: link the page's modules (and, on the explorer,
    plotly.js) for preloading; not in a pack, whose modules are one bundle of classic scripts from files."""
    return {"initial": initial, "plotly": plotly, "page": page, "oembed_url": oembed_url, "public_base": public_base,
            "present": query.get("present") == "1", "preload": preload,
            "modules": module_graph(PAGE_SCRIPTS[page]) if preload and page in PAGE_SCRIPTS else ()}


def render(request: Request, page: str, initial: dict):
    """templates/{page}.html with its initial data inline and plotly.js served by us. Pages that have
    an embed carry the oEmbed discovery link for their own URL."""
    oembed = None
    if request.url.path in EMBED_OF_PAGE:
        base = public_base(request)
        here = f"{base}{request.url.path}" + (f"?{request.url.query}" if request.url.query else "")
        oembed = f"{base}/oembed?" + urlencode({"url": here, "format": "json"})
    response = TEMPLATES.TemplateResponse(request, f"{page}.html", context(page, initial, request.query_params, plotly_url(),
                                                                           oembed, public_base(request)))
    if (initial.get("error") or {}).get("error") in TRANSIENT:  # not what this URL shows once the model is back
        response.headers["Cache-Control"] = "no-store"
    return response


def page_html(page: str, initial: dict, query: QueryParams, plotly: str) -> str:
    """templates/{page}.html without a request (for `attnscope pack`): no oEmbed link, no public base,
    plotly.js from the URL given."""
    return TEMPLATES.get_template(f"{page}.html").render(context(page, initial, query, plotly, preload=False))


def with_data(runner: Runner, state: dict, build) -> dict:
    """Initial data for a page: its first view's data, or the error that prevented it (shown inline)."""
    error = data = None
    try:
        data = build()
    except (EngineError, ApiError) as e:
        error = error_body(e)
    return {"models": payloads.models_public(runner), "state": state, "data": data, "error": error}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def page_state(q: QueryParams, runner: Runner) -> dict:
    """The view state from the URL's query (every state is a permalink); bad values fall back to defaults."""
    model_id = q.get("model") if q.get("model") in runner.registry.sources else runner.registry.default
    text = q.get("text", LESSON_SENTENCE)
    return {"text": text, "model": model_id, "layer": _int(q.get("layer"), DEFAULT_LAYER), "head": _int(q.get("head"), DEFAULT_HEAD),
            "token": _int(q.get("token"), -1), "locked": q.get("locked") == "1",
            "dir": "in" if q.get("dir") == "in" else "out", "heads": q.get("heads", ""),
            "temperature": q.get("t", "1"), "off": q.get("off", ""), "offmode": "mean" if q.get("offmode") == "mean" else "zero",
            "measure": "moved" if q.get("measure") == "moved" else "weight",
            "at": q.get("at", ""), "target": q.get("target", ""), "vs": q.get("vs", ""),
            **written_state(q), **side_state(q, runner)}


def side_state(q: QueryParams, runner: Runner) -> dict:
    """The second model of the explorer's split view (`cmp`: an id, "" for none) and its layer and head
    (`cmpl`, `cmph`; the page clamps them to that model's config from the models it lists); the page
    fetches side B's data itself."""
    model_id = q.get("cmp") if q.get("cmp") in runner.registry.sources else ""
    if not model_id:
        return {"cmp": "", "cmpl": 0, "cmph": 0}
    layer, head = max(_int(q.get("cmpl"), 0), 0), max(_int(q.get("cmph"), 0), 0)
    return {"cmp": model_id, "cmpl": layer, "cmph": head}


def written_state(q: QueryParams) -> dict:
    """What was written after the text (`then`: its ids; `upto`: how many of them the views show, absent:
    all) and how (the write controls' settings), as the explorer's URL holds them; a bad value is dropped."""
    try:
        then = parse_then(q.get("then"))
    except ValueError:
        then = []
    upto = _int(q.get("upto"), -1)
    return {"then": then, "upto": upto if 0 <= upto < len(then) else -1,
            "write": {k: q.get(k, "") for k in ("n", "wt", "topk", "topp", "seed", "chat")}}


def shown_then(state: dict) -> list[int]:
    """The ids the views run after the text: the first `upto` of those written (all of them without upto)."""
    return state["then"] if state["upto"] < 0 else state["then"][:state["upto"]]


def parse_heads_off(heads_off: str) -> list[tuple[int, int]]:
    """'2.3,10.1' -> [(2, 3), (10, 1)]: the explorer's switched-off heads, as written in its URL (`off`)."""
    out = []
    for part in heads_off.split(","):
        L, _, h = part.partition(".")
        if L.isdigit() and h.isdigit():
            out.append((int(L), int(h)))
    return out


def first_view(runner: Runner, state: dict) -> dict:
    """The data the first paint needs, built by the same functions as the API responses."""
    model = runner.model(state["model"])
    state["layer"] = min(max(state["layer"], 0), model.cfg.n_layers - 1)
    state["head"] = min(max(state["head"], 0), model.cfg.n_heads - 1)
    common = {"text": state["text"], "model": model.id, "then": shown_then(state)}
    # as the page asks for them (static/js/explorer/data.js NEEDS): the layer's heads as bytes for the drawing,
    # the selected head's exact values for what the page prints
    part = "moved" if state["measure"] == "moved" else "pattern"
    data = {
        "attention": payloads.attention_payload(runner, AttentionRequest(**common, layers=[state["layer"]], encoding="uint8",
                                                                         measure=state["measure"])),
        "head": payloads.head_payload(runner, HeadRequest(**common, layer=state["layer"], head=state["head"], parts=[part])),
        "grid": payloads.attention_payload(runner, AttentionRequest(**common, encoding="uint8", measure=state["measure"], pool=GRID_POOL)),
    }
    if model.cfg.causal:
        try:
            temperature = min(max(float(state["temperature"]), 0.1), 100)
        except ValueError:
            temperature = 1.0
        data["predictions"] = payloads.predictions_payload(runner, PredictionsRequest(
            **common, top_k=10, temperature=temperature, ablate=parse_heads_off(state["off"]), ablate_mode=state["offmode"]))
    return data


def explorer_initial(runner: Runner, q: QueryParams) -> dict:
    state = page_state(q, runner)
    def build():
        data = first_view(runner, state)
        if state["then"]:  # the timeline's tokens: every written id, read (no forward pass), checked as the views are
            whole, tokens = runner.model(state["model"]).read(state["text"], state["then"])
            state["written"] = {"whole": whole, "tokens": [token_public(t) for t in tokens[len(tokens) - len(state["then"]):]]}
        return data

    return with_data(runner, state, build)


def explain_initial(runner: Runner, q: QueryParams) -> dict:
    state = page_state(q, runner)
    state |= {"step": max(0, _int(q.get("step"), 1) - 1), "all": q.get("all") == "1"}
    if q.get("token") is None:
        state["token"] = 3 if state["text"] == LESSON_SENTENCE else 10**6  # 'creature' / the last token
    def head_view():
        model = runner.model(state["model"])
        state["layer"] = min(max(state["layer"], 0), model.cfg.n_layers - 1)
        state["head"] = min(max(state["head"], 0), model.cfg.n_heads - 1)
        data = payloads.head_payload(runner, HeadRequest(text=state["text"], model=model.id, then=shown_then(state),
                                                        layer=state["layer"], head=state["head"], detail=True))
        state["token"] = min(max(state["token"], 0), len(data["tokens"]) - 1)
        if state["then"]:  # the text the sentence box shows: the text, then what the shown ids wrote
            state["shown_text"] = model.read(state["text"], shown_then(state))[0]
        return data

    return with_data(runner, state, head_view)


def lens_initial(runner: Runner, q: QueryParams) -> dict:
    model = q.get("model") if q.get("model") in runner.registry.sources else runner.registry.default
    return {"models": payloads.models_public(runner), "state": {"text": q.get("text", LENS_SENTENCE), "model": model}}


def compare_initial(runner: Runner, q: QueryParams) -> dict:
    sentences = [s for s in q.getlist("s") if s.strip()][:4]
    word = q.get("word") or COMPARE_DEFAULT[0]
    if len(sentences) < 2:
        word, sentences = (word, COMPARE_DEFAULT[1]) if word == COMPARE_DEFAULT[0] or not q.get("word") else (word, sentences + [""] * (2 - len(sentences)))
    model = q.get("model") if q.get("model") in runner.registry.sources else runner.registry.default
    return {"models": payloads.models_public(runner), "state": {"word": word, "sentences": sentences, "model": model}}


# path -> (template, initial(runner, query)): the pages whose every state is in their URL
PAGES: dict[str, tuple[str, Callable[[Runner, QueryParams], dict]]] = {
    "/": ("explorer", explorer_initial), "/explain": ("explain", explain_initial),
    "/compare": ("compare", compare_initial), "/lens": ("lens", lens_initial)}


@router.get("/", response_class=HTMLResponse)
def explorer(request: Request, runner: RunnerDep):
    return cached_page(request, lambda: render(request, "explorer", explorer_initial(runner, request.query_params)))


@router.get("/explain", response_class=HTMLResponse)
def explain(request: Request, runner: RunnerDep):
    """One head, step by step, with the real numbers (the lesson's math)."""
    return cached_page(request, lambda: render(request, "explain", explain_initial(runner, request.query_params)))


@router.get("/lens", response_class=HTMLResponse)
def lens_page(request: Request, runner: RunnerDep):
    """The logit lens and the head finder; data is fetched by the page."""
    return cached_page(request, lambda: render(request, "lens", lens_initial(runner, request.query_params)))


@router.get("/lesson", response_class=HTMLResponse)
def lesson(request: Request, runner: RunnerDep):
    """A guided lesson through the classic examples, with the live model and honest numbers."""
    return cached_page(request, lambda: render(request, "lesson", {"models": payloads.models_public(runner),
                                                                    "lesson": payloads.lesson_data(runner)}))


@router.get("/compare", response_class=HTMLResponse)
def compare(request: Request, runner: RunnerDep):
    """The same word in different sentences, layer by layer; data is fetched by the page."""
    return cached_page(request, lambda: render(request, "compare", compare_initial(runner, request.query_params)))


@router.get("/vendor/plotly-{digest}.min.js")
def plotly_js(digest: str, request: Request):
    current, raw, gz = plotly_bundle()
    if digest != current:
        return error_response(404, "not_found", f"no such plotly.js here: this server serves {plotly_url()}")
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
    if accepts_gzip(request):
        return Response(gz, media_type="text/javascript", headers=headers | {"Content-Encoding": "gzip"})
    return Response(raw, media_type="text/javascript", headers=headers)
