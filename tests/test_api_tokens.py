"""Tokens as people read them, in every payload that sends tokens: a byte piece of a character has
char, piece and pieces (app/analysis.py token_public); a whole token has none of them, so payloads of
ordinary text do not grow; a predicted piece reads in the context of the text (TextTokenizer.read_next).

The oracle for a character is the `tokenizers` library's own decoding of the pieces' ids together."""

import json

import pytest

from tests.test_export import export

EMOJI = "I love 🦊 and 日本"
PLAIN = "a fluffy blue creature roamed the verdant forest"
FIELDS = {"char", "piece", "pieces"}
PIECE = {"char", "piece", "pieces", "bytes", "range"}


def post(client, path, **body):
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


ENDPOINTS = {  # path -> body: every API answer that carries the text's tokens
    "/api/attention": {"layers": [0]}, "/api/head": {"layer": 0, "head": 0}, "/api/predictions": {"top_k": 3},
    "/api/residual": {}, "/api/lens": {"top_k": 2}, "/api/heads": {"top": 2}, "/api/rollout": {}, "/api/flow": {},
    "/api/attribution": {},
}


def decoded(smol, ids) -> str:
    return smol.tokenizer.tk.decode(list(ids))


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_every_payload_names_the_character_of_each_byte_piece(client, smol, path):
    tokens = post(client, path, text=EMOJI, **ENDPOINTS[path])["tokens"]
    assert [t["id"] for t in tokens] == [t.id for t in smol.tokenize(EMOJI)]
    pieces = [t for t in tokens if FIELDS & t.keys()]
    assert pieces and all(FIELDS <= t.keys() for t in pieces)
    for t in tokens:
        whole = "\\x" not in t["text"]
        assert whole == (not FIELDS & t.keys()), t  # the fields on the incomplete ones only
    # each run of pieces 1..n decodes (tokenizers' decoder) to its char
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if "pieces" in t:
            run = tokens[i:i + t["pieces"]]
            assert [u["piece"] for u in run] == list(range(1, t["pieces"] + 1)) and {u["char"] for u in run} == {t["char"]}
            assert decoded(smol, [u["id"] for u in run]) == t["char"]
            i += t["pieces"]
        else:
            i += 1
    assert {t["char"] for t in pieces} == {" 🦊", " 日"}  # 本 is one token of SmolLM2's


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_ordinary_text_sends_no_new_fields(client, path):
    body = post(client, path, text=PLAIN, **ENDPOINTS[path])
    assert all(t.keys() == {"id", "text", "start", "end"} for t in body["tokens"])
    rows = body.get("predictions", []) + [row for boundary in body.get("lens", []) for row in boundary]
    # a whole predicted token has no new field (a layer of the lens may well guess a byte piece: that one has)
    assert all(bool(PIECE & p.keys()) == ("\\x" in p["text"]) for row in rows for p in row)
    assert not PIECE & (body.get("target") or {}).keys()


def test_minilm_sends_no_pieces(client):
    """WordPiece: the emoji is [UNK], the CJK characters whole tokens."""
    tokens = post(client, "/api/attention", text=EMOJI, model="all-minilm-l6-v2", layers=[0])["tokens"]
    assert all(t.keys() == {"id", "text", "start", "end"} for t in tokens)
    assert "[UNK]" in [t["text"] for t in tokens]


def check_prediction(smol, tokens, i, p):
    """A predicted token after position i: whole (no fields), or a piece that completes the character
    the text stops inside (char = what the pending pieces and it decode to), or one that leaves a
    character unfinished (bytes, and a code point range its lead byte fixes)."""
    tk = smol.tokenizer
    data = tk.id_bytes(p["id"])
    t = tokens[i]
    pending = [u["id"] for u in tokens[i - t["piece"] + 1:i + 1]] if "pieces" in t and t["piece"] < t["pieces"] else []
    if "char" in p:
        assert not p.keys() & {"bytes", "range"} and p["piece"] == p["pieces"] == len(pending) + 1
        assert decoded(smol, pending + [p["id"]]) == p["char"] and "\ufffd" not in p["char"]
    elif "bytes" in p:
        assert bytes.fromhex(p["bytes"]) == data and "\ufffd" in decoded(smol, pending + [p["id"]])
        assert p["piece"] == (len(pending) + 1 if data[:1] and 0x80 <= data[0] < 0xC0 else 1)
        if "range" in p:
            lo, hi = p["range"]
            assert 0x80 <= lo <= hi <= 0x10FFFF
    else:
        assert not PIECE & p.keys()
        data.decode("utf-8")  # whole


def test_predictions_read_byte_pieces_in_context(client, smol):
    body = post(client, "/api/predictions", text=EMOJI, top_k=10)
    tokens = body["tokens"]
    seen = {"char": 0, "bytes": 0}
    for i, row in enumerate(body["predictions"]):
        for p in row:
            check_prediction(smol, tokens, i, p)
            seen["char"] += "char" in p
            seen["bytes"] += "bytes" in p
    assert seen["char"] and seen["bytes"]  # inside 🦊 the model predicts pieces of emoji: both kinds are there
    # after the second piece of 🦊 every prediction that continues it completes a character
    second = next(i for i, t in enumerate(tokens) if t.get("piece") == 2 and t["char"] == " 🦊")
    assert any("char" in p for p in body["predictions"][second])


def test_the_lens_reads_pieces_like_the_predictions(client, smol):
    body = post(client, "/api/lens", text=EMOJI, top_k=3)
    for row in body["lens"]:
        for i, top in enumerate(row):
            for p in top:
                check_prediction(smol, body["tokens"], i, p)
    preds = post(client, "/api/predictions", text=EMOJI, top_k=3)["predictions"]
    assert body["lens"][-1] == preds  # the last boundary is the model's own output, fields and all


def test_attribution_target_reads_in_context(client, smol):
    tokens = post(client, "/api/attention", text=EMOJI, layers=[0])["tokens"]
    second = next(i for i, t in enumerate(tokens) if t.get("piece") == 2 and t["char"] == " 🦊")
    body = post(client, "/api/attribution", text=EMOJI, position=second, target=tokens[second + 1]["id"], contrast=tokens[1]["id"])
    assert {k: body["target"][k] for k in FIELDS} == {"char": " 🦊", "piece": 3, "pieces": 3}  # the text's own next piece
    assert body["contrast"] == {"id": tokens[1]["id"], "text": " love"}


def test_compare_names_the_character_of_a_split_word(client):
    body = post(client, "/api/compare", sentences=["I love 日本語", "日本語 is hard"], word="日本語")
    for o in body["occurrences"]:
        assert o["char"] == "語" and o["piece"] == o["pieces"] > 1  # the last piece of its last character


def test_exports_json_and_csv_read_pieces(client):
    d = export(client, "heatmap.json", text=EMOJI).json()
    assert {t["char"] for t in d["tokens"] if "char" in t} == {" 🦊", " 日"}
    csv = export(client, "heatmap.csv", text=EMOJI).text
    assert "\\x" not in csv and " 🦊 (1/3)" in csv and " 日 (3/3)" in csv
    arrows = export(client, "arrows.json", text=EMOJI, token=3).json()
    assert arrows["query"] == 3 and arrows["tokens"][3]["piece"] == 2
    assert json.loads(export(client, "grid.json", text=EMOJI).content)["tokens"] == d["tokens"]
