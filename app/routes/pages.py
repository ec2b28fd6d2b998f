"""HTML pages (jinja2 renders the shell; data travels as JSON in a script tag)."""

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ..deps import RegistryDep

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[2] / "templates")

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request, registry: RegistryDep):
    loaded = set(registry.loaded())
    models = [{"id": s.id, "name": s.name, "loaded": s.id in loaded, "default": s.id == registry.default,
               **({"info": registry.get(s.id).info()} if s.id in loaded else {})}
              for s in registry.available()]
    return TEMPLATES.TemplateResponse(request, "index.html", {"models": models})
