"""The test that matters most: our numpy forward against Hugging Face transformers, on the
real shipped models (SmolLM2-135M-Instruct from its GGUF, all-MiniLM-L6-v2 from safetensors)."""

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from tests.engine.tolerances import ATOL_PATTERN, global_rel_err, row_rel_err, rtol_embed, rtol_logits, rtol_resid
from tests.sentences import SENTENCES


@pytest.fixture(scope="module")
def hf_smol(smol):
    kw = dict(gguf_file=smol.source.name)
    model = AutoModelForCausalLM.from_pretrained(smol.source.parent, dtype=torch.float32, attn_implementation="eager", **kw)
    return model.eval(), AutoTokenizer.from_pretrained(smol.source.parent, **kw)


@pytest.fixture(scope="module")
def hf_minilm(minilm):
    model = AutoModel.from_pretrained(minilm.source, dtype=torch.float32, attn_implementation="eager")
    return model.eval(), AutoTokenizer.from_pretrained(minilm.source)


def reference(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)


@pytest.mark.parametrize("text", SENTENCES)
def test_smollm2_matches_transformers(smol, hf_smol, text):
    hf, tok = hf_smol
    run = smol.run(text)
    assert run.ids == tok(text)["input_ids"], "token ids differ from the reference tokenizer"
    out = reference(hf, run.ids)
    rtol = rtol_resid(smol.cfg)
    for L in range(smol.cfg.n_layers):
        pattern = run[f"blocks.{L}.attn.hook_pattern"]
        assert pattern.dtype == np.float32
        np.testing.assert_allclose(pattern, out.attentions[L][0].numpy(), rtol=0, atol=ATOL_PATTERN, err_msg=f"layer {L}")
        # each position against its own scale: the first token's residual reaches thousands
        assert row_rel_err(run[f"blocks.{L}.hook_resid_pre"], out.hidden_states[L][0].numpy()) <= rtol, f"layer {L}"
    final = smol.unembed(run["blocks.29.hook_resid_post"])  # HF's last hidden state is after the final norm
    assert np.abs(final - run.logits).max() == 0
    logits = out.logits[0].numpy()
    assert run.logits.dtype == np.float32
    assert global_rel_err(run.logits, logits) <= rtol_logits(smol.cfg)
    assert (run.logits.argmax(-1) == logits.argmax(-1)).all(), "top-1 next token differs"


def test_smollm2_matches_transformers_at_length(smol, hf_smol):
    """A text of ~470 tokens: every position of a long causal attention,
    the far-out positions of the rotary tables."""
    hf, tok = hf_smol
    text = " ".join(SENTENCES[:6]) * 8
    run = smol.run(text)
    n = len(run.ids)
    assert 400 <= n <= smol.cfg.n_ctx and run.ids == tok(text)["input_ids"]
    out = reference(hf, run.ids)
    for L in range(smol.cfg.n_layers):
        pattern = run[f"blocks.{L}.attn.hook_pattern"]
        assert np.array_equal(np.triu(pattern, 1), np.zeros_like(pattern)), f"layer {L}: weight on a later token"
        np.testing.assert_allclose(pattern, out.attentions[L][0].numpy(), rtol=0, atol=ATOL_PATTERN, err_msg=f"layer {L}")
        assert row_rel_err(run[f"blocks.{L}.hook_resid_pre"], out.hidden_states[L][0].numpy()) <= rtol_resid(smol.cfg)
    assert global_rel_err(run.logits, out.logits[0].numpy()) <= rtol_logits(smol.cfg)


@pytest.mark.parametrize("text", SENTENCES)
def test_minilm_matches_transformers(minilm, hf_minilm, text):
    hf, tok = hf_minilm
    run = minilm.run(text)
    assert run.ids == tok(text)["input_ids"], "token ids differ from the reference tokenizer"
    out = reference(hf, run.ids)
    rtol = rtol_resid(minilm.cfg)
    for L in range(minilm.cfg.n_layers):
        np.testing.assert_allclose(run[f"blocks.{L}.attn.hook_pattern"], out.attentions[L][0].numpy(),
                                   rtol=0, atol=ATOL_PATTERN, err_msg=f"layer {L}")
        assert row_rel_err(run[f"blocks.{L}.hook_resid_post"], out.hidden_states[L + 1][0].numpy()) <= rtol, f"layer {L}"
    assert row_rel_err(run["blocks.0.hook_resid_pre"], out.hidden_states[0][0].numpy()) <= rtol_embed(minilm.cfg)
    assert run.logits is None  # an encoder has no next-token head


def test_smollm2_splits_digits_one_by_one(smol):
    assert [t.text for t in smol.tokenize("1,234")] == ["1", ",", "2", "3", "4"]


@pytest.mark.parametrize("text", SENTENCES)
def test_token_spans_map_back_to_the_input(smol, minilm, text):
    for model in (smol, minilm):
        tokens = model.tokenize(text)
        for t in tokens:
            assert 0 <= t.start <= t.end <= len(text)
            piece = text[t.start:t.end]
            if model is smol and "\\x" not in t.text:  # whole characters: the span is the token's text
                assert piece == t.text, (t, piece)
        starts = [t.start for t in tokens if t.end > t.start]
        assert starts == sorted(starts)


def test_display_text_has_no_tokenizer_artefacts(smol, minilm):
    assert [t.text for t in smol.tokenize("a fluffy blue")] == ["a", " fluffy", " blue"]
    assert [t.text for t in minilm.tokenize("unaffable")] == ["[CLS]", "una", "ffa", "ble", "[SEP]"]
    halves = [t.text for t in smol.tokenize("🦊")]
    assert "".join(halves).encode("latin-1", "backslashreplace")  # partial bytes shown as escapes, never Ġ-style
    assert not any(c in "".join(halves) for c in "ĠĊ")
