"""The lesson's data (/lesson's inline JSON, app.payloads.lesson_data) against the API's own answers, and
its words (app/lesson.py) against the numbers they quote."""

import html
import json
import re

import numpy as np
import pytest

from app import lesson as text
from tests.client import post_ok as post

LESSON = "a fluffy blue creature roamed the verdant forest"


@pytest.fixture(scope="module")
def data(client):
    r = client.get("/lesson")
    assert r.status_code == 200
    m = re.search(r'<script type="application/json" id="initial">(.*?)</script>', r.text, re.S)
    return json.loads(html.unescape(m.group(1)))["lesson"]


def moved_shares(client, sentence: str, query: int) -> np.ndarray:
    """[layer, head, key]: what each head moved into the query, as shares of its row (/api/attention moved)."""
    a = post(client, "/api/attention", text=sentence, measure="moved")["attention"]
    M = np.stack([np.array(a[str(L)])[:, query] for L in range(len(a))])
    return M / M.sum(-1, keepdims=True)


def test_the_card_is_the_explain_pages_numbers(client, data):
    c = data["fluffy"]["card"]
    d = post(client, "/api/head", text=LESSON, layer=c["layer"], head=c["head"], detail=True)
    i = c["query"]
    assert d["tokens"][i]["text"] == " creature" and (c["layer"], c["head"]) == (text.DEFAULT_LAYER, text.DEFAULT_HEAD)
    assert c["e"] == d["e"][i] and c["q"] == d["q_pre_rope"][i] and c["z"] == d["z"][i] and c["scale"] == d["scale"]
    assert c["e_norm"] == pytest.approx(np.linalg.norm(d["e"][i]), abs=1e-3)
    for k in c["keys"]:
        j = k["index"]
        assert k["k"] == d["k_pre_rope"][j] and k["v"] == d["v"][j] and k["score"] == d["scores"][i][j]
        assert k["weight"] == pytest.approx(d["pattern"][i][j], abs=1e-4)
        assert k["v_out_norm"] == pytest.approx(d["v_out_norm"][j], abs=1e-4)
        assert k["dot"] * d["scale"] == pytest.approx(d["scores"][i][j], abs=1e-3)  # q·k after RoPE, then scaled
        assert k["dot"] == pytest.approx(np.dot(d["q"][i], d["k"][j]), abs=1e-2)  # the rotated q and k are dotted
        assert k["moved"] == pytest.approx(k["weight"] * k["v_out_norm"], abs=1e-3)
    s = np.array([k["score"] for k in c["keys"]])
    w = np.exp(s - s.max())
    np.testing.assert_allclose(w / w.sum(), [k["weight"] for k in c["keys"]], atol=1e-4)  # the softmax
    assert sum(k["share"] for k in c["keys"]) == pytest.approx(1, abs=1e-3)
    z = sum(k["weight"] * np.array(k["v"]) for k in c["keys"])
    np.testing.assert_allclose(z, c["z"], atol=1e-3)  # the weighted sum of the values


def test_the_heads_that_move_the_adjectives_are_ranked_by_what_moved(client, data):
    f = data["fluffy"]
    M = moved_shares(client, LESSON, f["query"])
    share = M[..., f["keys"]].sum(-1)
    order = np.argsort(-share, axis=None, kind="stable")[: len(f["heads"])]
    assert [(h["layer"], h["head"]) for h in f["heads"]] == [divmod(int(i), share.shape[1]) for i in order]
    heads = post(client, "/api/heads", text=LESSON, top=1)["scores"]
    for h in f["heads"]:
        assert h["moved"] == pytest.approx(share[h["layer"], h["head"]], abs=2e-3)
        assert h["previous"] == pytest.approx(heads["previous_no_sink"][h["layer"]][h["head"]], abs=1e-4)
        assert [k["moved"] for k in h["keys"]] == pytest.approx(M[h["layer"], h["head"], f["keys"]], abs=2e-3)


def test_the_first_token_takes_weight_and_moves_less(client, data):
    s = data["fluffy"]["first_token"]
    heads = post(client, "/api/heads", text=LESSON, top=1)["scores"]
    assert s["weight"] == pytest.approx(np.mean(heads["first"]), abs=1e-3)
    assert s["moved"] == pytest.approx(np.mean(heads["first_moved"]), abs=1e-3)
    assert s["moved"] < s["weight"] and s["value_ratio"] < 0.5  # measured: 0.52 < 0.66, values 0.24x the others'
    M = moved_shares(client, LESSON, data["fluffy"]["query"])
    assert s["query_moved"] == pytest.approx(np.median(M[..., 0]), abs=2e-3)


def test_one_head_for_both_towers(client, data):
    t, towers = data["tower_head"], data["towers"]
    shares = np.stack([moved_shares(client, x["text"], x["query"])[..., x["query"] - 1] for x in towers])
    worst = shares.min(0)
    assert (t["layer"], t["head"]) == divmod(int(np.argmax(worst)), worst.shape[1])
    assert t["moved"] == pytest.approx(shares[:, t["layer"], t["head"]], abs=2e-3)
    for x, preds in zip(towers, data["tower_next"]):  # the next-token guesses the section quotes
        api = post(client, "/api/predictions", text=x["text"], top_k=3)["predictions"][x["query"]]
        assert preds == api
        assert x["rows"]["pattern"][x["query"]][x["query"] - 1] == pytest.approx(t["weight"][towers.index(x)], abs=1e-4)


def test_the_heads_switched_off_move_the_most_of_france(client, data):
    fr = data["france"]
    q = len(fr["tokens"]) - 1
    k = [t["text"] for t in fr["tokens"]].index(" France")
    share = moved_shares(client, fr["text"], q)[..., k]
    order = np.argsort(-share, axis=None, kind="stable")[: len(fr["heads_to_france"])]
    assert [(h["layer"], h["head"]) for h in fr["heads_to_france"]] == [divmod(int(i), share.shape[1]) for i in order]


def test_the_words_quote_the_numbers(data):
    s, f = data["sections"], data["fluffy"]
    c = f["card"]
    first = c["keys"][0]
    card = s["adjectives"]["card"]
    card_text = " ".join(" ".join(x) for x in card["lines"] + card["after"])
    assert text.vec(c["e"]) in card_text and text.vec(c["q"]) in card_text and f"√{c['d_head']}" in card["table"]["head"][2]
    assert [r[0] for r in card["table"]["rows"]] == [f"{k['index']} {text.quoted(k['text'])}" for k in c["keys"]]
    p = " ".join(s["adjectives"]["p_card"] + s["adjectives"]["p_sink"])
    assert f"puts {text.pct(first['weight'])} of its weight on ‘a’" in p and f"gives {text.pct(first['share'])} of what moves" in p
    sink = f["first_token"]
    assert f"the first token takes {text.pct(sink['weight'])} of the attention" in p
    assert f"gives {text.pct(sink['moved'])} of what moves" in p and f"is {sink['value_ratio']:.2f} times" in p
    rows = s["adjectives"]["table"]["rows"]
    assert [r[0] for r in rows] == [f"L{h['layer']}H{h['head']}" for h in f["heads"]]
    assert [r[1] for r in rows] == [text.pct(h["moved"]) for h in f["heads"]]
    t = data["tower_head"]
    assert f"layer {t['layer']}, head {t['head']} does it in both" in s["towers"]["p"][0]
    last = data["tower_compare"]["similarity"][-1][0][1]
    assert f"{last:.2f} after the last layer" in s["towers"]["p"][1]
    assert "landmark" not in json.dumps(s)  # no claim the numbers do not back
    for i, meaning in enumerate(data["mole_meanings"]):  # the mole sentences by name, in the list and the legend
        assert s["mole"]["sentences"][i] == f"{i + 1}. {meaning}: “{data['mole_sentences'][i]}”"
    assert [name for name, _, _ in s["mole"]["legend"]] == ["the animal vs the unit", "the animal vs the skin mark",
                                                              "the unit vs the skin mark"]
    for row, item in zip(data["head_finder"]["rows"], s["heads"]["list"]):
        h = row["heads"][0]
        assert item[1].startswith(f"layer {h['layer']}, head {h['head']} ({h['score']:.2f}") and item[2] == data["head_finder"]["formulas"][row["name"]]
    assert all(sec["try"] for sec in s.values())  # every section has its "try your own sentence" box


def test_the_specialists_are_the_head_finders(client, data):
    heads = post(client, "/api/heads", text=LESSON, top=3)
    for row in data["head_finder"]["rows"]:
        assert row["name"] == (row["pattern"] if row["pattern"] == "first" else row["pattern"] + "_no_sink")
        assert [(h["layer"], h["head"], h["score"]) for h in row["heads"]] == [(t["layer"], t["head"], t["score"]) for t in heads["top"][row["name"]]]
        for h in row["heads"]:
            assert h["moved"] == pytest.approx(heads["scores"][row["moved_name"]][h["layer"]][h["head"]], abs=1e-4)
            assert h["kept"] == pytest.approx(heads["scores"][row["pattern"]][h["layer"]][h["head"]], abs=1e-4)
