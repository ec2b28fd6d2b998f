"""app/analysis.py's head finder scores on hand-made patterns whose answers are known by construction:
with key 0 kept or left out (each row renormalised over the other keys), on the weights and on what
moved (contributions.moved normalised per query row)."""

import numpy as np
import pytest

from app import analysis

N = 6


def causal(rows: dict[int, dict[int, float]], n: int = N) -> np.ndarray:
    """A causal [1, 1, n, n] pattern from {query: {key: weight}}; unlisted rows put all weight on key 0."""
    A = np.zeros((1, 1, n, n), dtype=np.float32)
    for i in range(n):
        for j, w in rows.get(i, {0: 1.0}).items():
            assert j <= i
            A[0, 0, i, j] = w
    np.testing.assert_allclose(A.sum(-1), 1, atol=1e-6)
    return A


def scores(A, sink="kept", is_causal=True):
    return {k: float(v.squeeze()) for k, v in analysis.text_head_scores(A, is_causal, sink).items()}


def test_a_pure_previous_token_head():
    A = causal({i: {i - 1: 1.0} for i in range(1, N)})
    s = scores(A)
    assert s["previous"] == pytest.approx(1)
    assert s["first"] == pytest.approx(1 / (N - 1))  # only query 1, whose previous token is key 0
    assert s["self"] == pytest.approx(1 / N)  # only query 0, which sees nothing else
    assert s["broad"] == pytest.approx(0)  # every row on one key
    left = scores(A, "left out")
    assert set(left) == {"previous", "self", "broad"}  # the first-token share of key 0 left out would be 0
    assert left == pytest.approx({"previous": 1, "self": 0, "broad": 0})


def test_a_sink_dominated_previous_token_head_is_named_by_what_is_left():
    """90% on the first token, 10% on the previous one: kept, it scores low on 'previous'; with key 0 left
    out (as Neuronpedia's dashboards), it is a previous-token head, and its first-token share says how much
    of its attention that is about."""
    A = causal({i: {0: 0.9, i - 1: 0.1} for i in range(2, N)})
    s, left = scores(A), scores(A, "left out")
    assert s["previous"] == pytest.approx((1 + 0.1 * (N - 2)) / (N - 1))  # query 1's previous token is key 0
    assert s["first"] == pytest.approx((1 + 0.9 * (N - 2)) / (N - 1))
    assert left["previous"] == pytest.approx(1) and left["broad"] == pytest.approx(0) and left["self"] == pytest.approx(0)


def test_uniform_over_the_other_keys_is_broad_only_with_key_0_left_out():
    A = causal({i: {0: 0.5} | {j: 0.5 / i for j in range(1, i + 1)} for i in range(1, N)})
    left = scores(A, "left out")
    assert left["broad"] == pytest.approx(1)  # uniform over keys 1..i: entropy log(i) / log(i)
    assert left["previous"] == pytest.approx(np.mean([1 / i for i in range(2, N)]))
    assert left["self"] == pytest.approx(left["previous"])
    kept = scores(A)
    i = np.arange(1, N)
    H = -(0.5 * np.log(0.5) + 0.5 * np.log(0.5 / i))  # half on key 0, half spread over i keys
    assert kept["broad"] == pytest.approx(np.mean(H / np.log(np.maximum(i + 1, 2))), rel=1e-5)


def test_a_row_with_everything_on_key_0_counts_as_zero_not_nan():
    A = causal({})  # every row on key 0
    left = scores(A, "left out")
    assert left == {"previous": 0.0, "self": 0.0, "broad": 0.0}
    assert np.all(analysis.without_first(A) == 0)


def test_too_short_texts_score_zero():
    one = np.ones((1, 1, 1, 1), dtype=np.float32)
    assert scores(one) == {"previous": 0.0, "first": 0.0, "self": 1.0, "broad": 0.0}
    two = causal({1: {0: 0.5, 1: 0.5}}, n=2)
    assert scores(two, "left out") == {"previous": 0.0, "self": 0.0, "broad": 0.0}  # no query has two keys besides key 0


def test_an_encoder_row_sees_every_key():
    n = 4
    A = np.full((1, 1, n, n), 1 / n, dtype=np.float32)
    assert scores(A, is_causal=False)["broad"] == pytest.approx(1)
    assert scores(A, "left out", is_causal=False)["broad"] == pytest.approx(1)  # uniform over the n - 1 others
    assert scores(A, "left out", is_causal=False)["previous"] == pytest.approx(1 / (n - 1))


def test_moved_scores_are_the_same_formulas_on_what_moved_per_row():
    """Half the weight on the sink, half on the previous token; the sink's value is 1/9 of the others'
    as the head writes it: 10% of what moves comes from the sink, 90% from the previous token."""
    A = causal({i: {0: 0.5, i - 1: 0.5} for i in range(2, N)})
    value_norms = np.array([1.0] + [9.0] * (N - 1), dtype=np.float32)
    M = A * value_norms  # what contributions.moved computes: pattern[i, j] * ‖v_j W_O‖
    s = analysis.all_head_scores(A, M, True, lambda X, sink: analysis.text_head_scores(X, True, sink))
    assert set(s) == {n for n, v in analysis.HEAD_VARIANTS.items() if v["pattern"] != "induction"}
    rows = range(2, N)
    assert float(s["first"].squeeze()) == pytest.approx((1 + 0.5 * (N - 2)) / (N - 1))
    assert float(s["first_moved"].squeeze()) == pytest.approx((1 + 0.1 * (N - 2)) / (N - 1))
    assert float(s["previous_moved"].squeeze()) == pytest.approx((1 + 0.9 * len(rows)) / (N - 1))
    assert float(s["previous_no_sink"].squeeze()) == float(s["previous_moved_no_sink"].squeeze()) == pytest.approx(1)
    np.testing.assert_allclose(analysis.per_row(M).sum(-1), 1, atol=1e-6)


def test_every_score_has_its_formula_and_its_reading():
    assert set(analysis.HEAD_SCORES) == set(analysis.HEAD_VARIANTS)
    assert len(analysis.HEAD_VARIANTS) == 2 * (5 + 4)  # weight / moved x (key 0 kept: 5 patterns, left out: 4)
    for name, v in analysis.HEAD_VARIANTS.items():
        assert name == analysis.score_name(v["pattern"], v["measure"], v["sink"])
        f = analysis.HEAD_SCORES[name]
        assert ("moved" in f) == (v["measure"] == "moved") and ("key 0 left out" in f) == (v["sink"] == "left out")
    assert analysis.HEAD_SCORES["previous"] == "previous token: mean over positions i >= 1 of pattern[i, i-1]"
