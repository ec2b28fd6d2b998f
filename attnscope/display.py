"""Notebook display without require.js or a CDN: plotly.js inline in the first output of the kernel,
a unique element id in every output, so the same figure can be shown twice."""

import uuid

import plotly.graph_objects as go

# plotly.js (4.8 MB) is put inline in the first HTML this kernel renders only; later outputs reuse
# window.Plotly. Set attnscope.display.INLINE_PLOTLYJS = "always" to make every output standalone
# (e.g. before clearing and re-running cells out of order in a notebook you will save).
INLINE_PLOTLYJS = "once"
_state = {"plotlyjs_sent": False}


def figure_html(fig: go.Figure) -> str:
    include = INLINE_PLOTLYJS == "always" or not _state["plotlyjs_sent"]
    out = go.Figure.to_html(fig, full_html=False, include_plotlyjs=include, div_id=f"attnscope-{uuid.uuid4().hex}",
                            config={"responsive": True, "displaylogo": False})
    _state["plotlyjs_sent"] = _state["plotlyjs_sent"] or include
    return out


class Figure(go.Figure):
    """A plain plotly figure (show, write_html, update_layout... unchanged) whose notebook output also
    carries offline text/html and a short text/plain next to plotly's own mimetype."""

    # plotly displays figures itself (display_data with its renderer's types only, often just its
    # JSON mimetype, which nothing but JupyterLab's extension draws); None lets IPython use the
    # mimebundle below as the cell's result. fig.show() still goes through plotly's renderers.
    _ipython_display_ = None

    def _repr_mimebundle_(self, include=None, exclude=None, validate=True, **kwargs):
        bundle = dict(super()._repr_mimebundle_(include, exclude, validate, **kwargs) or {})
        bundle["text/html"] = figure_html(self)
        title = self.layout.title.text or "figure"
        bundle["text/plain"] = f"attnscope plotly figure: {title} (.show(), .write_html(path))"
        if include:
            bundle = {k: v for k, v in bundle.items() if k in include}
        if exclude:
            bundle = {k: v for k, v in bundle.items() if k not in exclude}
        return bundle
