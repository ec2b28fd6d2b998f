"""Models by Hugging Face id, through a real hub cache the tests build, with HF_HUB_OFFLINE=1: no network.

A model loaded by id must be the folder-loaded model exactly (the folder's parity with transformers is
tests/engine/test_parity_tiny.py's); a missing id, a corrupt download, an unsupported architecture
and the memory budget each fail with a reason a user can act on."""

import json
import re

import numpy as np
import pytest

from app.engine import ModelLoadError, Registry, hub, load_model
from app.engine.registry import MB, parse_model_paths
from tests.engine.hub_cache import add_to_hub_cache
from tests.engine.test_parity_tiny import TEXTS, build_gpt2, build_llama


@pytest.fixture(scope="module")
def hub_home(tmp_path_factory):
    """HF_HOME with a hub cache holding: tiny/llama (main), tiny/gpt2 (main, plus an older commit tagged
    layer-scaled), tiny/corrupt (weights cut short), tiny/mamba (a model_type we do not read)."""
    home = tmp_path_factory.mktemp("hf_home")
    cache = home / "hub"
    folders = {}
    for name, build, kw in [("llama", build_llama, {}), ("gpt2", build_gpt2, {}),
                            ("gpt2-scaled", build_gpt2, {"scale_attn_by_inverse_layer_idx": True})]:
        folders[name] = tmp_path_factory.mktemp(name)
        build(folders[name], **kw)
    snaps = {"llama": add_to_hub_cache(cache, "tiny/llama", folders["llama"]),
             "gpt2": add_to_hub_cache(cache, "tiny/gpt2", folders["gpt2"]),
             "gpt2-scaled": add_to_hub_cache(cache, "tiny/gpt2", folders["gpt2-scaled"], ref="layer-scaled")}
    corrupt = tmp_path_factory.mktemp("corrupt")
    for p in folders["llama"].iterdir():
        data = p.read_bytes()
        (corrupt / p.name).write_bytes(data[: len(data) // 2] if p.name == "model.safetensors" else data)
    add_to_hub_cache(cache, "tiny/corrupt", corrupt)
    mamba = tmp_path_factory.mktemp("mamba")
    for p in folders["llama"].iterdir():
        (mamba / p.name).write_bytes(p.read_bytes())
    cfg = json.loads((mamba / "config.json").read_text())
    (mamba / "config.json").write_text(json.dumps({**cfg, "model_type": "mamba", "architectures": ["MambaForCausalLM"]}))
    add_to_hub_cache(cache, "tiny/mamba", mamba)
    return {"home": home, "folders": folders, "snapshots": snaps}


@pytest.fixture
def offline(monkeypatch, hub_home):
    monkeypatch.setenv("HF_HOME", str(hub_home["home"]))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return hub_home


def registry(spec, tmp_path, **kw):
    reg = Registry(parse_model_paths(spec), default=parse_model_paths(spec)[0].id, cache_dir=tmp_path / "store", **kw)
    reg.prepare()
    return reg


def test_settings_entries_name_hub_ids():
    sources = parse_model_paths("hf:tiny/llama,my-gpt=hf:tiny/gpt2@layer-scaled:/models/x.gguf:hf:Org/Some.Model@0123abc")
    assert [(s.id, s.name, str(s.hf) if s.hf else None) for s in sources] == [
        ("llama", "tiny/llama", "hf:tiny/llama"), ("my-gpt", "tiny/gpt2", "hf:tiny/gpt2@layer-scaled"),
        ("x", "x", None), ("some-model", "Org/Some.Model", "hf:Org/Some.Model@0123abc")]
    assert sources[1].hf.revision == "layer-scaled" and sources[0].hf.revision is None
    assert all(s.path is None for s in sources if s.hf)  # nothing is fetched while parsing settings
    for bad in ("hf:llama", "hf:tiny/llama@", "hf:/x", "id=hf:a/b/c"):
        with pytest.raises(ValueError, match="hf:ORG/NAME"):
            parse_model_paths(bad)


def test_the_environment_is_read_at_each_call(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert hub.cache_dir() == tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hub.cache_dir() == tmp_path / "elsewhere"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not hub.offline()


def test_a_model_by_id_is_the_folder_model_exactly(offline, tmp_path):
    reg = registry("hf:tiny/llama", tmp_path)
    by_id = reg.get("llama")
    assert by_id.source == offline["snapshots"]["llama"] and by_id.name == "tiny/llama"
    assert str(hub.cache_dir()) in str(by_id.source)
    folder = load_model(offline["folders"]["llama"], "llama-folder", cache_dir=tmp_path / "folder-store")
    assert by_id.cfg == folder.cfg
    for text in TEXTS:
        a, b = by_id.run(text), folder.run(text)
        assert a.ids == b.ids
        assert set(a.cache) == set(b.cache)
        for name in a.cache:
            assert np.array_equal(a[name], b[name]), (text, name)
        assert np.array_equal(a.logits, b.logits)


def test_a_revision_picks_that_commit(offline, tmp_path):
    scaled_commit = offline["snapshots"]["gpt2-scaled"].name
    reg = registry(f"main=hf:tiny/gpt2,tag=hf:tiny/gpt2@layer-scaled,commit=hf:tiny/gpt2@{scaled_commit}", tmp_path)
    assert not reg.get("main").cfg.attn_scale_by_layer
    assert reg.get("tag").cfg.attn_scale_by_layer and reg.get("commit").cfg.attn_scale_by_layer
    assert reg.get("tag").source == reg.get("commit").source == offline["snapshots"]["gpt2-scaled"]
    text = TEXTS[1]
    assert not np.array_equal(reg.get("main").run(text).logits, reg.get("tag").run(text).logits)


def test_models_are_fetched_at_prepare_never_at_get(offline, tmp_path, monkeypatch):
    reg = Registry(parse_model_paths("hf:tiny/llama"), cache_dir=tmp_path / "store")
    with pytest.raises(ModelLoadError, match="has not been fetched"):
        reg.get("llama")  # before prepare: an error, not a download
    reg.prepare()

    def no_fetch(*a, **k):
        raise AssertionError("fetched inside get")

    monkeypatch.setattr(hub, "fetch", no_fetch)
    assert reg.status("llama") == ("not_loaded", None)
    assert reg.get("llama").cfg.architecture == "llama"
    assert reg.status("llama") == ("ready", None)


@pytest.mark.parametrize("spec,model_id,reason", [
    ("hf:tiny/absent", "absent", r"hf:tiny/absent is not in the Hugging Face cache \(.*\) and HF_HUB_OFFLINE is set: "
                                 r"run `attnscope models pull hf:tiny/absent`"),
    ("hf:tiny/llama@no-such-branch", "llama", "not in the Hugging Face cache"),
    ("hf:tiny/corrupt", "corrupt", r"cannot read .*model\.safetensors"),
    ("hf:tiny/mamba", "mamba", r"model_type 'mamba' is not supported \(supported: llama, mistral, qwen2, qwen3, gemma, phi3, gpt_neox, bert, roberta, distilbert, gpt2\)"),
])
def test_a_model_that_cannot_load_fails_with_its_reason(offline, tmp_path, spec, model_id, reason):
    reg = registry(f"hf:tiny/llama,{spec}" if model_id != "llama" else spec, tmp_path)
    with pytest.raises(ModelLoadError, match=reason):
        reg.get(model_id)
    status, why = reg.status(model_id)
    assert status == "failed" and why is not None
    assert re.search(reason, why), why
    if model_id != "llama":  # one broken model does not take the others with it
        assert reg.get("llama").cfg.architecture == "llama"


def test_the_memory_budget_refuses_a_model_saying_both_numbers(offline, tmp_path):
    probe = registry("hf:tiny/llama,hf:tiny/gpt2", tmp_path)
    need_llama, need_gpt2 = probe.nbytes("llama"), probe.nbytes("gpt2")
    assert need_llama == sum(w.nbytes for w in probe.get("llama").weights.values())  # the headers' count is what loads

    small = need_llama / MB / 2
    reg = registry("hf:tiny/llama", tmp_path, memory_budget_mb=small)
    with pytest.raises(ModelLoadError) as e:
        reg.get("llama")
    assert f"needs {need_llama / MB:.1f} MB" in str(e.value) and f"memory budget of {small:g} MB" in str(e.value)
    assert reg.status("llama")[0] == "failed"

    both = (need_llama + need_gpt2 / 2) / MB  # room for the first, not for the second beside it
    reg = registry("hf:tiny/llama,hf:tiny/gpt2", tmp_path, memory_budget_mb=both)
    reg.get("llama")
    with pytest.raises(ModelLoadError, match=rf"gpt2 needs {need_gpt2 / MB:.1f} MB .* budget of {both:g} MB .* "
                                             rf"\(llama\) use {need_llama / MB:.1f} MB"):
        reg.get("gpt2")


def test_from_env_reads_hub_ids_and_the_budget(offline, tmp_path):
    reg = Registry.from_env("hf:tiny/llama", cache_dir=tmp_path, memory_budget_mb=0.001)
    assert reg.sources["llama"].hf == hub.HubId("tiny/llama")
    reg.prepare()
    with pytest.raises(ModelLoadError, match=r"memory budget of 0\.001 MB \(ATTNSCOPE_MEMORY_BUDGET_MB\)"):
        reg.get("llama")
