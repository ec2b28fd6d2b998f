"""app/payloads.py: the lesson's data needs its words as single tokens, and says so when a model splits one."""

from types import SimpleNamespace

import pytest

from app import payloads
from app.lesson import LESSON_SENTENCE


def tokens(*texts):
    return [SimpleNamespace(text=t) for t in texts]


def test_a_split_word_is_a_named_error_that_says_what_and_why():
    model = SimpleNamespace(id="tiny-bpe")
    split = tokens("a", " fluffy", " blue", " cre", "ature", " roamed")
    assert payloads.lesson_token(model, split, LESSON_SENTENCE, "blue") == 2
    with pytest.raises(payloads.LessonWordSplit) as e:
        payloads.lesson_token(model, split, LESSON_SENTENCE, "creature")
    assert isinstance(e.value, ValueError) and e.value.status == 422 and e.value.error == "lesson_word_split"
    assert "'creature'" in str(e.value) and "tiny-bpe" in str(e.value) and "' cre', 'ature'" in str(e.value)


def test_the_cli_reports_it_in_one_line(monkeypatch, capsys, smol, cache_dir, tmp_path):
    from attnscope import cli

    real = payloads.lesson_token
    monkeypatch.setattr(payloads, "lesson_token", lambda model, toks, text, word: real(
        model, tokens(*("".join(t.text for t in toks).replace("creature", "cre ature").split(" "))), text, word))
    assert cli.main(["lesson-pack", "-o", str(tmp_path / "p"), "--cache-dir", cache_dir]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("attnscope: error: the lesson needs 'creature' as one token"), err


def test_a_heads_moved_part_is_the_layers_moved_for_that_head(client):
    """/api/head parts moved: what the explorer's heatmap prints for "what it moved", the same numbers
    (4 decimals) as /api/attention's measure moved and the exports; only the parts asked for come back."""
    body = {"text": LESSON_SENTENCE, "layer": 2, "head": 3}
    h = client.post("/api/head", json={**body, "parts": ["moved"]})
    assert h.status_code == 200, h.text
    layer = client.post("/api/attention", json={"text": LESSON_SENTENCE, "layers": [2], "measure": "moved"}).json()
    assert h.json()["moved"] == layer["attention"]["2"][3]
    assert {"pattern", "scores", "q", "z"}.isdisjoint(h.json())
    assert "moved" not in client.post("/api/head", json=body).json()  # not among the default parts
    assert client.post("/api/head", json={**body, "parts": ["weights"]}).status_code == 422
