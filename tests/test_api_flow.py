"""POST /api/flow: the numbers are app/contributions.py's flow (checked against transformers in
tests/test_flow.py), rounded as documented; the listed edges rebuild the graph for any threshold
>= min_importance; the heads named on an edge are contributions.moved's largest; errors are 4xx."""

import numpy as np
import pytest

from app import analysis, contributions
from tests.client import post_ok

TEXT = "The capital of France is"


def rebuilt(j, threshold):
    """A Flow made from the response alone (attention edges below min_importance are 0), as a client has it."""
    n_layers, n = len(j["layers"]), len(j["tokens"])
    att = np.zeros((n_layers, n, n))
    for L, a in enumerate(j["attention"]):
        att[L, a["query"], a["key"]] = a["importance"]
    f = contributions.Flow(att, *(np.array(j[k]) for k in ("attention_residual", "mlp", "mlp_residual")))
    return {tuple(e[:4]) for e in contributions.flow_routes(f, j["position"], threshold)}


def graph_set(j):
    return {(e["kind"], e["layer"], e["source"], e["target"]) for e in j["graph"]}


def test_flow_is_the_run_s_importances_rounded(client, smol):
    j = post_ok(client, "/api/flow", text=TEXT)
    cr = analysis.full_run(smol, TEXT)
    f = contributions.flow(cr)
    n = len(cr.run.tokens)
    assert (j["model"], j["n_layers"], j["n_heads"], j["causal"]) == ("smollm2-135m-instruct", 30, 9, True)
    assert j["layers"] == [str(L) for L in range(30)] and len(j["tokens"]) == n
    assert (j["position"], j["threshold"], j["min_importance"]) == (n - 1, 0.04, 0.01)  # the defaults
    for name in ("attention_residual", "mlp", "mlp_residual"):
        assert np.abs(np.array(j[name]) - getattr(f, name)).max() <= 5e-5  # 4 decimals
    for L, a in enumerate(j["attention"]):
        want = np.round(f.attention[L].astype(np.float64), 4)
        i, k = np.nonzero(want >= 0.01)
        assert (a["query"], a["key"]) == (i.tolist(), k.tolist())  # every edge >= min_importance, row-major
        assert a["importance"] == want[i, k].tolist()
        moved = contributions.moved(cr, L)[:, i, k].T  # [edge, head]
        for e, (heads, m) in enumerate(zip(a["heads"], a["moved"])):
            assert len(heads) == 3 and heads == np.argsort(-moved[e], kind="stable")[:3].tolist()
            assert np.abs(np.array(m) - moved[e, heads]).max() <= 5e-5 and m == sorted(m, reverse=True)
        assert all(q >= k for q, k in zip(a["query"], a["key"]))  # causal
    # the graph: flow_routes on the rounded numbers, and what a client rebuilds from the response
    assert graph_set(j) == rebuilt(j, 0.04)
    assert all(e["importance"] >= 0.04 for e in j["graph"]) and j["graph"][0]["layer"] == 29
    assert {e["target"] for e in j["graph"] if e["layer"] == 29} == {n - 1}


@pytest.mark.parametrize("position,threshold", [(2, 0.04), (3, 0.1), (0, 0.01), (4, 0.5)])
def test_any_token_and_threshold_rebuild_from_one_response(client, position, threshold):
    """What the view relies on: one response (the defaults) holds every graph with threshold >= min_importance."""
    one = post_ok(client, "/api/flow", text=TEXT)
    other = post_ok(client, "/api/flow", text=TEXT, position=position, threshold=threshold)
    assert other["position"] == position and other["attention"] == one["attention"]
    assert graph_set(other) == rebuilt(one | {"position": position}, threshold)
    assert graph_set(other)  # the top node always has its residual or its MLP at >= 0.5


def test_a_lower_min_importance_lists_more_edges(client):
    a = post_ok(client, "/api/flow", text=TEXT)
    b = post_ok(client, "/api/flow", text=TEXT, min_importance=0.002, threshold=0.002)
    assert sum(len(x["query"]) for x in b["attention"]) > sum(len(x["query"]) for x in a["attention"])
    assert all(min(x["importance"], default=1) >= 0.002 for x in b["attention"])
    assert len(b["graph"]) > len(a["graph"])


def test_an_encoder_has_a_flow_graph_too(client, minilm):
    """post-LN BERT: each block's parts against the sum its LayerNorm normalises; every key is a part."""
    j = post_ok(client, "/api/flow", text=TEXT, model="all-minilm-l6-v2", position=0)
    assert j["causal"] is False and j["n_layers"] == 6 and j["position"] == 0  # [CLS]
    assert any(k > q for a in j["attention"] for q, k in zip(a["query"], a["key"]))  # later tokens reach earlier ones
    f = contributions.flow(analysis.full_run(minilm, TEXT))
    assert np.abs(np.array(j["mlp"]) - f.mlp).max() <= 5e-5
    assert graph_set(j) == rebuilt(j, 0.04)


@pytest.mark.parametrize("body,status,code", [
    ({"text": TEXT, "position": 99}, 422, "out_of_range"),
    ({"text": TEXT, "position": -1}, 422, "out_of_range"),
    ({"text": ""}, 422, "empty_text"),
    ({"text": "  \n "}, 422, "empty_text"),
    ({"text": TEXT, "threshold": 0.005}, 422, "invalid_request"),  # below min_importance: its edges are not listed
    ({"text": TEXT, "threshold": 1.5}, 422, "invalid_request"),
    ({"text": TEXT, "min_importance": 0}, 422, "invalid_request"),
    ({"text": TEXT, "theshold": 0.1}, 422, "invalid_request"),  # a misspelt field
    ({"text": TEXT, "model": "nope"}, 404, "unknown_model"),
    ({"text": "word " * 600}, 422, "too_many_tokens"),
])
def test_flow_errors(client, body, status, code):
    r = client.post("/api/flow", json=body)
    assert r.status_code == status and r.json()["error"] == code, r.text
    assert r.json()["detail"]


def test_flow_is_documented(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/flow"]["post"]
    assert "Ferrando" in op["description"] and set(op["responses"]) >= {"200", "404", "422"}
    schemas = spec["components"]["schemas"]
    assert {"position", "threshold", "min_importance"} <= set(schemas["FlowRequest"]["properties"])
    assert {"attention", "attention_residual", "mlp", "mlp_residual", "graph"} <= set(schemas["FlowPublic"]["properties"])
    assert "max(0, ‖y‖₁ − ‖y − z‖₁)" in schemas["FlowPublic"]["properties"]["attention"]["description"]
