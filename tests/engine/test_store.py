"""The converted-weight store: written once per source version, memory-mapped read-only after."""

import json
import logging
import mmap
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from app.engine import load_model
from app.engine import loaders
from tests.engine.test_errors import make_tiny_gpt2

TEXT = "hello world, the quick brown fox"


def backing(a: np.ndarray):
    """The object at the bottom of an array's chain of bases (an mmap for stored weights)."""
    while isinstance(a, np.ndarray):
        a = a.base
    return a.obj if isinstance(a, memoryview) else a


def store_dirs(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir() if p.is_dir()) if cache_dir.exists() else []


def assert_same_run(a, b):
    """a, b: Models, or Runs already made (a Run keeps its arrays, a Model maps its store)."""
    ra, rb = (x.run(TEXT) if hasattr(x, "run") else x for x in (a, b))
    assert ra.ids == rb.ids
    assert set(ra.cache) == set(rb.cache)
    for k in ra.cache:
        assert np.array_equal(ra.cache[k], rb.cache[k]), k
    assert np.array_equal(ra.logits, rb.logits)


@pytest.fixture
def tiny_dir(tmp_path):
    return make_tiny_gpt2(tmp_path / "tiny-gpt2")


@pytest.fixture
def conversions(monkeypatch):
    """Counts the conversions from the source folder (a store hit does none)."""
    calls = []
    real = loaders.read_hf_folder

    def counting(folder):
        calls.append(folder)
        return real(folder)

    monkeypatch.setattr(loaders, "read_hf_folder", counting)
    return calls


def test_second_load_maps_the_stored_copy(tiny_dir, tmp_path, conversions):
    cache = tmp_path / "store"
    first = load_model(tiny_dir, "tiny", cache_dir=cache)
    assert len(conversions) == 1
    [d] = store_dirs(cache)
    assert d.name.startswith("tiny-") and len(d.name) == len("tiny-") + 16
    assert sorted(p.name for p in d.iterdir()) == ["convert.lock", "meta.json", "weights.bin"]  # no temporary files left
    meta = json.loads((d / "meta.json").read_text())
    assert meta["version"] == loaders.STORE_VERSION and meta["config"] == first.cfg.to_dict()

    second = load_model(tiny_dir, "tiny", cache_dir=cache)
    assert len(conversions) == 1, "the second load converted the source again instead of using the store"
    assert second.cfg == first.cfg and second.max_tokens == first.max_tokens
    assert set(second.weights) == set(first.weights)
    source = load_file(tiny_dir / "model.safetensors")
    assert np.array_equal(second.weights["embed.W_E"], source["wte.weight"])
    assert np.array_equal(second.weights["blocks.0.attn.W_QKV"], source["h.0.attn.c_attn.weight"])
    for name, a in second.weights.items():
        assert a.dtype == np.float32, name
        assert not a.flags.writeable and not a.flags.owndata, name
        assert isinstance(backing(a), mmap.mmap), f"{name} is not backed by the mapped store"
        assert a.ctypes.data % 64 == 0, f"{name} is not 64-byte aligned"
        assert np.array_equal(a, first.weights[name]), name
    with pytest.raises(ValueError):
        second.weights["embed.W_E"][0, 0] = 1.0  # read-only: a hook cannot corrupt the shared copy
    # the first load also runs from its freshly written, mapped copy
    assert all(isinstance(backing(a), mmap.mmap) for a in first.weights.values())
    assert_same_run(first, second)


def test_store_hit_does_not_read_the_weights(tiny_dir, tmp_path, monkeypatch):
    cache = tmp_path / "store"
    first = load_model(tiny_dir, "tiny", cache_dir=cache)

    def refuse(*a, **k):
        raise AssertionError("the source weights were read on a store hit")

    monkeypatch.setattr(loaders, "read_hf_folder", refuse)
    monkeypatch.setattr(loaders, "read_safetensors", refuse)
    second = load_model(tiny_dir, "tiny", cache_dir=cache)
    assert_same_run(first, second)


def test_touching_the_source_makes_a_new_key(tiny_dir, tmp_path, conversions):
    cache = tmp_path / "store"
    load_model(tiny_dir, "tiny", cache_dir=cache)
    key = loaders.source_key(tiny_dir)
    assert [d.name for d in store_dirs(cache)] == [f"tiny-{key}"]

    # same bytes, new mtime
    cfg_file = tiny_dir / "config.json"
    st = cfg_file.stat()
    os.utime(cfg_file, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    key2 = loaders.source_key(tiny_dir)
    assert key2 != key
    load_model(tiny_dir, "tiny", cache_dir=cache)
    assert len(conversions) == 2
    assert [d.name for d in store_dirs(cache)] == sorted([f"tiny-{key}", f"tiny-{key2}"])

    # touching the weights file does too
    w = tiny_dir / "model.safetensors"
    st = w.stat()
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns + 7_000_000_000))
    assert loaders.source_key(tiny_dir) not in (key, key2)
    load_model(tiny_dir, "tiny", cache_dir=cache)
    assert len(conversions) == 3 and len(store_dirs(cache)) == 3


def test_rewritten_config_is_not_served_stale(tiny_dir, tmp_path, conversions):
    cache = tmp_path / "store"
    before = load_model(tiny_dir, "tiny", cache_dir=cache)
    cfg_file = tiny_dir / "config.json"
    config = json.loads(cfg_file.read_text())
    cfg_file.write_text(json.dumps({**config, "layer_norm_epsilon": 0.25}))
    st = cfg_file.stat()  # the store key is (name, size, mtime) per file: make the mtime differ for sure
    os.utime(cfg_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    after = load_model(tiny_dir, "tiny", cache_dir=cache)
    assert len(conversions) == 2
    assert before.cfg.eps == 1e-5 and after.cfg.eps == 0.25
    assert len(store_dirs(cache)) == 2
    assert not np.array_equal(before.run(TEXT).logits, after.run(TEXT).logits)


def test_different_model_ids_get_their_own_store(tiny_dir, tmp_path, conversions):
    cache = tmp_path / "store"
    load_model(tiny_dir, "one", cache_dir=cache)
    load_model(tiny_dir, "two", cache_dir=cache)
    assert [d.name.split("-")[0] for d in store_dirs(cache)] == ["one", "two"]


def test_stale_store_version_is_rebuilt(tiny_dir, tmp_path, conversions):
    cache = tmp_path / "store"
    first = load_model(tiny_dir, "tiny", cache_dir=cache)
    [d] = store_dirs(cache)
    meta = json.loads((d / "meta.json").read_text())
    (d / "meta.json").write_text(json.dumps({**meta, "version": loaders.STORE_VERSION + 1}))
    second = load_model(tiny_dir, "tiny", cache_dir=cache)
    assert len(conversions) == 2
    assert json.loads((d / "meta.json").read_text())["version"] == loaders.STORE_VERSION
    assert_same_run(first, second)


@pytest.mark.parametrize("damage", ["empty-weights", "garbage-meta", "no-meta"])
def test_unreadable_store_is_rebuilt(tiny_dir, tmp_path, conversions, damage):
    cache = tmp_path / "store"
    before = load_model(tiny_dir, "tiny", cache_dir=cache).run(TEXT)
    [d] = store_dirs(cache)
    if damage == "empty-weights":
        # a new file, not the mapped one truncated in place: shrinking a file under a live
        # mapping is SIGBUS for whoever reads it (the engine itself only ever renames over it)
        (d / "weights.bin").unlink()
        (d / "weights.bin").write_bytes(b"")
    elif damage == "garbage-meta":
        (d / "meta.json").write_text("{not json")
    else:
        (d / "meta.json").unlink()
    second = load_model(tiny_dir, "tiny", cache_dir=cache)
    assert len(conversions) == 2
    assert all(isinstance(backing(a), mmap.mmap) for a in second.weights.values())
    assert_same_run(before, second)


@pytest.mark.parametrize("where", ["under-a-file", "is-a-file"])
def test_unwritable_cache_dir_keeps_weights_in_memory(tiny_dir, tmp_path, caplog, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file, not a directory")
    cache = blocker / "store" if where == "under-a-file" else blocker
    with caplog.at_level(logging.WARNING, logger="attnscope.engine"):
        m = load_model(tiny_dir, "tiny", cache_dir=cache)
    assert "cannot cache weights" in caplog.text and "keeping them in memory" in caplog.text
    assert blocker.read_text() == "a regular file, not a directory"
    for name, a in m.weights.items():
        assert a.dtype == np.float32 and a.flags.c_contiguous, name
        assert not isinstance(backing(a), mmap.mmap), name
    assert_same_run(m, load_model(tiny_dir, "tiny", cache_dir=tmp_path / "ok"))
    # and it keeps working: a second load (no store to hit) converts again, same result
    assert_same_run(m, load_model(tiny_dir, "tiny", cache_dir=cache))


def test_a_truncated_store_is_rebuilt_not_trusted(tmp_path):
    folder = make_tiny_gpt2(tmp_path / "g")
    first = load_model(folder, "t", cache_dir=tmp_path / "c").run("hello world")
    store = next((tmp_path / "c").iterdir()) / "weights.bin"
    data = store.read_bytes()
    store.unlink()  # replace, never truncate in place: live mappings of the old file stay valid
    store.write_bytes(data[: len(data) // 2])
    again = load_model(folder, "t", cache_dir=tmp_path / "c").run("hello world")
    np.testing.assert_array_equal(first.logits, again.logits)
    assert store.stat().st_size == len(data)


def test_concurrent_first_loads_convert_once(tmp_path, monkeypatch):
    """Server workers starting together must not each dequantise and write the store."""
    import threading

    folder = make_tiny_gpt2(tmp_path / "g")
    calls = []
    real = loaders.read_hf_folder
    monkeypatch.setattr(loaders, "read_hf_folder", lambda p: calls.append(p) or real(p))
    models = []
    threads = [threading.Thread(target=lambda: models.append(load_model(folder, "t", cache_dir=tmp_path / "c"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(models) == 4 and len(calls) == 1
