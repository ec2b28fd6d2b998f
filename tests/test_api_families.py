"""The families added for issue 16 through the whole app: every API operation and page answers for a tiny
Gemma, Phi-3 (partial rotary), GPT-NeoX (parallel residual), RoBERTa and DistilBERT, with the numbers
the forward pass computed (the parity with transformers is tests/engine/test_parity_tiny.py's)."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.engine import Registry, forward
from app.engine.registry import parse_model_paths
from app.main import create_app
from app.settings import Settings
from tests.conftest import TEST_HOST
from tests.engine.test_parity_tiny import build_distilbert, build_gemma, build_gpt_neox, build_phi3, build_roberta

FAMILIES = {  # id -> (builder, overrides, architecture, model_type)
    "gemma": (build_gemma, {}, "llama", "gemma"),
    "phi3": (build_phi3, {"partial_rotary_factor": 0.5}, "llama", "phi3"),
    "neox": (build_gpt_neox, {}, "gpt_neox", "gpt_neox"),
    "roberta": (build_roberta, {}, "bert", "roberta"),
    "distilbert": (build_distilbert, {}, "bert", "distilbert"),
}
TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    entries = []
    for name, (build, kw, _, _) in FAMILIES.items():
        folder = tmp_path_factory.mktemp(name)
        build(folder, **kw)
        entries.append(f"{name}={folder}")
    reg = Registry(parse_model_paths(",".join(entries)), default="gemma", cache_dir=tmp_path_factory.mktemp("store"))
    with TestClient(create_app(Settings(preload="all", allowed_hosts=TEST_HOST), registry=reg)) as c:
        yield c, reg


def test_models_lists_each_family(app_client):
    client, _ = app_client
    models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    assert set(models) == set(FAMILIES)
    for name, (_, _, arch, kind) in FAMILIES.items():
        m = models[name]
        assert (m["status"], m["architecture"], m["model_type"], m["causal"]) == ("ready", arch, kind, arch != "bert"), m
        assert m["d_rotary"] == {"phi3": 8, "neox": 4, "gemma": 32}.get(name, 0), m  # rotary dims per head (Phi-3 0.5 of 16, Pythia 0.25 of 16)


@pytest.mark.parametrize("model_id", FAMILIES)
def test_every_operation_answers(app_client, model_id):
    client, reg = app_client
    model = reg.get(model_id)
    causal = model.cfg.causal
    base = {"text": TEXT, "model": model_id}
    calls = [("attention", {}), ("head", {"layer": 1, "head": 2, "detail": True}), ("rollout", {}), ("flow", {}),
             ("residual", {}), ("heads", {}), ("compare", None)]
    if causal:
        calls += [("predictions", {}), ("lens", {}), ("attribution", {}), ("generate", {"max_new_tokens": 3})]
    for op, extra in calls:
        body = {"model": model_id, "sentences": ["a quick fox", "the fox ran"], "word": "fox"} if extra is None else {**base, **extra}
        r = client.post(f"/api/{op}", json=body)
        assert r.status_code == 200, (op, r.text)
    if not causal:
        r = client.post("/api/predictions", json=base)
        assert r.status_code == 422 and r.json()["error"] == "not_causal", r.text
    for page in ("/", "/explain", "/lens"):  # (the lesson's sentence needs words the 300-token vocabularies cut)
        r = client.get(page, params={"model": model_id, "text": TEXT})
        assert r.status_code == 200, (page, r.text[:300])


@pytest.mark.parametrize("model_id", FAMILIES)
def test_attention_is_the_forward_pass(app_client, model_id):
    """The API's patterns are the forward pass's, rounded to its 4 decimals; the head detail's q is hook_q
    (after the partial rotation, for the rotary families) and its pre-RoPE q is present exactly for them."""
    client, reg = app_client
    model = reg.get(model_id)
    body = client.post("/api/attention", json={"text": TEXT, "model": model_id}).json()
    ids = [t["id"] for t in body["tokens"]]
    _, cache = forward(model.cfg, model.weights, ids, logits=None)
    for L in range(model.cfg.n_layers):
        got = np.array(body["attention"][str(L)], dtype=np.float64)  # [head, query, key], rounded to 4 decimals
        np.testing.assert_allclose(got, cache[f"blocks.{L}.attn.hook_pattern"], rtol=0, atol=5e-5 + 1e-7)
    head = client.post("/api/head", json={"text": TEXT, "model": model_id, "layer": 1, "head": 2, "detail": True}).json()
    np.testing.assert_allclose(head["q"], cache["blocks.1.attn.hook_q"][:, 2], atol=5e-5 + 1e-7 * np.abs(cache["blocks.1.attn.hook_q"]).max())
    assert (head.get("q_pre_rope") is not None) == model.cfg.rotary


@pytest.mark.parametrize("model_id", [m for m, f in FAMILIES.items() if f[2] != "bert"])
def test_attribution_parts_sum_to_the_logit(app_client, model_id):
    """Direct logit attribution holds for scaled embeddings (Gemma) and the parallel residual (GPT-NeoX):
    embed + heads + mlps + bias is the model's own logit."""
    client, _ = app_client
    a = client.post("/api/attribution", json={"text": TEXT, "model": model_id}).json()
    total = a["embed"] + sum(map(sum, a["heads"])) + sum(a["mlps"]) + a["bias"]
    assert total == pytest.approx(a["value"], rel=1e-3, abs=1e-3)
