"""A static SVG heatmap drawn here in Python: the fallback for viewers that drop scripts (GitHub)."""

from xml.sax.saxutils import escape

from .style import MASKED, legend, token_label, token_note, viridis


def heatmap_svg(tokens: list, z: list[list[float | None]], title: str) -> str:
    """tokens: the run's tokens (or their texts); z: [query][key] weights, None where masked."""
    n = len(tokens)
    cell = max(4, min(18, 360 // max(n, 1)))
    shown = [token_label(t)[:14] for t in tokens]
    labels = [escape(s) for s in shown]
    notes = [escape(f" ({token_note(t)})") if token_note(t) else "" for t in tokens]  # what a byte piece is, on hover
    font = max(6, min(11, cell - 3))
    pad = 8 + int(font * 0.62 * max((len(s) for s in shown), default=1))
    marks = legend(shown)  # "· = a space before the word", under the title, when a label shows one
    x0, y0 = pad, pad + 22 + (14 if marks else 0)
    w, h = x0 + n * cell + 10, y0 + n * cell + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'font-family="sans-serif" font-size="{font}">',
           f'<title>{escape(title)}</title>',
           f'<text x="4" y="14" font-size="12">{escape(title)}</text>',
           *([f'<text x="4" y="30" font-size="10" fill="#60656f">{escape(marks)}</text>'] if marks else []),
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
                       f'<title>{labels[q]}{notes[q]} \u2190 {labels[k]}{notes[k]}: {tip}</title></rect>')
    out.append("</g>")
    if cell >= 8:
        for i, lab in enumerate(labels):
            c = i * cell + cell / 2
            out.append(f'<text x="{x0 - 3}" y="{y0 + c + font / 3:.1f}" text-anchor="end">{lab}</text>')
            out.append(f'<text transform="translate({x0 + c + font / 3:.1f},{y0 - 3}) rotate(-90)">{lab}</text>')
    out.append("</svg>")
    return "".join(out)
