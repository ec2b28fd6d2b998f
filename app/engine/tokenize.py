"""Tokenizers (the `tokenizers` library): from a HF tokenizer.json, or built from GGUF metadata.

Each token carries its id, its display text (what it stands for: no `Ġ`, `##` or `▁`) and its
character span [start, end) in the input. A byte-level tokenizer may cut one character (an emoji, a CJK
character) into pieces that are not UTF-8 on their own (SmolLM2: "🦊" is ' \\xf0\\x9f', '\\xa6', '\\x8a');
each such piece also carries the character its group of pieces spells (`char`) and which piece of how
many it is (`piece`, `pieces`), read from the pieces' bytes.
"""

import codecs
import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

from .errors import ModelLoadError


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    text: str
    start: int
    end: int
    # a piece of a character cut into byte pieces: what the group of pieces spells (a leading space
    # kept if the first piece has one), and this piece's place in it (1-based) of how many; else None, 0, 0
    char: str | None = None
    piece: int = 0
    pieces: int = 0


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


def continues(data: bytes) -> bool:
    """Whether data starts inside a character: with a UTF-8 continuation byte (10xxxxxx)."""
    return bool(data) and 0x80 <= data[0] < 0xC0


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def ends_inside(data: bytes) -> bool:
    """Whether data stops inside a character: its last lead byte lacks continuation bytes, or it holds
    continuation bytes only (their lead byte was dropped: see character_groups)."""
    k = len(data)
    while k > 0 and continues(data[k - 1:k]):
        k -= 1
    if k == 0:
        return bool(data)
    lead = data[k - 1]
    size = 2 if 0xC0 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4 if 0xF0 <= lead < 0xF8 else 1
    return len(data) - (k - 1) < size


def character_groups(data: list[bytes]) -> list[range]:
    """The tokens (by their bytes, in order) in runs that start and end on character boundaries: a
    token joins the run before it when it starts inside a character (with a continuation byte,
    10xxxxxx) and the run stops inside one. Exact for UTF-8 text; a byte the vocabulary lacks is
    dropped by the tokenizer (SmolLM2 has no 0xF1, 0xF2), and the continuation bytes it leaves join
    each other but never a whole token before them. A run of one is an ordinary token (or a lone
    piece); a longer run holds the pieces of one character (or of several adjacent ones cut across:
    "🦊🦊" as ' \\xf0\\x9f\\xa6', '\\x8a\\xf0\\x9f\\xa6', '\\x8a')."""
    groups, start = [], 0
    for i in range(1, len(data) + 1):
        if i == len(data) or not (continues(data[i]) and ends_inside(b"".join(data[start:i]))):
            groups.append(range(start, i))
            start = i
    return groups


def code_point_range(data: bytes) -> tuple[int, int] | None:
    """The code points the unfinished character at the end of data can be: its lead byte and the
    continuation bytes after it fix the high bits (F0 9F: U+1F000-U+1FFFF). None if data ends on a
    whole character or holds no lead byte for its last one."""
    k = len(data)
    while k > 0 and continues(data[k - 1:k]):
        k -= 1
    if k == 0:
        return None
    lead, known = data[k - 1], data[k:]
    size = 2 if 0xC2 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4 if 0xF0 <= lead < 0xF5 else 0
    if not size or len(known) >= size - 1:
        return None
    value = lead & (0x7F >> size)
    for b in known:
        value = value << 6 | b & 0x3F
    free = 6 * (size - 1 - len(known))
    return value << free, (value << free) | ((1 << free) - 1)


class TextTokenizer:
    """A `tokenizers.Tokenizer` plus the knowledge of how its pieces read as text."""

    def __init__(self, tk: Tokenizer):
        tk.no_padding()
        tk.no_truncation()  # we enforce our own limit, and say so, rather than cut text silently
        spec = json.loads(tk.to_str())
        if _untrim_offsets(spec.get("post_processor")):
            tk = Tokenizer.from_str(json.dumps(spec))
        self.tk = tk
        self.decoder = _decoder_kind(spec.get("decoder"))
        self.wordpiece_prefix = (spec.get("model") or {}).get("continuing_subword_prefix") or "##"
        self.special = {t.content for t in tk.get_added_tokens_decoder().values() if t.special}
        self.vocab_size = tk.get_vocab_size(with_added_tokens=True)
        self._id_bytes: dict[int, bytes] = {}  # id_bytes' answers: the logit lens asks for ~80,000 at 512 tokens

    def piece_bytes(self, piece: str) -> bytes:
        """The bytes a piece stands for (a special token: its name, which is no part of any character)."""
        if piece in self.special:
            return piece.encode()
        if self.decoder == "bytelevel":
            table = byte_decoder()
            return bytes(table[c] for c in piece if c in table)
        if self.decoder == "metaspace" and piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
            return bytes([int(piece[3:5], 16)])
        return self.piece_text(piece).encode()

    def piece_text(self, piece: str) -> str:
        if piece in self.special:
            return piece
        if self.decoder == "bytelevel":
            return _show_bytes(self.piece_bytes(piece))
        if self.decoder == "wordpiece":
            return piece[len(self.wordpiece_prefix):] if piece.startswith(self.wordpiece_prefix) else piece
        if self.decoder == "metaspace":
            if piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
                return _show_bytes(self.piece_bytes(piece))
            return piece.replace("▁", " ")
        return piece

    def id_text(self, i: int) -> str:
        piece = self.tk.id_to_token(int(i))
        return "" if piece is None else self.piece_text(piece)

    def id_bytes(self, i: int) -> bytes:
        i = int(i)
        if (data := self._id_bytes.get(i)) is None:
            piece = self.tk.id_to_token(i)
            data = self._id_bytes[i] = b"" if piece is None else self.piece_bytes(piece)
        return data

    def next_piece(self, before: list[Token], i: int) -> tuple[bytes, int]:
        """What a token predicted after position i continues: the bytes of the character that
        before[: i + 1] stops inside (empty when it ends on a whole character), and how many of its
        pieces are already there."""
        t = before[i]
        if not t.pieces or t.piece == t.pieces:
            return b"", 0
        return b"".join(self.id_bytes(u.id) for u in before[i - t.piece + 1:i + 1]), t.piece

    def read_next(self, i: int, pending: bytes = b"", so_far: int = 0) -> dict:
        """How a predicted token id reads after text that stops inside a character (pending: that
        character's bytes so far, in so_far pieces; next_piece()). {} for a whole token. A piece that
        completes the character: {"char": what the pieces spell, "piece": its place, "pieces": the
        same, the last}. A piece that leaves a character unfinished has no character yet (only the
        tokens after it would say which): {"bytes": its bytes in hex ("F0 9F"), "piece": its place,
        "range": [lo, hi], the code points the character can still be (when a lead byte fixes them)}."""
        data = self.id_bytes(i)
        if pending and not continues(data):  # not a continuation: it would leave that character cut
            pending, so_far = b"", 0
        if not pending and is_utf8(data):
            return {}
        whole = pending + data
        if is_utf8(whole):
            return {"char": whole.decode(), "piece": so_far + 1, "pieces": so_far + 1}
        out = {"bytes": data.hex(" ").upper(), "piece": so_far + 1}
        if (r := code_point_range(whole)) is not None:
            out["range"] = list(r)
        return out

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

        ends = self._byte_ends(then, text) or [settled(k) for k in range(1, len(then))] + [len(text)]
        tokens, start = [], 0
        for i, end in zip(then, ends):
            piece = self.tk.id_to_token(i)
            s, e = start, end
            if e == s and piece is not None and self.piece_text(piece) and s < len(text):
                e = s + 1  # a piece of a character not yet complete: the character it is part of
            tokens.append(Token(i, "" if piece is None else self.piece_text(piece), offset + s, offset + e))
            start = end
        # the byte pieces of one character, as encode marks them (an unfinished last character: left unmarked)
        data = [self.id_bytes(i) for i in then]
        for g in character_groups(data):
            joined = b"".join(data[g.start:g.stop])
            if (len(g) == 1 and is_utf8(joined)) or not is_utf8(joined):
                continue
            for k in g:
                tokens[k] = replace(tokens[k], char=joined.decode(), piece=k - g.start + 1, pieces=len(g))
        return text, tokens

    def _byte_ends(self, then, text) -> list[int] | None:
        """settled(k) for every k in one pass, for a byte-level tokenizer: the characters an incremental
        UTF-8 decoder has given out after each token's bytes (a lone decode of each prefix costs the
        square of the length). None when that does not reproduce the decoded text (another decoder, a
        special token amid the pieces): the caller then decodes each prefix."""
        if self.decoder != "bytelevel":
            return None
        dec, ends, n, out = codecs.getincrementaldecoder("utf-8")(errors="replace"), [], 0, []
        for i in then:
            piece = dec.decode(self.id_bytes(i))
            out.append(piece)
            n += len(piece)
            ends.append(n)
        out.append(dec.decode(b"", final=True))
        if "".join(out) != text:
            return None
        ends[-1] = len(text)
        return ends

    def continuation_text(self, prompt_ids, then) -> str:
        """The text the ids `then` add after prompt_ids (continuation's text, in one decode)."""
        return self._join([int(i) for i in prompt_ids], [int(i) for i in then])[1]

    def _join(self, prompt_ids, then) -> tuple[str | None, str]:
        base, full = self.decode(prompt_ids), self.decode(prompt_ids + then)
        return (base, full[len(base):]) if full.startswith(base) else (None, self.decode(then))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[Token]:
        enc = self.tk.encode(text, add_special_tokens=add_special_tokens)
        data = [self.piece_bytes(p) for p in enc.tokens]
        tokens = [Token(i, self.piece_text(p), s, e) for i, p, (s, e) in zip(enc.ids, enc.tokens, enc.offsets)]
        for g in character_groups(data):
            joined = b"".join(data[g.start:g.stop])
            if len(g) == 1 and is_utf8(joined):
                continue  # a whole token
            # the pieces' bytes are the text's own and together decode, their leading space kept; unless
            # the vocabulary lacks a byte (SmolLM2 has no 0xF1, 0xF2: the lead bytes of planes 4-11) and the
            # tokenizer dropped it, as the reference does: then the text the pieces' spans cover
            char = joined.decode() if is_utf8(joined) else text[min(tokens[k].start for k in g):max(tokens[k].end for k in g)]
            for k in g:
                tokens[k] = replace(tokens[k], char=char, piece=k - g.start + 1, pieces=len(g))
        return tokens


def _untrim_offsets(proc: dict | None) -> bool:
    """Make a post-processor leave each piece's span covering its own characters (in place; True if it
    changed). RoBERTa's (RobertaProcessing, trim_offsets) cuts a piece's leading space out of its span:
    'Ġfox' would cover 'fox' and a lone 'Ġ' nothing, though the piece stands for the space; the ids are
    the same either way."""
    if not proc:
        return False
    changed = any([_untrim_offsets(p) for p in proc.get("processors") or []])  # a Sequence
    if proc.get("trim_offsets"):
        proc["trim_offsets"] = False
        changed = True
    return changed


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
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")  # Qwen2's split: digits one by one
QWEN2_PRES = ("qwen2", "deepseek-r1-qwen")


def _gguf_pre_tokenizer(pre: str):
    bytelevel = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("smollm", "starcoder", "refact", "deepseek-coder"):  # digits one by one, then GPT-2's split
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), bytelevel])
    if pre in ("llama3", "llama-bpe", "smaug-bpe") or pre in QWEN2_PRES:
        return pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_REGEX if pre in QWEN2_PRES else LLAMA3_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    if pre in ("gpt2", "gpt-2", "default"):
        return bytelevel
    raise ModelLoadError(f"GGUF pre-tokenizer {pre!r} is not supported (supported: smollm, starcoder, llama-bpe, qwen2, gpt2, default)")


def from_gguf_metadata(meta: dict) -> TextTokenizer:
    if meta["model"] != "gpt2":
        raise ModelLoadError(f"GGUF tokenizer model {meta['model']!r} is not supported (only byte-level BPE, 'gpt2')")
    tokens = meta["tokens"]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in meta["merges"]]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tk.pre_tokenizer = _gguf_pre_tokenizer(meta["pre"])
    if meta["pre"] in QWEN2_PRES:  # Qwen2's tokenizer.json composes the text first (NFC): 'e' + U+0301 reads as 'é'
        tk.normalizer = normalizers.NFC()
    tk.decoder = decoders.ByteLevel()
    # control tokens (type 3) are matched whole, as llama.cpp and HF do
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, meta["token_type"]) if k == 3])
    if meta.get("add_bos") and meta.get("bos_id", -1) >= 0:
        from tokenizers import processors
        bos = tokens[meta["bos_id"]]
        tk.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, meta["bos_id"])])
    return TextTokenizer(tk)
