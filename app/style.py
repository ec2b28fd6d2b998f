"""Colours (the same as static/js/colors.js) and token labels made safe for plotly and SVG."""

import html

# matplotlib's viridis, 9 anchors: the app's weight scale.
VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"]
VIRIDIS_SCALE = [[i / (len(VIRIDIS) - 1), c] for i, c in enumerate(VIRIDIS)]
# Paul Tol's muted then light palettes: one colour per head, colour-blind safe.
HEADS = ["#CC6677", "#332288", "#DDCC77", "#117733", "#88CCEE", "#882255", "#44AA99", "#999933", "#AA4499",
         "#EE8866", "#77AADD", "#BBCC33", "#FFAABB", "#99DDFF", "#44BB99", "#AAAA00"]
MASKED = "#d9d9d9"


def head_color(h: int) -> str:
    return HEADS[h % len(HEADS)]


def viridis(x: float) -> str:
    """The colour of weight x in [0, 1], interpolated between the anchors like colors.js."""
    x = min(1.0, max(0.0, float(x))) * (len(VIRIDIS) - 1)
    k = min(len(VIRIDIS) - 2, int(x))
    f = x - k
    a, b = (tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in (VIRIDIS[k], VIRIDIS[k + 1]))
    return "#" + "".join(f"{round(p + (q - p) * f):02x}" for p, q in zip(a, b))


VISIBLE = {" ": "\u00b7", "\n": "\u23ce", "\t": "\u21e5", "\r": "\u240d", "\0": "\u2400"}


def visible(text: str) -> str:
    """A token as the app shows it (static/js/tokens.js label()): a leading space as '·', newlines, tabs
    and NUL as symbols, other control characters as \\xNN, invisible and direction marks named (<U+200F>),
    never applied; the empty token as '∅'."""
    if text == "":
        return "\u2205"
    out = ""
    for ch in text:
        code = ord(ch)
        if ch in VISIBLE and not (ch == " " and out):
            out += VISIBLE[ch]
        elif code < 32 or 0x7F <= code < 0xA0:
            out += f"\\x{code:02x}"
        elif 0x200B <= code <= 0x200F or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069:
            out += f"<U+{code:04X}>"
        else:
            out += ch
    return out


def label(text: str) -> str:
    """For plotly text, ticks and hover: plotly parses a few HTML tags (<b>, <br>, <a>...) and entities,
    so <, > and & are escaped; plotly turns the entities back into the characters."""
    return html.escape(visible(text), quote=False)
