"""attnscope.run(text) -> Result: one forward pass kept, views as plotly figures, notebook display."""

import html
import threading

import numpy as np

from app import analysis, figures
from app.engine import Model, Registry
from app.runview import RunView
from app.settings import Settings
from app.style import legend, quoted, token_label, token_note
from app.svg import heatmap_svg

from .display import Figure, figure_html

_registries: dict[str, Registry] = {}
_lock = threading.Lock()


def registry(cache_dir=None) -> Registry:
    """One registry (and so one loaded copy of each model) per weight cache directory, made with the
    server's settings (app.settings.Settings: ATTNSCOPE_MODELS, _DEFAULT_MODEL, _MAX_TOKENS, _CACHE_DIR)."""
    settings = Settings()
    cache_dir = cache_dir or settings.cache_dir or None
    key = str(cache_dir)
    with _lock:
        if key not in _registries:
            _registries[key] = Registry.from_env(settings.models, cache_dir=cache_dir, default=settings.default_model,
                                                 max_tokens=settings.max_tokens, memory_budget_mb=settings.memory_budget_mb)
            _registries[key].prepare(progress=True)  # Hugging Face ids named in ATTNSCOPE_MODELS
        return _registries[key]


def run(text: str, model: str | Model | None = None, cache_dir=None, *,
        layer: int | None = None, head: int | None = None) -> "Result":
    """Run `text` through `model` (an id, a loaded app.engine.Model, or None: the default model) once and
    keep every capture. layer/head: the head shown when the result itself is displayed (default: app.lesson's)."""
    m = model if isinstance(model, Model) else registry(cache_dir).get(model)
    return Result(analysis.full_run(m, text), text, layer, head)


class Result(RunView):
    """One text through one model (app.runview.RunView: .tokens, .run, .pattern(), .moved(), the figure
    methods, each with measure="weight" or "moved"), with notebook display; its figures are
    display.Figure, plain plotly figures that render offline."""

    figure_type = Figure

    # --- display ----------------------------------------------------------------------------------
    def summary(self, layer: int | None = None, head: int | None = None, token=None, *, measure: str = "weight") -> str:
        """e.g. "layer 2, head 3: 'creature' attends most to 'blue' (0.41)" (the last token by default);
        measure="moved": "... 'creature' takes most from 'blue' (moved 1.2345, weight 0.41)"."""
        layer = self.layer if layer is None else layer
        head = self.head if head is None else head
        q = figures.resolve_token(self, token)
        row = self.values(layer, head, measure)[q]
        k = int(np.argmax(row))
        show = lambda i: repr(quoted(self.tokens[i])[1:-1])  # noqa: E731  ('creature'; a byte piece: '🦊 (1/3)')
        who = "itself" if k == q else show(k)
        if measure == "moved":
            return (f"layer {layer}, head {head}: {show(q)} takes most from {who} "
                    f"(moved {row[k]:.4f}, weight {self.pattern(layer, head)[q, k]:.2f})")
        return f"layer {layer}, head {head}: {show(q)} attends most to {who} ({row[k]:.2f})"

    def __repr__(self) -> str:
        return (f"attnscope.Result: {self.model.id}, {len(self.tokens)} tokens\n"
                f"tokens: {self.token_texts!r}\n{self.summary()}")

    def svg(self, layer: int | None = None, head: int | None = None) -> str:
        """A static SVG heatmap of one head (no scripts)."""
        layer = self.layer if layer is None else layer
        head = self.head if head is None else head
        return heatmap_svg(self.tokens, figures.masked_pattern(self, layer, head),
                           f"{self.model.id}: layer {layer}, head {head}")

    def _repr_html_(self) -> str:
        chips = "".join(f'<span title="token {i}, id {t.id}{html.escape(chr(10) + token_note(t)) if t.pieces else ""}" '
                        f'style="display:inline-block;margin:2px;padding:1px 5px;'
                        f'border:1px solid #bbb;border-radius:4px;font-family:monospace;white-space:pre">'
                        f"{html.escape(token_label(t))}</span>" for i, t in enumerate(self.tokens))
        marks = legend([token_label(t) for t in self.tokens])  # "· = a space before the word"
        marks = f'<div style="color:#60656f;font-size:smaller">{html.escape(marks)}</div>' if marks else ""
        return (f'<div class="attnscope-result"><div><b>{html.escape(self.model.id)}</b>, {len(self.tokens)} tokens: '
                f"{chips}</div>{marks}<p>{html.escape(self.summary())}</p>{figure_html(self.heatmap())}</div>")

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = {"text/plain": repr(self), "text/html": self._repr_html_(), "image/svg+xml": self.svg()}
        if include:
            bundle = {k: v for k, v in bundle.items() if k in include}
        if exclude:
            bundle = {k: v for k, v in bundle.items() if k not in exclude}
        return bundle
