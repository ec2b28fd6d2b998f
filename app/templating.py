"""The jinja environment every HTML router renders with, and which full pages have an embed."""

from pathlib import Path

from fastapi.templating import Jinja2Templates

from .http import dumps

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = Jinja2Templates(directory=ROOT / "templates")
# |tojson with orjson (numpy arrays, speed); jinja still escapes <, >, & and ' for the HTML context
TEMPLATES.env.policies["json.dumps_function"] = lambda obj, **_: dumps(obj).decode()

# the full pages that have an embed (/embed/{view}), for oEmbed discovery and the Embed button
EMBED_OF_PAGE = {"/": "heatmap", "/explain": "explain", "/compare": "compare", "/lens": "lens"}
