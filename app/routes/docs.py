"""The HTTP API's docs at /docs (Swagger UI), served by this app so that they work offline and under
its CSP. FastAPI's own page loads Swagger UI from a CDN, which `script-src 'self'` blocks, and starts
it with an inline script, which it blocks too. The JS and CSS are the files of the PyPI package
fastapi-offline (swagger-ui-dist's bundle and CSS; we use its files only, not its FastAPI factory);
the page and its start-up script are ours, in static/docs/.

/redoc sends you to /docs: the same package ships ReDoc 2's standalone build, but that build always
loads its logo from cdn.redoc.ly (no option turns it off) and, unless search is off, starts a
worker from a blob: URL; a docs page that calls out to a CDN is what this module exists to avoid."""

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from ..http import ApiError

ROOT = Path(__file__).resolve().parents[2]
ASSETS = Path(fastapi_offline.__file__).parent / "static"
VENDORED = ("swagger-ui-bundle.js", "swagger-ui.css")

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui():
    return FileResponse(ROOT / "static" / "docs" / "swagger.html")


@router.get("/redoc")
def redoc():
    return RedirectResponse("/docs")


@router.get("/vendor/docs/{name}")
def docs_asset(name: str):
    """The package's files, revalidated on each load (ETag): a new package version shows at once."""
    if name not in VENDORED:
        raise ApiError(404, "not_found", f"no docs file {name!r} here: there are {', '.join(VENDORED)}")
    return FileResponse(ASSETS / name, headers={"Cache-Control": "no-cache"})
