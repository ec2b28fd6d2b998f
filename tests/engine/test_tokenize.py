"""Tokens as people read them: a byte piece of a character (an emoji, a CJK character cut by a
byte-level tokenizer) says which character its pieces spell and which piece it is (app/engine/tokenize.py).

The oracle is the `tokenizers` library's own decoder (it joins the pieces' bytes across tokens) and
UTF-8 itself; the texts run through SmolLM2's real vocabulary, MiniLM's WordPiece, the tiny byte-level
BPE tokenizer the parity tests train (GPT-2 and Llama checkpoints share it) and a byte-fallback
(SentencePiece-style) tokenizer built here; and the tiny RoBERTa's byte-level BPE with its specials."""

import pytest
from hypothesis import given, settings, strategies as st
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from app.engine.tokenize import TextTokenizer, code_point_range, from_hf_folder
from tests.engine.test_parity_tiny import _bpe_tokenizer, _roberta_tokenizer

EMOJI, CJK, MIX, ENDS = "I love 🦊 and 日本", "日本語のテキスト", "x 👩‍👩‍👧 é, ok 🚀🔥", "a fox: 🦊"


@pytest.fixture(scope="module")
def tiny_bpe(tmp_path_factory):
    """The tiny GPT-2 / Llama checkpoints' tokenizer (byte-level BPE trained on a few sentences)."""
    folder = tmp_path_factory.mktemp("bpe")
    _bpe_tokenizer(folder)
    return from_hf_folder(folder)


@pytest.fixture(scope="module")
def byte_fallback():
    """A SentencePiece-style tokenizer: '▁' for spaces, characters it lacks as <0xNN> byte pieces."""
    vocab = {f"<0x{b:02X}>": b for b in range(256)}
    for piece in ["▁", "a", "b", "x", "o", "k", "▁a", "日"]:
        vocab[piece] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[("▁", "a")], byte_fallback=True))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    return TextTokenizer(tk)


def groups(tokens):
    """The runs of tokens that share one char (consecutive, piece 1..pieces), checked as they are read."""
    out, i = [], 0
    while i < len(tokens):
        t = tokens[i]
        if not t.pieces:
            out.append([t])
            i += 1
            continue
        run = tokens[i:i + t.pieces]
        assert [u.piece for u in run] == list(range(1, t.pieces + 1)) and {u.pieces for u in run} == {t.pieces}, run
        assert len({u.char for u in run}) == 1, run
        out.append(run)
        i += t.pieces
    return out


def check(tk: TextTokenizer, text: str):
    """Every token that is incomplete UTF-8 alone is in a run of 2+ pieces whose char is what the
    tokenizers library decodes from their ids together (and whole characters only); whole tokens say
    nothing; the runs reassemble the text."""
    tokens = tk.encode(text, add_special_tokens=False)
    for run in groups(tokens):
        if not run[0].pieces:
            t = run[0]
            assert t.char is None and t.piece == t.pieces == 0, t
            assert "\\x" not in t.text or "\\x" in text, t  # a whole token never shows escapes the text lacks
            continue
        ids = [t.id for t in run]
        for t in run:
            with pytest.raises(UnicodeDecodeError):
                tk.id_bytes(t.id).decode("utf-8")  # each piece alone is incomplete UTF-8
        joined = tk.tk.decode(ids)
        span = text[min(t.start for t in run):max(t.end for t in run)]
        if "\ufffd" in joined:  # a byte the vocabulary lacks was dropped (as the reference tokenizer does):
            assert run[0].char == span and "\\x" not in run[0].char  # the character the pieces' spans cover
        else:
            assert run[0].char.strip() == joined.strip(), (run, joined)
        assert run[0].char.strip() in text
    return tokens


def reassembled(tokens) -> str:
    return "".join(run[0].char if run[0].pieces else run[0].text for run in groups(tokens))


@pytest.mark.parametrize("text", [EMOJI, CJK, MIX, ENDS])
def test_smollm2_pieces_name_their_character(smol, text):
    tokens = check(smol.tokenizer, text)
    assert reassembled(tokens) == text
    # the pieces' spans overlap (each one covers its character): the group's span is its char, space included
    for run in groups(tokens):
        if len(run) > 1:
            assert text[min(t.start for t in run):max(t.end for t in run)] == run[0].char, run


def test_smollm2_splits_the_fox_into_three_pieces_with_the_space(smol):
    tokens = smol.tokenizer.encode(EMOJI, add_special_tokens=False)
    fox = [t for t in tokens if t.char == " 🦊"]
    # ' \xf0\x9f', '\xa6', '\x8a': what SmolLM2's vocabulary has (the API's text keeps the escapes)
    assert [t.text for t in fox] == [" \\xf0\\x9f", "\\xa6", "\\x8a"] and [t.piece for t in fox] == [1, 2, 3]
    assert b"".join(smol.tokenizer.id_bytes(t.id) for t in fox) == " 🦊".encode()
    assert tokens[-1].text == "本" and tokens[-1].pieces == 0  # a CJK character the vocabulary has whole


def test_a_lead_byte_the_vocabulary_lacks(smol):
    """SmolLM2 has no token for the byte 0xF1 (planes 4-11) nor 0x06: the tokenizer drops them, as the
    reference does; the pieces left still name the character their spans cover, never escapes."""
    from transformers import AutoTokenizer

    text = "a\x06b\U00050000c"
    tokens = check(smol.tokenizer, text)
    hf = AutoTokenizer.from_pretrained(smol.source.parent, gguf_file=smol.source.name)
    assert [t.id for t in tokens] == hf(text, add_special_tokens=False)["input_ids"]  # the same bytes dropped
    assert [t.text for t in tokens][:2] == ["a", "b"]  # the control character is gone
    rest = [t for t in tokens if t.pieces]
    assert [t.text for t in tokens if not t.pieces] == ["a", "b", "c"]  # 'b' whole: the pieces after it are another's
    assert {t.char for t in rest} == {"\U00050000"} and [t.piece for t in rest] == list(range(1, len(rest) + 1))


def test_text_ending_in_an_emoji(smol):
    tokens = check(smol.tokenizer, ENDS)
    assert (tokens[-1].char, tokens[-1].piece, tokens[-1].pieces) == (" 🦊", 3, 3)


def test_minilm_wordpiece_has_no_byte_pieces(minilm):
    """WordPiece works on characters: an emoji is [UNK], a CJK character a token of its own."""
    for text in (EMOJI, CJK, MIX):
        tokens = check(minilm.tokenizer, text)
        assert all(t.pieces == 0 and t.char is None for t in tokens)
    assert "[UNK]" in [t.text for t in minilm.tokenize(EMOJI)] and "日" in [t.text for t in minilm.tokenize(EMOJI)]


@pytest.mark.parametrize("text", [EMOJI, CJK, MIX, ENDS])
def test_tiny_byte_level_bpe(tiny_bpe, text):
    """The GPT-2 / Llama tiny checkpoints' tokenizer: every byte piece in a named run."""
    tokens = check(tiny_bpe, text)
    assert reassembled(tokens) == text
    assert any(t.pieces for t in tokens)  # 300 tokens of vocabulary cut these characters


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory):
    """The tiny RoBERTa's tokenizer.json: byte-level BPE (Ġ for a space), <s> text </s>, offsets trimmed."""
    folder = tmp_path_factory.mktemp("roberta")
    _roberta_tokenizer(folder)
    return folder


@pytest.mark.parametrize("text", [EMOJI, MIX, ENDS, "The quick  brown fox,\tjumps"])
def test_roberta_pieces_cover_their_own_characters(tiny_roberta, text):
    """RoBERTa's post-processor trims a piece's leading space out of its offsets; our spans keep it (a
    piece covers what it stands for, as GPT-2's do), with the reference tokenizer's ids and specials."""
    from transformers import PreTrainedTokenizerFast

    tk = from_hf_folder(tiny_roberta)
    tokens = tk.encode(text)
    assert [t.id for t in tokens] == PreTrainedTokenizerFast(tokenizer_file=str(tiny_roberta / "tokenizer.json"))(text)["input_ids"]
    assert [tokens[0].text, tokens[-1].text] == ["<s>", "</s>"] and {"<s>", "</s>", "<pad>"} <= tk.special
    inner = tokens[1:-1]
    assert any(t.text.startswith(" ") for t in inner)
    for t in inner:
        if not t.pieces:
            assert text[t.start:t.end] == t.text, t  # ' fox' covers ' fox'; a lone 'Ġ' covers its space
    assert [t.start for t in groups(inner)[0]] == [0] * len(groups(inner)[0])
    assert all(a[-1].end == b[0].start for a, b in zip(groups(inner), groups(inner)[1:]))  # the spans tile the text
    check(tk, text)
    assert reassembled(inner) == text


@pytest.mark.parametrize("text", [EMOJI, MIX])
def test_byte_fallback_pieces(byte_fallback, text):
    tokens = check(byte_fallback, text)
    fox = [t for t in tokens if t.char == "🦊"]
    assert len(fox) in (0, 4) and (not fox or [t.text for t in fox] == ["\\xf0", "\\x9f", "\\xa6", "\\x8a"])
    # a run for each character of more than one byte that the vocabulary lacks (an ASCII one is a whole byte)
    assert [run[0].char for run in groups(tokens) if run[0].pieces] == [c for c in text if len(c.encode()) > 1 and c != "日"]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40))
def test_pieces_reassemble_any_text(smol, tiny_bpe, text):
    """Property: for any text, the runs of pieces (each char once) and the whole tokens spell the
    text back, character for character, in SmolLM2's and the tiny BPE's tokenizers (byte-level: every
    byte of the text is in exactly one token)."""
    for tk in (smol.tokenizer, tiny_bpe):
        tokens = check(tk, text)
        kept = b"".join(tk.id_bytes(t.id) for t in tokens) == text.encode()  # SmolLM2 drops bytes it lacks (0x04, 0xF1...)
        if kept and not any(t.text in tk.special for t in tokens):
            assert reassembled(tokens) == text


def test_a_prediction_reads_in_the_context_of_the_text(smol):
    """After the first piece of 🦊 the next piece has no character yet (only a range that holds 🦊);
    after the second, the third completes ' 🦊'; after a whole token it is a stray piece."""
    tk = smol.tokenizer
    tokens = tk.encode(EMOJI, add_special_tokens=False)
    i = next(k for k, t in enumerate(tokens) if t.piece == 1)
    pending, so_far = tk.next_piece(tokens, i)
    assert pending == b" \xf0\x9f" and so_far == 1
    second = tk.read_next(tokens[i + 1].id, pending, so_far)
    assert second["piece"] == 2 and second["bytes"] == "A6" and "char" not in second
    assert second["range"][0] <= ord("🦊") <= second["range"][1]
    third = tk.read_next(tokens[i + 2].id, *tk.next_piece(tokens, i + 1))
    assert third == {"char": " 🦊", "piece": 3, "pieces": 3}
    assert tk.next_piece(tokens, i + 2) == (b"", 0)  # after the last piece: a whole character
    assert tk.read_next(tokens[i + 3].id, *tk.next_piece(tokens, i + 2)) == {}  # ' and': a whole token
    alone = tk.read_next(tokens[i + 1].id)  # a continuation byte with nothing to continue
    assert alone == {"bytes": "A6", "piece": 1}
    # a whole token predicted inside a character would cut it: it reads as the whole token it is
    assert tk.read_next(tokens[i + 3].id, pending, so_far) == {}


@given(st.characters(codec="utf-8", exclude_categories=["Cs"], min_codepoint=0x80), st.data())
@settings(max_examples=300, deadline=None, derandomize=True)
def test_code_point_range_holds_the_character(c, data):
    """Property: the first k bytes of a character fix the range its code point is in, exactly as wide
    as the bits the missing bytes leave free."""
    b = c.encode()
    k = data.draw(st.integers(1, len(b) - 1))
    lo, hi = code_point_range(b"x" + b[:k])
    assert lo <= ord(c) <= hi and hi - lo + 1 == 1 << 6 * (len(b) - k)
    assert code_point_range(b) is None and code_point_range(b[1:]) is None  # whole, or no lead byte
