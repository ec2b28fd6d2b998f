"""`attnscope models pull hf:ORG/NAME`: through the hub cache the tests build, with HF_HUB_OFFLINE=1 (no
network: the pull finds what is cached, says where and how big; what it cannot find is one line and exit 1)."""

import pytest

from app.engine import load_model
from app.engine.registry import MB
from attnscope import cli
from tests.engine.test_hub import hub_home, offline  # noqa: F401 (the hub cache fixtures)


def test_pull_finds_the_model_and_says_where_and_how_big(offline, capsys, tmp_path):  # noqa: F811
    assert cli.main(["models", "pull", "hf:tiny/llama"]) == 0
    out = capsys.readouterr().out
    snapshot = offline["snapshots"]["llama"]
    size = sum(w.nbytes for w in load_model(snapshot, cache_dir=tmp_path).weights.values())
    assert f"pulled hf:tiny/llama (llama, revision {snapshot.name}) into {snapshot}" in out
    assert f"{size / MB:.1f} MB of float32 weights" in out and "config.json" in out and "model.safetensors" in out
    assert "ATTNSCOPE_MODELS=hf:tiny/llama" in out


def test_pull_a_revision(offline, capsys):  # noqa: F811
    assert cli.main(["models", "pull", "-q", "hf:tiny/gpt2@layer-scaled"]) == 0
    assert f"into {offline['snapshots']['gpt2-scaled']}" in capsys.readouterr().out


@pytest.mark.parametrize("spec,error", [
    ("hf:tiny/absent", "hf:tiny/absent is not in the Hugging Face cache"),
    ("hf:tiny/mamba", "model_type 'mamba' is not supported"),
    ("hf:nothing", "is not a Hugging Face id: write hf:ORG/NAME"),
])
def test_pull_errors_are_one_line(offline, capsys, spec, error):  # noqa: F811
    assert cli.main(["models", "pull", spec]) == 1
    err = capsys.readouterr().err
    assert err.startswith("attnscope: error: ") and error in err and err.count("\n") == 1, err
