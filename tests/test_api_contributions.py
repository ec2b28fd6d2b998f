"""/api/attention?measure=moved, /api/rollout and /api/attribution: the API's numbers are
app/contributions.py's, encoded as documented (the measures themselves are checked against
transformers in tests/test_contributions.py)."""

import base64

import numpy as np
import pytest

from app import analysis, contributions
from tests.client import post_ok

TEXT = "The capital of France is"


def decode(a):
    raw = np.frombuffer(base64.b64decode(a["data"]), dtype=np.uint8 if a["dtype"] == "uint8" else "<f2").astype(np.float64)
    H, n, _ = a["shape"]
    out = np.zeros((H, n, n))
    if a["packing"] == "tril":
        rows, cols = np.tril_indices(n)
        out[:, rows, cols] = raw.reshape(H, -1)
    else:
        out[:] = raw.reshape(H, n, n)
    return out * a["scale"]


def test_moved_in_every_encoding(client, smol):
    cr = analysis.full_run(smol, TEXT)
    want = contributions.moved(cr, 3)
    j = post_ok(client, "/api/attention", **{"text": TEXT, "layers": [3], "measure": "moved"})
    assert j["measure"] == "moved"
    assert np.abs(np.array(j["attention"]["3"]) - want).max() <= 5e-5  # rounded to 4 decimals
    u = post_ok(client, "/api/attention", **{"text": TEXT, "layers": [3], "measure": "moved", "encoding": "uint8"})
    a = u["attention"]["3"]
    assert a["scale"] == pytest.approx(want.max() / 255)
    assert np.abs(decode(a) - want).max() <= a["scale"] / 2 + 1e-9  # one byte: half a step
    f = post_ok(client, "/api/attention", **{"text": TEXT, "layers": [3], "measure": "moved", "encoding": "float16"})
    assert np.allclose(decode(f["attention"]["3"]), want, rtol=1e-3, atol=1e-4)
    w = post_ok(client, "/api/attention", **{"text": TEXT, "layers": [3]})  # default: the weights, unchanged
    assert w["measure"] == "weight" and np.abs(np.array(w["attention"]["3"]) - cr.run.cache["blocks.3.attn.hook_pattern"]).max() <= 5e-5


def test_moved_for_an_encoder(client, minilm):
    j = post_ok(client, "/api/attention", **{"text": TEXT, "model": "all-minilm-l6-v2", "layers": [0], "measure": "moved"})
    cr = analysis.full_run(minilm, TEXT)
    assert np.abs(np.array(j["attention"]["0"]) - contributions.moved(cr, 0)).max() <= 5e-5


def test_rollout(client, smol):
    j = post_ok(client, "/api/rollout", **{"text": TEXT})
    R = np.array(j["rollout"])
    n = len(j["tokens"])
    assert j["layers"] == [str(L) for L in range(smol.cfg.n_layers)] and R.shape == (smol.cfg.n_layers, n, n)
    assert np.allclose(R.sum(-1), 1, atol=1e-5) and np.all(np.triu(R, 1) == 0)  # causal: nothing from later tokens
    assert np.abs(R - contributions.rollout(analysis.full_run(smol, TEXT))).max() <= 1e-6


def test_attribution_defaults_to_the_top_prediction_and_sums_to_its_logit(client):
    j = post_ok(client, "/api/attribution", **{"text": TEXT})
    preds = post_ok(client, "/api/predictions", **{"text": TEXT, "top_k": 2})["predictions"][-1]
    assert j["position"] == len(j["tokens"]) - 1 and j["target"] == {"id": preds[0]["id"], "text": preds[0]["text"]}
    total = j["embed"] + np.sum(j["heads"]) + np.sum(j["mlps"]) + j["bias"]
    assert abs(total - j["value"]) <= 1e-3 * max(1, abs(j["value"])) and j["contrast"] is None
    assert np.array(j["heads"]).shape == (30, 9) and len(j["mlps"]) == 30
    vs = post_ok(client, "/api/attribution", **{"text": TEXT, "target": preds[0]["id"], "contrast": preds[1]["id"]})
    assert vs["contrast"]["id"] == preds[1]["id"] and 0 < vs["value"] < j["value"]  # the top token leads the runner-up
    early = post_ok(client, "/api/attribution", **{"text": TEXT, "position": 1})
    assert early["position"] == 1


@pytest.mark.parametrize("body,code", [
    ({"text": TEXT, "model": "all-minilm-l6-v2"}, "not_causal"),
    ({"text": TEXT, "position": 99}, "out_of_range"),
    ({"text": TEXT, "position": -1}, "out_of_range"),
    ({"text": TEXT, "target": 10**6}, "out_of_range"),
    ({"text": TEXT, "contrast": 49152}, "out_of_range"),
    ({"text": TEXT, "target": -3}, "invalid_request"),
])
def test_attribution_errors(client, body, code):
    r = client.post("/api/attribution", json=body)
    assert r.status_code == 422 and r.json()["error"] == code, r.text


def test_an_unknown_measure_is_refused(client):
    r = client.post("/api/attention", json={"text": TEXT, "measure": "importance"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
