"""Exports: GET /export/{view}.{fmt} downloads one view of one text as a file, with the explorer's
URL parameters (text, then, model, layer, head, token, measure).

view: heatmap | grid | arrows | embeddings; fmt: html (plotly.js inline, works offline from
file://) | json | csv (app/viewdata.py's docstring is the schema). The file is made by
app/exports.py from the server's cached run, in the compute pool, like every API response. A file is a
pure function of its URL, the model's weights and the code: ETag, Cache-Control, 304 (app/httpcache.py)."""

import gzip
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .. import exports
from ..deps import RunnerDep
from ..engine import EngineError
from ..http import GZIP_MIN_BYTES, ApiError, accepts_gzip, gzip_level
from ..httpcache import canonical_query, finish, model_tag, not_modified
from ..lesson import DEFAULT_HEAD, DEFAULT_LAYER, LESSON_SENTENCE
from ..payloads import check_head, check_layer
from ..runs import Runner
from ..runview import RunView
from ..text import parse_then

# Not in the OpenAPI schema, like the pages and embeds (tests/test_fuzz.py checks that the schema is the
# JSON API exactly); the endpoint is documented in the README.
router = APIRouter(include_in_schema=False)

# The HTML carries inline scripts (plotly.js and the figure). Opened from this server's URL it must
# not run them on our origin: `sandbox` puts it in an opaque origin with scripts off. The app's own
# CSP (app/security.py) is sent too; browsers enforce both, so the result is only ever stricter.
HTML_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:"


def _export(runner: Runner, view: str, fmt: str, text: str, then: list[int], model_id: str | None, layer: int, head: int,
            token: int | None, measure: str, want_gz: bool) -> tuple[bytes, str, str, bool]:
    """Blocking (compute pool): (body, media type, file name, gzipped)."""
    model = runner.model(model_id)
    check_layer(model, layer)
    check_head(model, head)
    cached = runner.run(model, text, then)
    text = cached.run.text  # with `then`: the text followed by what the ids wrote
    n = len(cached.run.tokens)
    if token is not None and not -1 <= token < n:
        raise ApiError(422, "out_of_range", f"token {token} is out of range: this text has tokens 0-{n - 1} (-1 for none)",
                       n_tokens=n)
    result = RunView(cached, text, layer, head)
    query = None if token in (None, -1) else token  # arrows with no focused token: the last one
    try:
        body, media = exports.export(result, view, fmt, layer, head, query, measure)
    except exports.ExportTooLarge as e:
        raise ApiError(422, "export_too_large", str(e)) from None
    name = exports.filename(result, view, fmt, layer, head, query, measure)
    if want_gz and len(body) >= GZIP_MIN_BYTES:  # here, not in the middleware: a 5 MB page would block the event loop
        return gzip.compress(body, gzip_level(len(body)), mtime=0), media, name, True
    return body, media, name, False


@router.get("/export/{name}", response_class=Response)
async def export(name: str, request: Request, runner: RunnerDep,
                 text: str = LESSON_SENTENCE, model: str | None = None, layer: int = DEFAULT_LAYER, head: int = DEFAULT_HEAD,
                 token: int | None = None, measure: Literal["weight", "moved"] = "weight", then: str = ""):
    """One view as a file to download. text/model/layer/head as in the explorer's URL (defaults: the
    lesson sentence, the default model, DEFAULT_LAYER and DEFAULT_HEAD: layer 2, head 3); token: arrows' query token (-1 or absent:
    the last), checked against the text for every view; measure: weight (the attention weights) or moved
    (what each head carried, ‖weight · v W_O‖₂: heatmap, grid and arrows; the embeddings are a 422); then: the
    ids written after the text, comma-separated (the explorer's generated text, run as written)."""
    view, _, fmt = name.rpartition(".")
    if view not in exports.VIEWS or fmt not in exports.FORMATS:
        raise ApiError(404, "unknown_export", f"there is no export {name!r}: use /export/{{view}}.{{fmt}} with view one of "
                       f"{', '.join(exports.VIEWS)} and fmt one of {', '.join(exports.FORMATS)}",
                       views=list(exports.VIEWS), formats=list(exports.FORMATS))
    model_id = runner.registry.resolve(model)
    tag = await model_tag(request, runner.versions, model_id, canonical_query(request.url.query))
    max_age = runner.settings.cache_max_age
    if (unchanged := not_modified(request, tag, max_age)) is not None:  # before any work: the file would be the same
        return unchanged
    try:
        ids = parse_then(then)
    except ValueError as e:
        raise ApiError(422, "bad_parameter", str(e)) from None
    try:
        exports.check_view(view, measure)  # before any run: there is nothing to compute for a file we will not make
    except exports.NotApplicable as e:
        raise ApiError(422, "not_applicable", str(e), views=list(exports.HEAD_VIEWS)) from None
    try:
        body, media, filename, gz = await runner.pool.run(_export, runner, view, fmt, text, ids, model, layer, head, token,
                                                       measure, accepts_gzip(request))
    except (EngineError, ApiError):
        raise
    except ValueError as e:  # a parameter the figure or data code refused: the client's mistake, said plainly
        raise ApiError(422, "bad_parameter", str(e)) from None
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Vary": "Accept-Encoding"}
    if gz:
        headers["Content-Encoding"] = "gzip"
    if fmt == "html":
        headers["Content-Security-Policy"] = HTML_CSP
    return finish(request, Response(body, media_type=media, headers=headers), tag, max_age)
