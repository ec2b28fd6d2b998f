"""The lesson endpoints: /api/compare, /api/lens, and switching heads off (ablation)."""

import numpy as np
import pytest

from app import analysis
from tests.client import post_ok as post


EXAMPLES = {
    "mole": ["American shrew mole", "one mole of carbon dioxide", "take a biopsy of the mole"],
    "tower": ["the Eiffel tower", "a miniature tower"],
    "bank": ["we sat on the river bank", "she deposited cash at the bank"],
}
FRANCE = "The capital of France is"


@pytest.mark.parametrize("model", ["smollm2-135m-instruct", "all-minilm-l6-v2"])
@pytest.mark.parametrize("word", list(EXAMPLES))
def test_compare_identical_at_the_embedding_then_diverging(client, registry, model, word):
    body = post(client, "/api/compare", model=model, sentences=EXAMPLES[word], word=word)
    m = registry.get(model)
    N = len(EXAMPLES[word])
    assert body["layers"] == ["embed"] + [str(L) for L in range(m.cfg.n_layers)]
    assert [o["sentence"] for o in body["occurrences"]] == list(range(N))
    assert len({o["id"] for o in body["occurrences"]}) == 1  # the same token in every sentence
    sim = np.array(body["similarity"])
    assert sim.shape == (m.cfg.n_layers + 1, N, N)
    np.testing.assert_allclose(sim[0], 1.0, atol=1e-5)
    off = ~np.eye(N, dtype=bool)
    assert sim[-1][off].max() < 0.99 and sim[-1][off].mean() < sim[1][off].mean()
    assert np.array(body["pca_2d"]).shape == (m.cfg.n_layers + 1, N, 2)
    # the numbers are the engine's: cosine of the captured residual vectors
    runs = [m.run(s) for s in EXAMPLES[word]]
    L = m.cfg.n_layers // 2
    vecs = [r[f"blocks.{L}.hook_resid_post"][o["token_index"]].astype(np.float64) for r, o in zip(runs, body["occurrences"])]
    cos = vecs[0] @ vecs[1] / np.linalg.norm(vecs[0]) / np.linalg.norm(vecs[1])
    assert abs(sim[L + 1][0][1] - cos) < 1e-5


def test_compare_uses_the_last_piece_of_a_split_word(client):
    body = post(client, "/api/compare", sentences=["the verdant forest", "a verdant hill"], word="verdant")
    assert all(o["n_pieces"] > 1 for o in body["occurrences"])
    assert [o["text"] for o in body["occurrences"]] == ["ant", "ant"]


@pytest.mark.parametrize("body,code", [
    ({"sentences": ["a mole", "nothing here"], "word": "mole"}, "word_not_found"),
    ({"sentences": ["a mole"], "word": "mole"}, "invalid_request"),
    ({"sentences": ["a", "b", "c", "d", "e"], "word": "a"}, "invalid_request"),
    ({"sentences": ["a mole", "molecule"], "word": "mole"}, "word_not_found"),  # whole words only
    ({"sentences": ["a mole", ""], "word": "mole"}, "empty_text"),
    ({"sentences": ["a mole", "b mole"], "word": ""}, "invalid_request"),
])
def test_compare_errors(client, body, code):
    r = client.post("/api/compare", json=body)
    assert r.status_code == 422 and r.json()["error"] == code, r.text
    if code == "word_not_found":
        # the field is the index into sentences; the words count from 1, as the page's legend does
        assert r.json()["sentence"] == 1 and repr(body["sentences"][1]) in r.json()["detail"]
        assert r.json()["detail"].startswith("sentence 2 does not contain")


def test_lens_last_layer_equals_predictions(client, smol):
    lens = post(client, "/api/lens", text=FRANCE, top_k=5)
    preds = post(client, "/api/predictions", text=FRANCE, top_k=5)
    assert lens["layers"] == ["embed"] + [str(L) for L in range(30)]
    assert len(lens["lens"]) == 31 and all(len(row) == len(preds["tokens"]) for row in lens["lens"])
    assert lens["lens"][-1] == preds["predictions"]
    # a middle layer is the unembedding of that layer's residual
    run = smol.run(FRANCE)
    logits = smol.unembed(run["blocks.10.hook_resid_post"])[-1]
    assert lens["lens"][11][-1][0]["id"] == int(np.argmax(logits))
    # the prediction forms with depth: the last layers say Paris, the embedding does not
    assert lens["lens"][-1][-1][0]["text"] == " Paris" and lens["lens"][0][-1][0]["text"] != " Paris"


def test_lens_refuses_an_encoder(client):
    r = client.post("/api/lens", json={"text": "hi", "model": "all-minilm-l6-v2"})
    assert r.status_code == 422 and r.json()["error"] == "not_causal"


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_switching_heads_off_changes_predictions(client, smol, mode):
    heads = [[L, h] for L in range(26, 30) for h in range(9)]
    body = post(client, "/api/predictions", text=FRANCE, top_k=5, ablate=heads, ablate_mode=mode)
    plain = post(client, "/api/predictions", text=FRANCE, top_k=5)
    assert body["original"] == plain["predictions"]
    assert body["predictions"] != body["original"] and body["ablate_mode"] == mode
    assert np.array(body["predictions"]).shape == np.array(body["original"]).shape
    # the ablated numbers are the engine's own, with those heads' z replaced
    def hook(z, name):
        z = z.copy()
        for h in range(9):
            z[:, h] = 0 if mode == "zero" else z[:, h].mean(0)
        return z
    run = smol.run(FRANCE, hooks={f"blocks.{L}.attn.hook_z": hook for L in range(26, 30)})
    assert body["predictions"][-1][0]["id"] == int(np.argmax(run.logits[-1]))
    lens = post(client, "/api/lens", text=FRANCE, top_k=5, ablate=heads, ablate_mode=mode)
    assert lens["lens"][-1] == body["predictions"] and lens["original"][-1] == plain["predictions"]


def test_one_head_off_moves_probabilities(client):
    body = post(client, "/api/predictions", text=FRANCE, top_k=5, ablate=[[29, 0]])
    a, b = body["predictions"][-1][0]["prob"], body["original"][-1][0]["prob"]
    assert a != b


def test_empty_ablation_is_exactly_no_ablation(client):
    plain = post(client, "/api/predictions", text=FRANCE, top_k=5)
    empty = post(client, "/api/predictions", text=FRANCE, top_k=5, ablate=[])
    assert empty["predictions"] == plain["predictions"] and empty.get("original") is None


@pytest.mark.parametrize("ablate", [[[30, 0]], [[0, 9]], [[-1, 0]]])
def test_out_of_range_heads_are_a_4xx(client, ablate):
    r = client.post("/api/predictions", json={"text": FRANCE, "ablate": ablate})
    assert r.status_code == 422 and r.json()["error"] == "out_of_range"


SCORE_NAMES = {"previous", "first", "self", "broad", "induction",
               "previous_no_sink", "self_no_sink", "broad_no_sink", "induction_no_sink",
               "previous_moved", "first_moved", "self_moved", "broad_moved", "induction_moved",
               "previous_moved_no_sink", "self_moved_no_sink", "broad_moved_no_sink", "induction_moved_no_sink"}


def moved_by_hand(model, cache, L):  # [head, query, key]: pattern[h, i, j] * ‖v[j, kv(h)] W_O[h]‖, from the captures
    cfg = model.cfg
    W_O = np.asarray(model.weights[f"blocks.{L}.attn.W_O"], dtype=np.float64)
    v = cache[f"blocks.{L}.attn.hook_v"].astype(np.float64)
    G = cfg.n_heads // cfg.n_kv_heads
    norms = np.stack([np.linalg.norm(v[:, h // G] @ W_O[h * cfg.d_head:(h + 1) * cfg.d_head], axis=-1) for h in range(cfg.n_heads)])
    return cache[f"blocks.{L}.attn.hook_pattern"] * norms[:, None, :]


def test_head_finder_scores_follow_their_formulas(client, smol):
    text = "a fluffy blue creature roamed the verdant forest"
    body = post(client, "/api/heads", text=text, top=5)
    assert set(body["scores"]) == set(body["formulas"]) == set(body["variants"]) == set(body["top"]) == SCORE_NAMES
    assert body["variants"]["previous_moved_no_sink"] == {"pattern": "previous", "measure": "moved", "sink": "left out"}
    run = smol.run(text)
    P = np.stack([run[f"blocks.{L}.attn.hook_pattern"] for L in range(30)]).astype(np.float64)
    n = P.shape[-1]
    prev = np.array([[np.mean([P[L, h, i, i - 1] for i in range(1, n)]) for h in range(9)] for L in range(30)])
    np.testing.assert_allclose(body["scores"]["previous"], prev, atol=1e-4)
    np.testing.assert_allclose(body["scores"]["first"], P[:, :, 1:, 0].mean(-1), atol=1e-4)
    # key 0 left out: each row renormalised over keys 1..i, from query 2 on
    rest = P[..., 1:].sum(-1)  # [layer, head, query]
    prev_ns = np.mean([P[..., i, i - 1] / rest[..., i] for i in range(2, n)], axis=0)
    np.testing.assert_allclose(body["scores"]["previous_no_sink"], prev_ns, atol=1e-4)
    # what moved: the same formulas on pattern x ‖v W_O‖, each query's row normalised
    M = np.stack([moved_by_hand(smol, run.cache, L) for L in range(30)])
    M /= M.sum(-1, keepdims=True)
    np.testing.assert_allclose(body["scores"]["first_moved"], M[:, :, 1:, 0].mean(-1), atol=1e-4)
    np.testing.assert_allclose(body["scores"]["previous_moved"], np.mean([M[..., i, i - 1] for i in range(1, n)], axis=0), atol=1e-4)
    self_mns = np.mean([M[..., i, i] / M[..., i, 1:].sum(-1) for i in range(2, n)], axis=0)
    np.testing.assert_allclose(body["scores"]["self_moved_no_sink"], self_mns, atol=1e-4)
    for name, top in body["top"].items():
        s = np.array(body["scores"][name])
        assert len(top) == 5 and top[0]["score"] == pytest.approx(s.max(), abs=1e-4)
        assert [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)
    # SmolLM2 has real induction heads: on a repeated random sequence they look at what came next last time
    assert body["top"]["induction"][0]["score"] > 0.5
    for name in SCORE_NAMES:
        if name.startswith("broad"):
            assert 0 <= np.min(body["scores"][name]) and np.max(body["scores"][name]) <= 1 + 1e-6, name
    # the sink, measured: most heads put most of their weight on the first token, and less of what moves
    assert np.mean(body["scores"]["first_moved"]) < np.mean(body["scores"]["first"]) and np.mean(body["scores"]["first"]) > 0.5


def test_induction_scores_follow_their_formulas_on_the_probe(client, smol):
    from app.engine.forward import forward

    body = post(client, "/api/heads", text="hello", top=1)
    k = 24
    ids = analysis.induction_ids(smol, k)
    names = {f"blocks.{L}.attn.{t}" for L in range(30) for t in ("hook_pattern", "hook_v")}
    _, cache = forward(smol.cfg, smol.weights, ids, names=names, logits=None)
    i = np.arange(k, 2 * k)
    for name, X in (("induction", lambda L: cache[f"blocks.{L}.attn.hook_pattern"].astype(np.float64)),
                    ("induction_moved", lambda L: moved_by_hand(smol, cache, L))):
        A = np.stack([X(L) for L in range(30)])
        A /= A.sum(-1, keepdims=True)
        np.testing.assert_allclose(body["scores"][name], A[..., i, i - k + 1].mean(-1), atol=1e-4)
        left = A[..., i, i - k + 1] / A[..., i, 1:].sum(-1)
        np.testing.assert_allclose(body["scores"][name + "_no_sink"], left.mean(-1), atol=1e-4)


def test_head_finder_on_the_encoder(client):
    body = post(client, "/api/heads", text="the cat sat on the mat", model="all-minilm-l6-v2", top=3)
    assert set(body["scores"]) == SCORE_NAMES
    assert np.array(body["scores"]["self"]).shape == np.array(body["scores"]["broad_moved_no_sink"]).shape == (6, 12)
    assert body["top"]["previous"][0]["score"] > 0.9  # MiniLM layer 0 has a previous-token head
    assert body["top"]["previous_no_sink"][0]["score"] > 0.9


def test_a_text_named_like_a_cache_entry_is_just_a_text(client):
    """The induction probe and the lesson's data share the run cache with the texts' runs, under keys
    no text can have: a text "induction-probe" or "lesson" is run like any other."""
    post(client, "/api/heads", text="hello there", top=1)
    assert client.get("/lesson").status_code == 200
    for text in ("induction-probe", "lesson"):
        body = post(client, "/api/attention", text=text, layers=[0])
        assert "".join(t["text"] for t in body["tokens"]) == text
