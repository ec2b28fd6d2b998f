"""The engine refuses bad requests and bad files with its own exceptions and a message that says why.

The tiny model here is written with numpy + safetensors (no torch): a one-layer GPT-2 with a
byte-level BPE tokenizer trained on one sentence.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file
from tokenizers import ByteLevelBPETokenizer

from app.engine import (
    EmptyInputError,
    EngineError,
    InputTooLongError,
    ModelLoadError,
    Registry,
    UnknownModelError,
    load_model,
)
from app.engine.registry import ModelSource

N_POS = 64
REPO = Path(__file__).resolve().parents[2]


def make_tiny_gpt2(folder: Path, seed: int = 0, d: int = 16, n_head: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tk = ByteLevelBPETokenizer()
    tk.train_from_iterator(["hello world, the quick brown fox"] * 3, vocab_size=280, min_frequency=1,
                           show_progress=False)
    tk.save(str(folder / "tokenizer.json"))
    V = tk.get_vocab_size()
    r = np.random.default_rng(seed)

    def f(*shape):
        return (r.standard_normal(shape) * 0.2).astype(np.float32)

    h = "h.0."
    sd = {"wte.weight": f(V, d), "wpe.weight": f(N_POS, d), "ln_f.weight": 1 + f(d), "ln_f.bias": f(d),
          h + "ln_1.weight": 1 + f(d), h + "ln_1.bias": f(d), h + "ln_2.weight": 1 + f(d), h + "ln_2.bias": f(d),
          h + "attn.c_attn.weight": f(d, 3 * d), h + "attn.c_attn.bias": f(3 * d),
          h + "attn.c_proj.weight": f(d, d), h + "attn.c_proj.bias": f(d),
          h + "mlp.c_fc.weight": f(d, 4 * d), h + "mlp.c_fc.bias": f(4 * d),
          h + "mlp.c_proj.weight": f(4 * d, d), h + "mlp.c_proj.bias": f(d)}
    save_file(sd, str(folder / "model.safetensors"))
    config = {"model_type": "gpt2", "n_layer": 1, "n_head": n_head, "n_embd": d, "n_positions": N_POS,
              "vocab_size": V}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "tiny-gpt2")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def tiny(tiny_dir, store):
    return load_model(tiny_dir, "tiny", cache_dir=store, max_tokens=5)


@pytest.fixture
def broken(tiny_dir, tmp_path):
    """A fresh copy of the good folder, to break one thing in."""
    return Path(shutil.copytree(tiny_dir, tmp_path / "broken"))


def assert_load_error(path, store, *fragments):
    with pytest.raises(ModelLoadError) as e:
        load_model(path, "x", cache_dir=store)
    msg = str(e.value)
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    assert isinstance(e.value, EngineError)
    return msg


# --- the registry ----------------------------------------------------------------------------------

def test_unknown_model_id_lists_the_known_ones(tiny_dir, tmp_path, store):
    other = make_tiny_gpt2(tmp_path / "other", seed=1)
    reg = Registry([ModelSource("tiny-a", "Tiny A", tiny_dir), ModelSource("tiny-b", "Tiny B", other)],
                   cache_dir=store)
    with pytest.raises(UnknownModelError) as e:
        reg.get("nope")
    msg = str(e.value)
    assert msg == "unknown model 'nope'; known models: tiny-a, tiny-b"
    assert e.value.model_id == "nope" and e.value.known == ["tiny-a", "tiny-b"]
    assert isinstance(e.value, KeyError) and isinstance(e.value, EngineError)
    assert reg.loaded() == []  # nothing was loaded on the way
    assert reg.get("tiny-b").id == "tiny-b"  # the registry still works after the refusal
    assert reg.get().id == "tiny-a"  # no id: the default (the first source when DEFAULT_MODEL is absent)


def test_unknown_model_id_with_no_models(tmp_path):
    with pytest.raises(UnknownModelError, match="known models: none"):
        Registry([], cache_dir=tmp_path).get("nope")


def test_registry_model_that_is_not_installed_or_missing(tmp_path):
    reg = Registry([ModelSource("absent", "Absent", None, "pip install absent-model"),
                    ModelSource("gone", "Gone", tmp_path / "gone")], cache_dir=tmp_path)
    with pytest.raises(ModelLoadError, match="not installed: pip install absent-model"):
        reg.get("absent")
    with pytest.raises(ModelLoadError, match="does not exist"):
        reg.get("gone")
    assert reg.loaded() == []


# --- the text --------------------------------------------------------------------------------------

def test_text_longer_than_the_limit(tiny):
    text = "hello world, the quick brown fox jumps"
    n = len(tiny.tokenizer.encode(text))
    assert n > 5
    with pytest.raises(InputTooLongError) as e:
        tiny.run(text)
    assert str(e.value) == f"the text has {n} tokens; this model takes at most 5"
    assert (e.value.n_tokens, e.value.limit) == (n, 5)
    assert isinstance(e.value, ValueError) and isinstance(e.value, EngineError)


def test_text_at_the_limit_runs(tiny):
    text = "hello world"
    ids = [t.id for t in tiny.tokenizer.encode(text)]
    assert len(ids) <= 5
    assert tiny.run(text).ids == ids
    # grow a text token by token up to exactly the limit: accepted; one more: refused
    words = "hello world, the quick brown fox jumps".split(" ")
    texts = [" ".join(words[:i]) for i in range(1, len(words) + 1)]
    counts = [len(tiny.tokenizer.encode(t)) for t in texts]
    at = [t for t, c in zip(texts, counts) if c <= 5][-1]
    over = [t for t, c in zip(texts, counts) if c > 5][0]
    assert len(tiny.run(at).ids) <= 5
    with pytest.raises(InputTooLongError):
        tiny.run(over)


def test_limit_is_the_context_when_max_tokens_is_larger(tiny_dir, store):
    m = load_model(tiny_dir, "tiny", cache_dir=store, max_tokens=10_000)
    assert m.max_tokens == N_POS
    with pytest.raises(InputTooLongError, match=f"this model takes at most {N_POS}"):
        m.run("fox " * (N_POS + 1))


@pytest.mark.parametrize("text", ["", " ", "   \n\t  \r\n", "\u3000\u00a0", None])
def test_empty_or_whitespace_text(tiny, text):
    with pytest.raises(EmptyInputError) as e:
        tiny.run(text)
    assert "empty" in str(e.value) and "whitespace" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, EngineError)


# --- the files -------------------------------------------------------------------------------------

def test_missing_path(tmp_path, store):
    assert_load_error(tmp_path / "no-such-model", store, "no-such-model", "does not exist")


def test_folder_without_config(broken, store):
    (broken / "config.json").unlink()
    assert_load_error(broken, store, "no config.json", "not a Hugging Face model folder")


def test_config_that_is_not_json(broken, store):
    (broken / "config.json").write_text('{"model_type": ')
    assert_load_error(broken, store, "config.json is not valid JSON")


@pytest.mark.parametrize("kind", ["t5", None])
def test_unsupported_model_type(broken, store, kind):
    (broken / "config.json").write_text(json.dumps({"model_type": kind} if kind else {"n_layer": 1}))
    assert_load_error(broken, store, f"model_type {kind!r} is not supported", "llama", "bert", "gpt2")


def test_config_lacking_a_field(broken, store):
    config = json.loads((broken / "config.json").read_text())
    del config["n_head"]
    (broken / "config.json").write_text(json.dumps(config))
    assert_load_error(broken, store, "config.json lacks", "n_head")


def test_checkpoint_lacking_a_weight(broken, store):
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "n_layer": 2}))  # there is no h.1
    assert_load_error(broken, store, "lacks weight", "h.1.ln_1.weight")


@pytest.mark.parametrize("cut", ["half", "last-byte", "header", "empty", "garbage"])
def test_truncated_or_corrupt_safetensors(broken, store, cut):
    f = broken / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes({"half": data[: len(data) // 2], "last-byte": data[:-1], "header": data[:4], "empty": b"",
                   "garbage": np.random.default_rng(0).bytes(4096)}[cut])
    assert_load_error(broken, store, "cannot read", "model.safetensors")


def test_folder_with_only_pytorch_bin(broken, store):
    (broken / "model.safetensors").rename(broken / "pytorch_model.bin")
    assert_load_error(broken, store, "has no model.safetensors", "pytorch_model.bin")


def test_folder_without_tokenizer(broken, store):
    (broken / "tokenizer.json").unlink()
    assert_load_error(broken, store, "no tokenizer.json")


def test_corrupt_tokenizer(broken, store):
    (broken / "tokenizer.json").write_text("{nope")
    assert_load_error(broken, store, "cannot read", "tokenizer.json")


@pytest.mark.parametrize("content", ["random", "empty", "magic-only", "magic-v3-garbage"])
def test_gguf_full_of_garbage(tmp_path, store, content):
    rng = np.random.default_rng(1)
    data = {"random": rng.bytes(4096), "empty": b"", "magic-only": b"GGUF",
            "magic-v3-garbage": b"GGUF" + (3).to_bytes(4, "little") + rng.bytes(4088)}[content]
    f = tmp_path / "garbage.gguf"
    f.write_bytes(data)
    assert_load_error(f, store, "cannot read GGUF file garbage.gguf")


def _write_gguf(path: Path, arch="llama", with_tensor=True, with_meta=True):
    w = gguf.GGUFWriter(str(path), arch)
    if with_meta:
        w.add_block_count(1)
        w.add_context_length(32)
        w.add_embedding_length(8)
        w.add_feed_forward_length(16)
        w.add_head_count(2)
        w.add_layer_norm_rms_eps(1e-5)
    if with_tensor:
        w.add_tensor("token_embd.weight", np.ones((10, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_of_an_unsupported_architecture(tmp_path, store):
    f = _write_gguf(tmp_path / "other.gguf", arch="gpt2")
    assert_load_error(f, store, "GGUF architecture 'gpt2' is not supported")


def test_gguf_lacking_metadata_or_tensors(tmp_path, store):
    assert_load_error(_write_gguf(tmp_path / "a.gguf", with_meta=False), store,
                      "a.gguf lacks metadata", "llama.attention.head_count")
    assert_load_error(_write_gguf(tmp_path / "b.gguf"), store, "b.gguf lacks tensor", "blk.0.attn_q.weight")


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_gguf(tmp_path, store, keep):
    data = _write_gguf(tmp_path / "whole.gguf").read_bytes()
    f = tmp_path / "cut.gguf"
    f.write_bytes(data[: int(len(data) * keep)])
    assert_load_error(f, store, "cannot read GGUF file cut.gguf")


@pytest.mark.parametrize("name", ["weights.bin", "model.safetensors", "config.json", "notes"])
def test_file_that_is_not_gguf(tmp_path, store, name):
    f = tmp_path / name
    f.write_bytes(b"not a model")
    assert_load_error(f, store, name, "is a file but not a .gguf file")


def test_bad_files_do_not_crash_a_fresh_process(tmp_path, tiny_dir):
    """Native readers (safetensors' Rust, numpy mmap) must raise, not abort: check in a clean interpreter."""
    bad = tmp_path / "bad"
    shutil.copytree(tiny_dir, bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 3])
    (tmp_path / "garbage.gguf").write_bytes(np.random.default_rng(2).bytes(8192))
    (tmp_path / "empty.gguf").write_bytes(b"")
    script = (
        "import sys\n"
        "from app.engine import load_model, ModelLoadError\n"
        "for p in sys.argv[2:]:\n"
        "    try:\n"
        "        load_model(p, 'x', cache_dir=sys.argv[1])\n"
        "    except ModelLoadError as e:\n"
        "        print('refused', p)\n"
        "print('alive')\n"
    )
    paths = [bad, tmp_path / "garbage.gguf", tmp_path / "empty.gguf", tmp_path / "missing"]
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "store"), *map(str, paths)],
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"refused {p}" for p in paths] + ["alive"], proc.stderr


def test_config_that_disagrees_with_the_weights_is_refused_at_load(tmp_path):
    folder = make_tiny_gpt2(tmp_path / "g")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "n_head": 3}))
    with pytest.raises(ModelLoadError, match="shape"):
        load_model(folder, "t", cache_dir=tmp_path / "c")


def test_tokenizer_larger_than_the_embedding_is_refused_at_load(tmp_path):
    folder = make_tiny_gpt2(tmp_path / "g")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "vocab_size": 100}))
    from safetensors.numpy import load_file, save_file
    sd = load_file(folder / "model.safetensors")
    sd = {k: (v[:100] if k.endswith("wte.weight") else v) for k, v in sd.items()}
    save_file(sd, folder / "model.safetensors")
    with pytest.raises(ModelLoadError, match="tokenizer has"):
        load_model(folder, "t", cache_dir=tmp_path / "c")
