"""Colours (the same as static/js/colors.js) and token labels made safe for plotly and SVG.

A token is labelled as static/js/tokens.js labels it (token_label, token_note, legend): a byte piece
of a character by the character its pieces spell and which piece it is ("🦊 (1/3)", "1 of 3 byte
pieces of 🦊"), never by its raw bytes as escapes."""

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


def _field(t, name: str):
    """A token's field, from an app.engine Token or a dict as the API sends it (absent: None)."""
    return t.get(name) if isinstance(t, dict) else getattr(t, name, None)


def read_bytes(hexes: str) -> str:
    """Bytes given in hex ("20 F0 9F") as text: whole UTF-8 characters decoded, the bytes of an
    unfinished (or stray) one named in hex between ‹ and ›: " ‹F0 9F›"."""
    data, out, bad = bytes.fromhex(hexes), "", []
    i = 0
    while i < len(data):
        for size in (1, 2, 3, 4):
            try:
                ch = data[i:i + size].decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(ch) == 1:
                break
        else:
            bad.append(f"{data[i]:02X}")
            i += 1
            continue
        if bad:
            out, bad = out + f"\u2039{' '.join(bad)}\u203a", []
        out += ch
        i += size
    return out + (f"\u2039{' '.join(bad)}\u203a" if bad else "")


def token_label(t) -> str:
    """A token (an app.engine Token, or a dict from the API: input tokens and predicted ones) as the
    app shows it: visible(); a byte piece of a character as that character and its place ("·🦊 (1/3)");
    a predicted piece that leaves its character unfinished by its bytes ("‹F0 9F›"); a plain string
    as visible() shows it."""
    if isinstance(t, str):
        return visible(t)
    if _field(t, "char") is not None and _field(t, "pieces"):
        return f"{visible(_field(t, 'char'))} ({_field(t, 'piece')}/{_field(t, 'pieces')})"
    if _field(t, "bytes") is not None:
        return visible(read_bytes(_field(t, "bytes")))
    return visible(_field(t, "text"))


def token_note(t) -> str:
    """What a byte piece is, in words ("1 of 3 byte pieces of 🦊"); "" for a whole token."""
    if isinstance(t, str):
        return ""
    char = _field(t, "char")
    if char is not None and _field(t, "pieces"):
        return f"{_field(t, 'piece')} of {_field(t, 'pieces')} byte pieces of {visible(char.strip()) or visible(char)}"
    if _field(t, "bytes") is not None:  # a predicted piece: its character is not finished yet
        r, k = _field(t, "range"), _field(t, "piece")
        if not r:
            return f"a byte piece of a character, not text on its own (bytes {_field(t, 'bytes')})"
        which = "the first byte piece" if k == 1 else f"byte piece {k}"
        return f"{which} of a character in U+{r[0]:04X}\u2013U+{r[1]:04X}: only the tokens after it would finish it"
    return ""


def quoted(t) -> str:
    """A token in running text (static/js/tokens.js quoted()): no leading space, ‘creature’, ‘🦊 (1/3)’."""
    if isinstance(t, str) or (_field(t, "char") is None and _field(t, "bytes") is None):
        text = t if isinstance(t, str) else _field(t, "text")
        return f"\u2018{visible(text.strip()) if text.strip() else visible(text)}\u2019"
    shown = token_label(t)
    return f"\u2018{shown[1:] if shown.startswith(VISIBLE[' ']) and len(shown) > 1 else shown}\u2019"


# the marks visible() puts in a token's place, and what each stands for (static/js/tokens.js LEGEND)
LEGEND = {"\u00b7": "a space before the word", "\u23ce": "a new line", "\u21e5": "a tab", "\u240d": "a carriage return",
          "\u2400": "a NUL character"}


def legend(labels) -> str:
    """"· = a space before the word" (and ⏎ = a new line, ...) for the marks these labels show; "" if none."""
    shown = "".join(labels)
    return " · ".join(f"{mark} = {what}" for mark, what in LEGEND.items() if mark in shown)


def label(text) -> str:
    """For plotly text, ticks and hover: plotly parses a few HTML tags (<b>, <br>, <a>...) and entities,
    so <, > and & are escaped; plotly turns the entities back into the characters. text: a string, or a
    token (token_label)."""
    return html.escape(token_label(text), quote=False)
