"""One text's run through one model, as the views see it: a head's pattern and scores, what it moved,
the residual geometry, and the four views as plotly figures. The server's exports and the notebook's Result
(attnscope, a subclass that adds notebook display) are both this object."""

import numpy as np
import plotly.graph_objects as go

from . import analysis, contributions, figures
from .engine import Model
from .lesson import DEFAULT_HEAD, DEFAULT_LAYER

# what a head view shows: "weight", the attention pattern (where each query looks), or "moved", the size
# of what the head carries from each key to each query, ‖pattern · (v W_O)‖₂ (app/contributions.py)
MEASURES = ("weight", "moved")


class RunView:
    """.tokens, .run (app.engine.Run: run["blocks.L.attn.hook_pattern"] is [head, query, key]); figure
    methods return plotly figures of type figure_type (a notebook subclass sets its own)."""

    figure_type = go.Figure

    def __init__(self, cached: analysis.CachedRun, text: str, layer: int | None = None, head: int | None = None):
        self.cached, self.text = cached, text
        cfg = self.model.cfg
        self.layer = min(DEFAULT_LAYER, cfg.n_layers - 1) if layer is None else layer
        self.head = min(DEFAULT_HEAD, cfg.n_heads - 1) if head is None else head
        self.check(self.layer, self.head)
        self._geometry: dict[bool, dict] = {}
        self._moved: dict[int, np.ndarray] = {}  # layer -> [head, query, key]
        self._norms: dict[int, np.ndarray] = {}  # layer -> [head, key]

    # --- data -------------------------------------------------------------------------------------
    @property
    def model(self) -> Model:
        return self.cached.model

    @property
    def run(self):
        return self.cached.run

    @property
    def tokens(self):
        return self.cached.run.tokens

    @property
    def token_texts(self) -> list[str]:
        return [t.text for t in self.tokens]

    def check(self, layer: int, head: int) -> None:
        cfg = self.model.cfg
        if not (isinstance(layer, (int, np.integer)) and 0 <= layer < cfg.n_layers):
            raise ValueError(f"layer {layer} is out of range: {self.model.id} has layers 0-{cfg.n_layers - 1}")
        if not (isinstance(head, (int, np.integer)) and 0 <= head < cfg.n_heads):
            raise ValueError(f"head {head} is out of range: {self.model.id} has heads 0-{cfg.n_heads - 1}")

    def pattern(self, layer: int, head: int) -> np.ndarray:
        """[query, key] attention weights of one head (a view of the run's capture)."""
        self.check(layer, head)
        return self.run[f"blocks.{layer}.attn.hook_pattern"][head]

    def moved(self, layer: int, head: int) -> np.ndarray:
        """[query, key] ‖pattern · (v[key] @ W_O[head])‖₂: what the head carries from each key (0 where masked)."""
        self.check(layer, head)
        if layer not in self._moved:  # one matmul for every head of the layer: the grid asks for them all
            self._moved[layer] = contributions.moved(self.cached, layer)
        return self._moved[layer][head]

    def value_norms(self, layer: int, head: int) -> np.ndarray:
        """[key] ‖v[key] @ W_O[head]‖₂: what a weight of 1 on each key would move (/api/head's v_out_norm)."""
        self.check(layer, head)
        if layer not in self._norms:
            self._norms[layer] = contributions.value_norms(self.cached, layer)
        return self._norms[layer][head]

    def values(self, layer: int, head: int, measure: str = "weight") -> np.ndarray:
        """[query, key]: the head's weights (pattern) or what it moved, by measure."""
        check_measure(measure)
        return self.pattern(layer, head) if measure == "weight" else self.moved(layer, head)

    def scores(self, layer: int, head: int) -> np.ndarray:
        """[query, key] pre-softmax scores (-inf where masked), recomputed exactly from q and k."""
        self.check(layer, head)
        return analysis.head_detail(self.cached, layer, head)["scores"]

    def geometry(self, normalize: bool = figures.EMBEDDINGS_NORMALIZE) -> dict:
        """analysis.residual_geometry; by default of unit vectors, as the /compare page and the embeddings view."""
        if normalize not in self._geometry:
            self._geometry[normalize] = analysis.residual_geometry(self.cached, normalize)
        return self._geometry[normalize]

    # --- figures (measure: "weight", where each query looks, or "moved", what the head carried) -------
    def heatmap(self, layer: int | None = None, head: int | None = None, *, measure: str = "weight"):
        return figures.heatmap(self, self.layer if layer is None else layer, self.head if head is None else head, measure)

    def grid(self, *, measure: str = "weight"):
        return figures.grid(self, measure)

    def arrows(self, layer: int | None = None, head: int | None = None, token=None, min_weight: float = 0.0, *,
               measure: str = "weight"):
        return figures.arrows(self, self.layer if layer is None else layer, self.head if head is None else head,
                              token, min_weight, measure)

    def embeddings(self, normalize: bool = figures.EMBEDDINGS_NORMALIZE):
        return figures.embeddings(self, normalize)


def check_measure(measure: str) -> None:
    if measure not in MEASURES:
        raise ValueError(f"measure {measure!r} is not one of {', '.join(MEASURES)}")
