"""/api/models with models named by Hugging Face id (a hub cache the tests build, HF_HUB_OFFLINE=1):
each model's status and size; a request naming one that cannot load is a 503 model_unavailable
with the reason, and the working ones still answer."""

import re

import pytest
from fastapi.testclient import TestClient

from app.engine import Registry
from app.engine.registry import parse_model_paths
from app.main import create_app
from app.settings import Settings
from tests.conftest import TEST_HOST
from tests.engine.test_hub import hub_home, offline  # noqa: F401 (fixtures: the hub cache, HF_HOME on it offline)

SPEC = "hf:tiny/llama,hf:tiny/absent,hf:tiny/corrupt,hf:tiny/mamba,big=hf:tiny/gpt2"
REASONS = {"absent": r"not in the Hugging Face cache .* HF_HUB_OFFLINE is set: run `attnscope models pull hf:tiny/absent`",
           "corrupt": r"cannot read .*model\.safetensors", "mamba": r"model_type 'mamba' is not supported",
           "big": r"big needs \d+\.\d MB of float32 weights, more than the memory budget of"}


@pytest.fixture(scope="module")
def app_client(hub_home, tmp_path_factory):  # noqa: F811
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(hub_home["home"]))
        mp.delenv("HF_HUB_CACHE", raising=False)
        mp.setenv("HF_HUB_OFFLINE", "1")
        probe = Registry(parse_model_paths("hf:tiny/llama"))
        probe.prepare()
        budget = probe.nbytes("llama") * 1.5 / (1 << 20)  # the llama fits, the gpt2 beside it does not
        reg = Registry(parse_model_paths(SPEC), default="llama", cache_dir=tmp_path_factory.mktemp("store"),
                       memory_budget_mb=budget)
        settings = Settings(preload="default", allowed_hosts=TEST_HOST, memory_budget_mb=budget)
        with TestClient(create_app(settings, registry=reg)) as c:  # lifespan: prepare() finds them in the cache
            yield c, reg


def test_models_lists_status_and_size(app_client):
    client, reg = app_client
    body = client.get("/api/models").json()
    [llama] = body["models"]
    assert (llama["id"], llama["status"], llama["source"], llama["architecture"]) == ("llama", "ready", "hf:tiny/llama", "llama")
    assert llama["size_bytes"] == sum(w.nbytes for w in reg.get("llama").weights.values())
    assert llama["default"] and llama["name"] == "tiny/llama"
    down = {m["id"]: m for m in body["unavailable"]}
    assert set(down) == set(REASONS)
    for model_id, reason in REASONS.items():
        assert down[model_id]["status"] == "failed", down[model_id]
        assert re.search(reason, down[model_id]["reason"]), down[model_id]["reason"]
    assert down["absent"]["size_bytes"] is None  # no files: no size
    assert down["big"]["size_bytes"] == reg.nbytes("big") > 0  # its headers say, though it did not load
    assert down["big"]["source"] == "hf:tiny/gpt2"


@pytest.mark.parametrize("model_id", sorted(REASONS))
def test_a_request_naming_a_failed_model_is_503_with_the_reason(app_client, model_id):
    client, _ = app_client
    r = client.post("/api/attention", json={"text": "the quick brown fox", "model": model_id})
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "model_unavailable"
    assert re.search(REASONS[model_id], r.json()["detail"]), r.json()["detail"]
    # the GET twin and an export (their ETags need the weights' hash first) say the same reason
    for got in (client.get("/api/attention", params={"text": "the quick brown fox", "model": model_id}),
                client.get("/export/heatmap.json", params={"text": "the quick brown fox", "model": model_id})):
        assert got.status_code == 503 and got.json()["detail"] == r.json()["detail"], got.text
        assert got.headers["cache-control"] == "no-store"


def test_the_working_model_answers_beside_the_broken_ones(app_client):
    client, reg = app_client
    r = client.post("/api/attention", json={"text": "the quick brown fox", "model": "llama"})
    assert r.status_code == 200, r.text
    run = reg.get("llama").run("the quick brown fox")
    assert [t["id"] for t in r.json()["tokens"]] == run.ids
    assert client.post("/api/attention", json={"text": "x", "model": "no-such"}).status_code == 404


class HeldByAnotherRequest:
    """A model's load lock while another request loads it: waiting on it here is the bug."""

    def locked(self):
        return True

    def __enter__(self):
        raise AssertionError("/api/models waited for a model another request is loading")

    def __exit__(self, *exc):
        return False


def test_a_model_being_loaded_is_listed_as_loading_not_waited_for(offline, tmp_path):  # noqa: F811
    reg = Registry(parse_model_paths("hf:tiny/llama,hf:tiny/gpt2"), default="llama", cache_dir=tmp_path)
    with TestClient(create_app(Settings(preload="default", allowed_hosts=TEST_HOST), registry=reg)) as client:
        reg._locks["gpt2"] = HeldByAnotherRequest()
        body = client.get("/api/models").json()
        assert [m["id"] for m in body["models"]] == ["llama"]
        [gpt2] = body["unavailable"]
        assert (gpt2["id"], gpt2["status"], gpt2["reason"]) == ("gpt2", "loading", None)
        assert gpt2["size_bytes"] == reg.nbytes("gpt2") > 0


def test_preload_all_starts_beside_a_corrupt_model(offline, tmp_path):  # noqa: F811
    reg = Registry(parse_model_paths("hf:tiny/llama,hf:tiny/corrupt"), default="llama", cache_dir=tmp_path)
    with TestClient(create_app(Settings(preload="all", allowed_hosts=TEST_HOST), registry=reg)) as client:
        assert reg.status("llama") == ("ready", None)  # loaded at start, before any request
        body = client.get("/api/models").json()
        assert [m["id"] for m in body["models"]] == ["llama"]
        [corrupt] = body["unavailable"]
        assert corrupt["status"] == "failed" and re.search(REASONS["corrupt"], corrupt["reason"])
