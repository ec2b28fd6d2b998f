"""A run that asks for nothing after some layer's pattern stops there: the same numbers, less work."""

import importlib

import numpy as np
import pytest

from app.engine import forward

fw = importlib.import_module("app.engine.forward")

TEXT = "The river bank flooded, so the money bank stayed dry."


def patterns(cfg, upto):
    return {f"blocks.{L}.attn.hook_pattern" for L in range(upto)}


@pytest.mark.parametrize("model_name", ["smol", "minilm"])
def test_stopping_at_a_pattern_changes_no_number(request, model_name):
    model = request.getfixturevalue(model_name)
    ids = [t.id for t in model.tokenize(TEXT)]
    _, whole = forward(model.cfg, model.weights, ids, names=None, logits=None)
    for upto in (1, model.cfg.n_layers // 2, model.cfg.n_layers):
        names = patterns(model.cfg, upto) | {f"blocks.{upto - 1}.attn.hook_q"}
        _, cache = forward(model.cfg, model.weights, ids, names=names, logits=None)
        assert set(cache) == names
        for name in names:  # the very same float32 operations, in the same order: identical, not close
            np.testing.assert_array_equal(cache[name], whole[name])


def test_the_run_ends_at_the_last_pattern_asked(smol, monkeypatch):
    calls = []
    real_mlp = fw.mlp
    monkeypatch.setattr(fw, "mlp", lambda x, cfg, w, L: calls.append(L) or real_mlp(x, cfg, w, L))
    ids = [t.id for t in smol.tokenize(TEXT)]
    forward(smol.cfg, smol.weights, ids, names=patterns(smol.cfg, 3), logits=None)
    assert calls == [0, 1]  # layer 2 stops at its pattern: no z, no output, no MLP
    calls.clear()
    forward(smol.cfg, smol.weights, ids, names=patterns(smol.cfg, 3) | {"blocks.2.hook_mlp_out"}, logits=None)
    assert calls == [0, 1, 2]  # something after the pattern is asked: layer 2 runs to its end, no further
    calls.clear()
    forward(smol.cfg, smol.weights, ids, names=patterns(smol.cfg, 3), logits="last")
    assert calls == list(range(smol.cfg.n_layers))  # logits need every layer
    calls.clear()
    hooks = {"blocks.5.attn.hook_z": lambda z, name: None}  # a hook is asked for too
    forward(smol.cfg, smol.weights, ids, names=patterns(smol.cfg, 3), hooks=hooks, logits=None)
    assert calls == list(range(6))


@pytest.mark.parametrize("names, expected", [
    ({"blocks.3.attn.hook_pattern", "blocks.1.hook_resid_post"}, (4, True)),
    ({"blocks.3.attn.hook_pattern", "blocks.3.attn.hook_z"}, (4, False)),
    ({"blocks.0.ln1.hook_normalized", "hook_embed"}, (1, True)),
    ({"hook_embed"}, (0, True)),
    ({"blocks.2.attn.hook_pattern", "ln_final.hook_normalized"}, None),  # past the blocks: every layer
])
def test_last_needed(names, expected):
    assert fw.last_needed(names, {}) == expected
