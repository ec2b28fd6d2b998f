// How tokens read on screen. A token's text may start with a space, be a newline, or be an
// incomplete piece of a character (shown by the server as \xNN escapes).

const VISIBLE = { " ": "·", "\n": "⏎", "\t": "⇥", "\r": "␍", "\u0000": "␀" };

// Short label for chips and axes: leading space shown as a subtle dot, control characters visible.
export function label(text) {
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

// plotly interprets a few HTML-like tags in text; entities keep every character literal.
export function plotlySafe(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

// Quoted token for sentences: 'creature'
export const quoted = (text) => `‘${text.trim() ? label(text.trim()) : label(text)}’`;
