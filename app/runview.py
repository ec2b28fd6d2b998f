"""One text's run through one model, as the views see it: a head's pattern and scores, the residual
geometry, and the four views as plotly figures. The server's exports and the notebook's Result
(attnscope, a subclass that adds notebook display) are both this object."""

import numpy as np
import plotly.graph_objects as go

from . import analysis, figures
from .engine import Model
from .lesson import DEFAULT_HEAD, DEFAULT_LAYER


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

    def scores(self, layer: int, head: int) -> np.ndarray:
        """[query, key] pre-softmax scores (-inf where masked), recomputed exactly from q and k."""
        self.check(layer, head)
        return analysis.head_detail(self.cached, layer, head)["scores"]

    def geometry(self, normalize: bool = False) -> dict:
        if normalize not in self._geometry:
            self._geometry[normalize] = analysis.residual_geometry(self.cached, normalize)
        return self._geometry[normalize]

    # --- figures ----------------------------------------------------------------------------------
    def heatmap(self, layer: int | None = None, head: int | None = None):
        return figures.heatmap(self, self.layer if layer is None else layer, self.head if head is None else head)

    def grid(self):
        return figures.grid(self)

    def arrows(self, layer: int | None = None, head: int | None = None, token=None, min_weight: float = 0.0):
        return figures.arrows(self, self.layer if layer is None else layer, self.head if head is None else head,
                              token, min_weight)

    def embeddings(self, normalize: bool = False):
        return figures.embeddings(self, normalize)
