"""Tokenizers (the `tokenizers` library): from a HF tokenizer.json, or built from GGUF metadata.

Each token carries its id, its display text (what it stands for: no `Ġ`, `##` or `▁`) and its
character span [start, end) in the input.
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

from .errors import ModelLoadError


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    text: str
    start: int
    end: int


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-ins for bytes (Ġ for a space, Ċ for a newline...), inverted."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):  # bytes outside the printable ranges map to chr(256), chr(257), ...
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _show_bytes(data: bytes) -> str:
    """Bytes as text; an incomplete UTF-8 piece (half an emoji) shows as escapes like \\xf0\\x9f."""
    return data.decode("utf-8", errors="backslashreplace")


class TextTokenizer:
    """A `tokenizers.Tokenizer` plus the knowledge of how its pieces read as text."""

    def __init__(self, tk: Tokenizer):
        tk.no_padding()
        tk.no_truncation()  # we enforce our own limit, and say so, rather than cut text silently
        self.tk = tk
        spec = json.loads(tk.to_str())
        self.decoder = _decoder_kind(spec.get("decoder"))
        self.wordpiece_prefix = (spec.get("model") or {}).get("continuing_subword_prefix") or "##"
        self.special = {t.content for t in tk.get_added_tokens_decoder().values() if t.special}
        self.vocab_size = tk.get_vocab_size(with_added_tokens=True)

    def piece_text(self, piece: str) -> str:
        if piece in self.special:
            return piece
        if self.decoder == "bytelevel":
            table = byte_decoder()
            return _show_bytes(bytes(table[c] for c in piece if c in table))
        if self.decoder == "wordpiece":
            return piece[len(self.wordpiece_prefix):] if piece.startswith(self.wordpiece_prefix) else piece
        if self.decoder == "metaspace":
            if piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
                return _show_bytes(bytes([int(piece[3:5], 16)]))
            return piece.replace("▁", " ")
        return piece

    def id_text(self, i: int) -> str:
        piece = self.tk.id_to_token(int(i))
        return "" if piece is None else self.piece_text(piece)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """The text of token ids (generated text: the pieces joined, bytes decoded across pieces;
        an incomplete UTF-8 sequence at the end shows as U+FFFD until its next piece arrives)."""
        return self.tk.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def continuation(self, prompt_ids, then, offset: int = 0) -> tuple[str, list[Token]]:
        """The text the ids `then` add after prompt_ids, and their tokens with spans in it (+ offset).

        The text is decode(prompt + then) past decode(prompt), so that a piece reads as it does in
        context (a sentencepiece "▁word" keeps its space). A token's span is where the text grows when it
        is added; the byte pieces of one character (an emoji in three pieces) each span that character,
        as `tokenizers` gives offsets for pieces of a typed character."""
        prompt_ids, then = [int(i) for i in prompt_ids], [int(i) for i in then]
        base, text = self._join(prompt_ids, then)
        if base is None:  # a decoder that rewrites the join: the ids' own text
            base, prompt_ids = "", []

        def settled(k):  # characters of text fixed once then[:k] is added (an unfinished character is not)
            d = self.decode(prompt_ids + then[:k])[len(base):]
            n = 0
            for a, b in zip(d, text):
                if a != b:
                    break
                n += 1
            return n

        ends = [settled(k) for k in range(1, len(then))] + [len(text)]
        tokens, start = [], 0
        for i, end in zip(then, ends):
            piece = self.tk.id_to_token(i)
            s, e = start, end
            if e == s and piece is not None and self.piece_text(piece) and s < len(text):
                e = s + 1  # a piece of a character not yet complete: the character it is part of
            tokens.append(Token(i, "" if piece is None else self.piece_text(piece), offset + s, offset + e))
            start = end
        return text, tokens

    def continuation_text(self, prompt_ids, then) -> str:
        """The text the ids `then` add after prompt_ids (continuation's text, in one decode)."""
        return self._join([int(i) for i in prompt_ids], [int(i) for i in then])[1]

    def _join(self, prompt_ids, then) -> tuple[str | None, str]:
        base, full = self.decode(prompt_ids), self.decode(prompt_ids + then)
        return (base, full[len(base):]) if full.startswith(base) else (None, self.decode(then))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[Token]:
        enc = self.tk.encode(text, add_special_tokens=add_special_tokens)
        return [Token(i, self.piece_text(p), s, e) for i, p, (s, e) in zip(enc.ids, enc.tokens, enc.offsets)]


def _decoder_kind(dec: dict | None) -> str:
    if not dec:
        return "plain"
    kinds = [dec["type"]] + [d["type"] for d in dec.get("decoders", [])]
    if "ByteLevel" in kinds:
        return "bytelevel"
    if "WordPiece" in kinds:
        return "wordpiece"
    if "Metaspace" in kinds or "ByteFallback" in kinds or "Replace" in kinds:
        return "metaspace"
    return "plain"


# --- from files ----------------------------------------------------------------------------------

def from_hf_folder(folder: Path) -> TextTokenizer:
    f = folder / "tokenizer.json"
    if f.exists():
        try:
            return TextTokenizer(Tokenizer.from_file(str(f)))
        except Exception as e:
            raise ModelLoadError(f"cannot read {f}: {e}") from e
    if (folder / "vocab.json").exists() and (folder / "merges.txt").exists():  # GPT-2 style
        tk = Tokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tk.decoder = decoders.ByteLevel()
        return TextTokenizer(tk)
    raise ModelLoadError(f"{folder} has no tokenizer.json (nor vocab.json + merges.txt)")


# llama.cpp's pre-tokenizer names -> the regex (or splitter) the original tokenizer used
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _gguf_pre_tokenizer(pre: str):
    bytelevel = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("smollm", "starcoder", "refact", "deepseek-coder"):  # digits one by one, then GPT-2's split
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), bytelevel])
    if pre in ("llama3", "llama-bpe", "smaug-bpe"):
        return pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    if pre in ("gpt2", "gpt-2", "default"):
        return bytelevel
    raise ModelLoadError(f"GGUF pre-tokenizer {pre!r} is not supported (supported: smollm, starcoder, llama-bpe, gpt2, default)")


def from_gguf_metadata(meta: dict) -> TextTokenizer:
    if meta["model"] != "gpt2":
        raise ModelLoadError(f"GGUF tokenizer model {meta['model']!r} is not supported (only byte-level BPE, 'gpt2')")
    tokens = meta["tokens"]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in meta["merges"]]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tk.pre_tokenizer = _gguf_pre_tokenizer(meta["pre"])
    tk.decoder = decoders.ByteLevel()
    # control tokens (type 3) are matched whole, as llama.cpp and HF do
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, meta["token_type"]) if k == 3])
    if meta.get("add_bos") and meta.get("bos_id", -1) >= 0:
        from tokenizers import processors
        bos = tokens[meta["bos_id"]]
        tk.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, meta["bos_id"])])
    return TextTokenizer(tk)
