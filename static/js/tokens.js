// How tokens read on screen. A token's text may start with a space, be a newline, or be a byte
// piece of a character (a byte-level tokenizer cuts an emoji or a CJK character into pieces that are
// not UTF-8 on their own): the server then says which character (char) and which piece of how many
// (piece, pieces), or, for a predicted piece whose character is not finished, its bytes (bytes, range).
// app/style.py's token_label / token_note / legend do the same for figures, the CLI and notebooks.

const VISIBLE = { " ": "·", "\n": "⏎", "\t": "⇥", "\r": "␍", "\u0000": "␀" };
// what each mark stands for: the legend under the views that show them
const LEGEND = { "·": "a space before the word", "⏎": "a new line", "⇥": "a tab", "␍": "a carriage return", "␀": "a NUL character" };

// A string as a label: leading space shown as a subtle dot, control characters visible.
function visible(text) {
  if (text === "") return "∅";
  let out = "";
  for (const ch of text) {
    const code = ch.codePointAt(0);
    if (VISIBLE[ch] !== undefined && !(ch === " " && out !== "")) out += VISIBLE[ch];
    else if (code < 32 || (code >= 0x7f && code < 0xa0)) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else if ((code >= 0x200b && code <= 0x200f) || (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069))
      out += `<U+${code.toString(16).toUpperCase()}>`;  // invisible / direction marks: name them, never apply them
    else out += ch;
  }
  return out;
}

const strict = new TextDecoder("utf-8", { fatal: true });

// Bytes in hex ("20 F0 9F") as text: whole UTF-8 characters decoded, the bytes of an unfinished (or
// stray) character named between ‹ and ›: " ‹F0 9F›".
export function readBytes(hex) {
  const parts = hex.split(" ").filter(Boolean).map((h) => h.toUpperCase());
  const data = parts.map((h) => parseInt(h, 16));
  let out = "", bad = [];
  const flush = () => { if (bad.length) out += `‹${bad.join(" ")}›`; bad = []; };
  for (let i = 0; i < data.length;) {
    let ch = null, size = 1;
    for (; size <= 4 && i + size <= data.length && ch === null; size++) {
      try { ch = strict.decode(new Uint8Array(data.slice(i, i + size))); } catch { ch = null; }
    }
    if (ch === null) { bad.push(parts[i]); i += 1; continue; }
    flush();
    out += ch;
    i += size - 1;
  }
  flush();
  return out;
}

const isPiece = (t) => t && typeof t === "object" && t.char !== undefined && t.char !== null && t.pieces;
const isBytes = (t) => t && typeof t === "object" && t.bytes !== undefined && t.bytes !== null;

// A token's short label for chips, axes and lists. t: a token object (the API's input tokens and
// predicted ones) or a string. A byte piece reads as its character and its place, "🦊 (1/3)"; a
// predicted piece whose character is not finished as its bytes, "‹F0 9F›"; never "\xf0\x9f".
export function label(t) {
  if (typeof t === "string") return visible(t);
  if (isPiece(t)) return `${visible(t.char)} (${t.piece}/${t.pieces})`;
  if (isBytes(t)) return visible(readBytes(t.bytes));
  return visible(t.text);
}

const hex = (n) => n.toString(16).toUpperCase().padStart(4, "0");

// What a byte piece is, in words, for hover notes and titles ("1 of 3 byte pieces of 🦊"); "" for a whole token.
export function note(t) {
  if (isPiece(t)) return `${t.piece} of ${t.pieces} byte pieces of ${visible(t.char.trim()) || visible(t.char)}`;
  if (isBytes(t)) {
    if (!t.range) return `a byte piece of a character, not text on its own (bytes ${t.bytes})`;
    const which = t.piece === 1 ? "the first byte piece" : `byte piece ${t.piece}`;
    return `${which} of a character in U+${hex(t.range[0])}–U+${hex(t.range[1])}: only the tokens after it would finish it`;
  }
  return "";
}

// A label of at most max characters (an ellipsis marks a cut); a byte piece keeps its place: "🦊 1/3".
export function shortLabel(t, max) {
  const cut = (s, n) => ([...s].length > n ? `${[...s].slice(0, Math.max(1, n - 1)).join("")}…` : s);
  if (!isPiece(t)) return cut(label(t), max);
  const place = `${t.piece}/${t.pieces}`;
  return `${cut(visible(t.char), Math.max(2, max - place.length - 1))} ${place}`;
}

// A label with its note in brackets, for hover boxes and sentences that have room: "🦊 (1/3): 1 of 3 byte pieces of 🦊".
export const described = (t) => (note(t) ? `${label(t)}: ${note(t)}` : label(t));

// plotly interprets a few HTML-like tags in text; entities keep every character literal.
export function plotlySafe(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

// Quoted token for sentences: 'creature' (no leading space), '🦊 (1/3)'.
export function quoted(t) {
  if (typeof t === "string" || (!isPiece(t) && !isBytes(t))) {
    const text = typeof t === "string" ? t : t.text;
    return `‘${text.trim() ? visible(text.trim()) : visible(text)}’`;
  }
  const shown = label(t);
  return `‘${shown.startsWith("·") && shown.length > 1 ? shown.slice(1) : shown}’`;
}

// "· = a space before the word" (and "⏎ = a new line", ...) for the marks these tokens' labels show; "" if none.
// tokens: token objects or strings (labels already made count as they are).
export function legend(tokens) {
  const shown = tokens.map((t) => (typeof t === "string" ? t : label(t))).join("");
  return Object.entries(LEGEND).filter(([mark]) => shown.includes(mark)).map(([mark, what]) => `${mark} = ${what}`).join(" · ");
}

// The legend as a small line right after element (made once, then kept up to date; hidden when no mark shows).
export function legendAfter(element, tokens) {
  let p = element.nextElementSibling;
  if (!p?.classList.contains("token-legend")) {
    p = document.createElement("p");
    p.className = "token-legend view";  // a view's part: hidden and dimmed with it
    element.after(p);
  }
  p.textContent = legend(tokens);
  p.hidden = p.textContent === "";
  return p;
}
