"""Generation against Hugging Face transformers: greedy ids equal to `generate(do_sample=False)`,
the KV-cached attention rows equal to a full forward's, and the sampler's distribution equal to HF's
warpers (temperature, top-k, top-p) and drawn from as it says (chi-square, fixed seeds)."""

import threading

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from app.engine import (EmptyInputError, GenerationError, GenerationTooLongError, InputTooLongError, KVCache,
                        NotCausalError, forward, load_model)
from app.engine import generate as gen
from app.engine.generate import generate
from tests.engine.test_parity_tiny import build_gemma, build_gpt2, build_gpt_neox, build_llama, build_phi3
from tests.engine.tolerances import U_F32, global_rel_err
from tests.sentences import SENTENCES

# The rows a KV-cached step captures against a full forward's rows for the whole final text. Both are
# our own float32 forward on the same ids; they differ only in the order BLAS sums the same products:
# a 1-row matmul runs a gemv kernel, an n-row one a blocked gemm whose blocking depends on n (even
# the prefill's rows differ from the full forward's: 2.2e-6 on SmolLM2, sentence 7 of
# tests/sentences.py). As in tolerances.py, each layer adds ~u sqrt(d_mlp) relative error to the
# residual stream and an attention weight moves by p (1 - p) <= 1/4 of its score's error. Measured
# worst over every generated row (30-40 tokens, greedy and sampled): SmolLM2 7.8e-6 over 11
# sentences (3.5e-6 on the prompt tested here), tiny Llama 2.8e-6, tiny GPT-2 1.9e-6, the same with
# 1 and 2 BLAS threads (gemv splits its outputs across threads, not its sums). The 1e-5
# leaves 1.3x over the worst SmolLM2 sentence, 2.8x here: thin, because 30 layers of float32
# reordering is what it measures; a real bug (a key at the wrong position, RoPE at the wrong offset,
# a mask off by one) moves weights by 1e-2 or more.
ATOL_KV_PATTERN = 1e-5

SMOL_PROMPTS = [
    "The quick brown fox jumps over the lazy dog. Once upon a time",
    "def fibonacci(n):\n    ",
    "In 2024, the population of Paris was",
    "<|im_start|>user\nList three colours.<|im_end|>\n<|im_start|>assistant\n",
]
TINY_PROMPTS = [
    "The quick brown fox",
    "a fluffy blue creature roamed",
    "Numbers like 12345",
    "x",
]
N_NEW = 32


# --- models ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf_smol(smol):
    model = AutoModelForCausalLM.from_pretrained(smol.source.parent, gguf_file=smol.source.name,
                                                 dtype=torch.float32, attn_implementation="eager")
    return model.eval()


@pytest.fixture(scope="module")
def tinies(tmp_path_factory):
    """id -> (our Model, HF model) for tiny random checkpoints: Llama with grouped-query attention, GPT-2,
    Gemma (scaled embeddings), Phi-3 with partial rotary, GPT-NeoX (partial rotary, parallel residual)."""
    out = {}
    for name, build, kw in (("llama-gqa", build_llama, {}), ("gpt2", build_gpt2, {}), ("gemma", build_gemma, {}),
                            ("phi3-partial", build_phi3, {"partial_rotary_factor": 0.5}), ("gpt-neox", build_gpt_neox, {})):
        folder = tmp_path_factory.mktemp(name)
        hf = build(folder, **kw)
        out[name] = load_model(folder, name, cache_dir=tmp_path_factory.mktemp("store")), hf
    assert out["llama-gqa"][0].cfg.n_kv_heads < out["llama-gqa"][0].cfg.n_heads
    return out


TINIES = ["llama-gqa", "gpt2", "gemma", "phi3-partial", "gpt-neox"]


@pytest.fixture(params=TINIES)
def tiny(request, tinies):
    return tinies[request.param]


@pytest.fixture(params=["smollm2", *TINIES])
def causal(request, smol, tinies):
    """Each of the causal models."""
    return smol if request.param == "smollm2" else tinies[request.param][0]


def ids_of(model, text):
    return [t.id for t in model.tokenize(text)]


def hf_greedy(hf, ids, n, stop_at_eos):
    """transformers' greedy generate with its KV cache; without stop_at_eos it never stops early."""
    before = hf.generation_config.eos_token_id
    if not stop_at_eos:  # set on the model's own config: generate() fills unset fields from it
        hf.generation_config.eos_token_id = None
    try:
        with torch.no_grad():
            out = hf.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                              max_new_tokens=n, do_sample=False, pad_token_id=0)
    finally:
        hf.generation_config.eos_token_id = before
    return out[0, len(ids):].tolist()


# --- greedy: the same ids as transformers ---------------------------------------------------------

@pytest.mark.parametrize("prompt", SMOL_PROMPTS)
def test_smollm2_greedy_equals_transformers(smol, hf_smol, prompt):
    ids = ids_of(smol, prompt)
    ours = [t.id for t in generate(smol, ids, N_NEW, stop_ids=(), attention=False)]
    assert len(ours) == N_NEW
    assert ours == hf_greedy(hf_smol, ids, N_NEW, stop_at_eos=False)


def test_smollm2_chat_stops_at_its_end_token_as_transformers_does(smol, hf_smol):
    ids = ids_of(smol, smol.chat_prompt("What is the capital of France? Answer in one sentence."))
    tokens = list(generate(smol, ids, 64, attention=False))
    assert tokens[-1].id in smol.eos_ids == (2,) and tokens[-1].stop_reason == "eos"
    assert all(t.stop_reason is None for t in tokens[:-1])
    assert [t.id for t in tokens] == hf_greedy(hf_smol, ids, 64, stop_at_eos=True)
    assert "Paris" in smol.tokenizer.tk.decode([t.id for t in tokens])


@pytest.mark.parametrize("prompt", TINY_PROMPTS)
def test_tiny_greedy_equals_transformers(tiny, prompt):
    ours_model, hf = tiny
    ids = ids_of(ours_model, prompt)
    ours = [t.id for t in generate(ours_model, ids, N_NEW, stop_ids=(), attention=False)]
    assert len(ours) == N_NEW
    assert ours == hf_greedy(hf, ids, N_NEW, stop_at_eos=False)
    assert len(set(ours)) > 3, "a degenerate continuation would make this comparison weak"


# --- the KV cache: each step's rows and logits are the full forward's -----------------------------

def full_patterns(model, ids):  # [n_layers, head_index, query_pos, key_pos] and logits [pos, d_vocab]
    names = gen.pattern_names(model.cfg)
    logits, cache = forward(model.cfg, model.weights, ids, names=names)
    return np.stack([cache[f"blocks.{L}.attn.hook_pattern"] for L in range(model.cfg.n_layers)]), logits


def test_generated_rows_equal_the_full_forward(causal):
    model = causal
    ids = ids_of(model, "a fluffy blue creature roamed the verdant forest" if model.id == "smollm2-135m-instruct" else "a fluffy blue")
    tokens = list(generate(model, ids, 30, temperature=0.9, seed=5, stop_ids=()))
    text = ids + [t.id for t in tokens]
    patterns, logits = full_patterns(model, text[:-1])  # the last token was chosen, never fed
    n_layers, H = model.cfg.n_layers, model.cfg.n_heads
    for t in tokens:
        q = t.position - 1  # the query that chose t
        assert t.pattern.shape == (n_layers, H, t.position)
        np.testing.assert_allclose(t.pattern, patterns[:, :, q, : q + 1], rtol=0, atol=ATOL_KV_PATTERN)
        np.testing.assert_allclose(t.pattern.sum(-1), 1, atol=1e-5)
    # what was drawn from is the full forward's distribution at that position
    for t in tokens:
        full = gen.distribution(logits[t.position - 1], 0.9)
        assert abs(t.prob - full[t.id]) <= 1e-4 * max(full[t.id], 1e-3)


def test_steps_of_several_tokens_at_an_offset(causal):
    """The step takes several new ids at once: the causal mask covers only the new rows."""
    model, cfg = causal, causal.cfg
    ids = ids_of(model, "The quick brown fox jumps over the lazy dog")
    cuts = [0, 3, 4, 7, len(ids)]  # a prefill of 3, then steps of 1, 3 and the rest
    patterns, logits = full_patterns(model, ids)
    kv = KVCache.empty(cfg, len(ids) + 5)
    for a, b in zip(cuts, cuts[1:]):
        step_logits, rows = gen.step(cfg, model.weights, ids[a:b], kv)
        assert kv.n_pos == b
        assert rows.shape == (cfg.n_layers, cfg.n_heads, b - a, b)
        np.testing.assert_allclose(rows, patterns[:, :, a:b, :b], rtol=0, atol=ATOL_KV_PATTERN)
        # logits: the same float32 reorderings, carried through the unembedding (tolerances.rtol_logits)
        assert global_rel_err(step_logits, logits[a:b]) <= U_F32 * np.sqrt(cfg.d_mlp) * cfg.n_layers + U_F32 * np.sqrt(cfg.d_model)
        assert (step_logits.argmax(-1) == logits[a:b].argmax(-1)).all()
    with pytest.raises(ValueError, match="cannot take"):
        gen.step(cfg, model.weights, ids[:6], kv)


def test_each_token_costs_one_single_token_step(smol, monkeypatch):
    fed = []
    real = gen.step
    monkeypatch.setattr(gen, "step", lambda cfg, w, ids, kv, **kw: (fed.append(len(ids)), real(cfg, w, ids, kv, **kw))[1])
    ids = ids_of(smol, "one mole of carbon dioxide")
    tokens = list(generate(smol, ids, 6, stop_ids=()))
    assert fed == [len(ids)] + [1] * 5  # one prefill, then one token per step; the last is never fed
    assert [t.position for t in tokens] == list(range(len(ids), len(ids) + 6))
    assert [t.stop_reason for t in tokens] == [None] * 5 + ["length"]


# --- stopping ---------------------------------------------------------------------------------------

def test_stops_early_when_the_caller_stops_or_cancels(smol, monkeypatch):
    steps = []
    real = gen.step
    monkeypatch.setattr(gen, "step", lambda *a, **kw: (steps.append(1), real(*a, **kw))[1])
    ids = ids_of(smol, "one mole of carbon dioxide")
    it = generate(smol, ids, 50, stop_ids=())
    first = [next(it) for _ in range(3)]
    it.close()  # the caller stops iterating: no step runs after the last token it took
    assert len(first) == 3 and len(steps) == 3

    steps.clear()
    cancel = threading.Event()
    got = []
    for t in generate(smol, ids, 50, stop_ids=(), cancel=cancel):
        got.append(t)
        if len(got) == 4:
            cancel.set()  # e.g. from the thread that serves a client that went away
    assert len(got) == 4 and len(steps) == 4

    steps.clear()
    cancel = threading.Event()
    cancel.set()  # cancelled before the first token was asked for: not even the prefill runs
    assert list(generate(smol, ids, 50, cancel=cancel)) == [] and steps == []
    assert [t.id for t in got] == [t.id for t in first] + [got[3].id]  # greedy: the same start


def test_eos_stops(tiny):
    model, _ = tiny
    ids = ids_of(model, "The quick brown fox")
    free = [t.id for t in generate(model, ids, 20, stop_ids=())]
    stop = free[5]
    tokens = list(generate(model, ids, 20, stop_ids=[stop]))
    assert [t.id for t in tokens] == free[: free.index(stop) + 1]
    assert tokens[-1].stop_reason == "eos"


# --- limits and bad settings: clear errors, raised before any work --------------------------------

def test_length_is_bounded_by_max_tokens(tiny):
    model, _ = tiny
    ids = ids_of(model, "The quick brown fox")
    room = model.max_tokens - len(ids)
    assert len(list(generate(model, ids, room, stop_ids=(), attention=False))) == room  # exactly fits
    with pytest.raises(GenerationTooLongError) as e:
        generate(model, ids, room + 1)  # raised at the call, not at the first token
    assert isinstance(e.value, InputTooLongError) and e.value.limit == model.max_tokens
    assert str(e.value) == (f"the prompt has {len(ids)} tokens and {room + 1} more were asked for; "
                            f"this model takes at most {model.max_tokens} in all")


@pytest.mark.parametrize("kw, msg", [
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"max_new_tokens": 2.5}, "max_new_tokens"),
    ({"temperature": -1}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_k": 0}, "top_k"),
    ({"top_p": 0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"seed": -3}, "seed"),
])
def test_bad_settings_are_refused(smol, kw, msg):
    with pytest.raises(GenerationError, match=msg):
        generate(smol, [1, 2, 3], **{"max_new_tokens": 5, **kw})


def test_bad_inputs_are_refused(smol, minilm):
    with pytest.raises(EmptyInputError):
        generate(smol, [], 5)
    with pytest.raises(GenerationError, match="token ids"):
        generate(smol, [smol.cfg.d_vocab], 5)
    with pytest.raises(NotCausalError, match="encoder"):
        generate(minilm, [101, 102], 5)


# --- sampling -------------------------------------------------------------------------------------

LOGITS = np.array([2.0, 1.5, 1.2, 0.9, 0.3, 0.0, -0.4, -1.0, -1.7, -3.0], dtype=np.float32)
SETTINGS = [
    (1.0, None, None),
    (0.7, None, None),
    (1.6, 4, None),
    (1.0, None, 0.8),
    (0.5, 6, 0.9),
    (2.0, 3, 0.7),
    (1.0, None, 0.05),  # below the top token's probability: only it stays
]


def hf_distribution(logits, temperature, top_k, top_p):
    """Hugging Face's own warpers, in generate()'s order, then softmax (float64 out)."""
    s = torch.tensor(logits, dtype=torch.float32)[None]
    ids = torch.zeros(1, 1, dtype=torch.long)
    if temperature != 1.0:
        s = TemperatureLogitsWarper(temperature)(ids, s)
    if top_k is not None:
        s = TopKLogitsWarper(top_k)(ids, s)
    if top_p is not None:
        s = TopPLogitsWarper(top_p)(ids, s)
    return torch.softmax(s, -1)[0].double().numpy()


@pytest.mark.parametrize("temperature, top_k, top_p", SETTINGS)
def test_distribution_equals_hf_warpers(temperature, top_k, top_p):
    ours = gen.distribution(LOGITS, temperature, top_k, top_p)
    ref = hf_distribution(LOGITS, temperature, top_k, top_p)
    assert np.array_equal(ours > 0, ref > 0), "a different set of tokens kept"
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)  # float32 (HF) against float64 (ours)
    rng = np.random.default_rng(0)
    for _ in range(20):  # random logits of a real vocabulary's scale
        logits = (rng.standard_normal(2000) * 3).astype(np.float32)
        ours, ref = gen.distribution(logits, temperature, top_k, top_p), hf_distribution(logits, temperature, top_k, top_p)
        assert np.array_equal(ours > 0, ref > 0)
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-9)


def chi_square_p(counts, expected_probs):
    """Pearson's chi-square goodness of fit: (statistic, p-value) over the expected support."""
    n = counts.sum()
    e = expected_probs * n
    stat = float(((counts - e) ** 2 / e).sum())
    df = len(counts) - 1
    if df == 0:
        return stat, 1.0
    return stat, float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64), torch.tensor(stat / 2, dtype=torch.float64)))


@pytest.mark.parametrize("temperature, top_k, top_p", SETTINGS)
def test_draws_follow_the_distribution(temperature, top_k, top_p):
    """20,000 draws with a fixed seed against HF's distribution. Significance 0.001: with a random
    seed a correct sampler would fail one run in a thousand; the seed is fixed, so this one outcome
    is what every run sees (no flakiness). The power check: the same draws reject the distribution
    without temperature and filters (every setting here changes it by far more than the noise)."""
    expected = hf_distribution(LOGITS, temperature, top_k, top_p)
    probs = gen.distribution(LOGITS, temperature, top_k, top_p)
    rng = np.random.default_rng(20240613)
    draws = np.array([gen.draw(probs, rng) for _ in range(20_000)])
    counts = np.bincount(draws, minlength=len(LOGITS))
    support = expected > 0
    assert counts[~support].sum() == 0, "drew a filtered token"
    _, p = chi_square_p(counts[support], expected[support])
    assert p > 0.001, f"chi-square p = {p:.2e}"
    if (temperature, top_k, top_p) != (1.0, None, None):
        plain = hf_distribution(LOGITS, 1.0, None, None)
        _, p_wrong = chi_square_p(counts, plain)
        assert p_wrong < 1e-6, "the test cannot tell this setting from plain sampling"


def test_extreme_temperatures():
    tiny = gen.distribution(LOGITS, 1e-320)  # the scores overflow: the limit of T -> 0 is the argmax
    assert tiny[0] == 1 and tiny.sum() == 1
    tied = gen.distribution(np.array([3.0, 3.0, 1.0]), 1e-320)
    assert list(tied) == [0.5, 0.5, 0]
    np.testing.assert_allclose(gen.distribution(LOGITS, 1e12), 1 / len(LOGITS))  # T -> inf: uniform


def test_top_tokens_are_the_likeliest_in_order():
    probs = gen.distribution(LOGITS, 1.0, 4)
    top = gen.top_tokens(probs, 6)
    assert [i for i, _ in top][:4] == [0, 1, 2, 3]
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert all(p == 0 for _, p in top[4:]) and len(top) == 6
    assert gen.top_tokens(probs, 0) == ()


def test_same_seed_same_tokens(tiny):
    model, _ = tiny
    ids = ids_of(model, "a fluffy blue creature roamed")
    kw = dict(temperature=1.2, top_k=40, top_p=0.95, stop_ids=(), attention=False)
    a = [(t.id, t.prob) for t in generate(model, ids, 30, seed=11, **kw)]
    b = [(t.id, t.prob) for t in generate(model, ids, 30, seed=11, **kw)]
    others = [[t.id for t in generate(model, ids, 30, seed=s, **kw)] for s in (12, 13)]
    assert a == b
    assert all(o != [i for i, _ in a] for o in others), "different seeds gave the same 30 tokens"
    greedy = [t.id for t in generate(model, ids, 30, stop_ids=(), attention=False)]
    assert greedy == [t.id for t in generate(model, ids, 30, seed=99, stop_ids=(), attention=False)]  # greedy ignores the seed


def test_sampled_prob_is_under_the_filtered_distribution(tiny):
    model, _ = tiny
    ids = ids_of(model, "a fluffy blue creature roamed")
    for t in generate(model, ids, 10, temperature=0.8, top_k=3, seed=1, stop_ids=()):
        assert len([p for _, p in t.top if p > 0]) <= 3
        assert t.id in [i for i, _ in t.top] and t.prob == dict(t.top)[t.id]
        assert abs(sum(p for _, p in t.top) - 1) < 1e-9  # all of top-3's mass is in the top 5


# --- the text of generated ids ---------------------------------------------------------------------

def test_decode_round_trips_and_joins_split_characters(smol):
    for text in SENTENCES:
        assert smol.tokenizer.decode(ids_of(smol, text)) == text
    fox = ids_of(smol, "🦊")  # one character, three byte-level pieces
    assert len(fox) == 3 and [smol.tokenizer.decode(fox[:i]) for i in (1, 3)] == ["\ufffd", "🦊"]
    ids = ids_of(smol, smol.chat_prompt("Say hello."))
    new = [t.id for t in generate(smol, ids, 12, attention=False)]
    ref = AutoTokenizer.from_pretrained(smol.source.parent, gguf_file=smol.source.name)
    for skip in (False, True):
        assert smol.tokenizer.decode(new, skip_special_tokens=skip) == ref.decode(new, skip_special_tokens=skip)
