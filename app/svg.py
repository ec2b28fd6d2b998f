"""A static SVG heatmap drawn here in Python: the fallback for viewers that drop scripts (GitHub)."""

from xml.sax.saxutils import escape

from .style import MASKED, viridis, visible


def heatmap_svg(tokens: list[str], z: list[list[float | None]], title: str) -> str:
    """tokens: display texts; z: [query][key] weights, None where masked."""
    n = len(tokens)
    cell = max(4, min(18, 360 // max(n, 1)))
    labels = [escape(visible(t)[:14]) for t in tokens]
    font = max(6, min(11, cell - 3))
    pad = 8 + int(font * 0.62 * max((len(visible(t)[:14]) for t in tokens), default=1))
    x0, y0 = pad, pad + 22
    w, h = x0 + n * cell + 10, y0 + n * cell + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'font-family="sans-serif" font-size="{font}">',
           f'<title>{escape(title)}</title>',
           f'<text x="4" y="14" font-size="12">{escape(title)}</text>',
           # one grey square under the cells: where two cells meet at a fractional zoom, a viewer blends their
           # anti-aliased edges with what lies beneath, which was the white page (faint lines across the
           # masked area); crispEdges snaps the cells to whole pixels
           f'<rect x="{x0}" y="{y0}" width="{n * cell}" height="{n * cell}" fill="{MASKED}"/>',
           '<g shape-rendering="crispEdges">']
    for q, row in enumerate(z):
        for k, v in enumerate(row):
            fill = MASKED if v is None else viridis(v)
            tip = "masked" if v is None else f"{v:.4f}"
            out.append(f'<rect x="{x0 + k * cell}" y="{y0 + q * cell}" width="{cell}" height="{cell}" fill="{fill}">'
                       f'<title>{labels[q]} \u2190 {labels[k]}: {tip}</title></rect>')
    out.append("</g>")
    if cell >= 8:
        for i, lab in enumerate(labels):
            c = i * cell + cell / 2
            out.append(f'<text x="{x0 - 3}" y="{y0 + c + font / 3:.1f}" text-anchor="end">{lab}</text>')
            out.append(f'<text transform="translate({x0 + c + font / 3:.1f},{y0 - 3}) rotate(-90)">{lab}</text>')
    out.append("</svg>")
    return "".join(out)
