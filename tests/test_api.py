"""Every endpoint and every error of the HTTP API, through FastAPI's TestClient."""

import base64
import gzip

import numpy as np
import pytest

from app.main import create_app
from app.settings import Settings
from tests.sentences import SENTENCES

LESSON = "a fluffy blue creature roamed the verdant forest"



def post(client, path, **body):
    return client.post(path, json=body)


def test_models_lists_both_with_their_facts(client):
    models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    smol, mini = models["smollm2-135m-instruct"], models["all-minilm-l6-v2"]
    assert smol["default"] and not mini["default"]
    assert (smol["architecture"], smol["causal"], smol["n_layers"], smol["n_heads"], smol["n_kv_heads"], smol["d_model"], smol["d_head"]) \
        == ("llama", True, 30, 9, 3, 576, 64)
    assert (mini["architecture"], mini["causal"], mini["n_layers"], mini["n_heads"], mini["d_head"]) == ("bert", False, 6, 12, 32)
    assert smol["max_tokens"] == 512 and mini["max_tokens"] == 512


@pytest.mark.parametrize("model_id", ["smollm2-135m-instruct", "all-minilm-l6-v2"])
def test_attention_equals_the_engine(client, registry, model_id):
    body = post(client, "/api/attention", text=LESSON, model=model_id).json()
    model = registry.get(model_id)
    run = model.run(LESSON)
    assert [t["id"] for t in body["tokens"]] == run.ids
    assert body["n_layers"] == model.cfg.n_layers and body["n_heads"] == model.cfg.n_heads
    assert sorted(body["attention"], key=int) == [str(L) for L in range(model.cfg.n_layers)]
    for L in range(model.cfg.n_layers):
        p = np.array(body["attention"][str(L)])
        assert p.shape == (model.cfg.n_heads, len(run.ids), len(run.ids))
        np.testing.assert_allclose(p, run[f"blocks.{L}.attn.hook_pattern"], atol=1e-4 * 0.5 + 1e-7)  # rounding to 4 decimals
        np.testing.assert_allclose(p.sum(-1), 1, atol=5e-4 * p.shape[-1])
        if model.cfg.causal:
            assert (np.triu(p, 1) == 0).all()


def test_attention_for_chosen_layers_only(client):
    body = post(client, "/api/attention", text=LESSON, layers=[3, 0, 3]).json()
    assert list(body["attention"]) == ["3", "0"]


@pytest.mark.parametrize("encoding,tol", [("uint8", 0.5 / 255 + 1e-6), ("float16", 1e-3)])
def test_binary_encodings_decode_to_the_patterns(client, smol, minilm, encoding, tol):
    for model in (smol, minilm):
        body = post(client, "/api/attention", text=LESSON, encoding=encoding, model=model.id).json()
        run = model.run(LESSON)
        for L, a in body["attention"].items():
            p = decode(a)
            assert a["packing"] == ("tril" if model.cfg.causal else "full")
            np.testing.assert_allclose(p, run[f"blocks.{L}.attn.hook_pattern"], atol=tol)


def decode(a: dict) -> np.ndarray:
    """What a client does with a binary-encoded pattern (documented in the schema)."""
    raw = np.frombuffer(base64.b64decode(a["data"]), dtype={"uint8": np.uint8, "float16": "<f2"}[a["dtype"]])
    H, n, _ = a["shape"]
    if a["packing"] == "full":
        return raw.reshape(H, n, n).astype(np.float64) * a["scale"]
    p = np.zeros((H, n, n))
    rows, cols = np.tril_indices(n)
    p[:, rows, cols] = raw.reshape(H, -1) * a["scale"]
    return p


def test_binary_encoding_is_much_smaller_on_the_wire(client):
    text = "The quick brown fox jumps over the lazy dog while the cat sleeps by the warm fire and dreams of fish, mice and birds in the summer days ahead."
    assert len(post(client, "/api/attention", text=text, layers=[0]).json()["tokens"]) == 32
    sizes = {}
    for enc in ("json", "uint8"):
        r = client.post("/api/attention", json={"text": text, "encoding": enc}, headers={"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"
        sizes[enc] = int(r.headers["content-length"])
    assert sizes["uint8"] < 100_000, sizes  # the budget for a 32-token SmolLM2 request
    assert sizes["uint8"] < sizes["json"] / 2, sizes


def test_gzip_only_when_accepted(client):
    plain = client.post("/api/attention", json={"text": LESSON}, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    zipped = client.post("/api/attention", json={"text": LESSON}, headers={"Accept-Encoding": "gzip, br"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.json() == plain.json()  # httpx decompresses
    assert int(zipped.headers["content-length"]) < len(plain.content) / 3


@pytest.mark.parametrize("model_id", ["smollm2-135m-instruct", "all-minilm-l6-v2"])
def test_head_scores_reproduce_its_pattern(client, registry, model_id):
    model = registry.get(model_id)
    for layer, head in [(0, 0), (model.cfg.n_layers - 1, model.cfg.n_heads - 1), (2, 4)]:
        h = post(client, "/api/head", text=LESSON, model=model_id, layer=layer, head=head).json()
        run = model.run(LESSON)
        n = len(run.ids)
        scores = np.array([[-np.inf if s is None else s for s in row] for row in h["scores"]])
        if model.cfg.causal:
            assert all(h["scores"][i][j] is None for i in range(n) for j in range(i + 1, n))
        e = np.exp(scores - scores.max(-1, keepdims=True))
        np.testing.assert_allclose(e / e.sum(-1, keepdims=True), h["pattern"], atol=2e-5)
        np.testing.assert_allclose(h["pattern"], run[f"blocks.{layer}.attn.hook_pattern"][head], atol=1e-6)
        kv = head // (model.cfg.n_heads // model.cfg.n_kv_heads)
        assert h["kv_head"] == kv
        np.testing.assert_allclose(h["q"], run[f"blocks.{layer}.attn.hook_q"][:, head], atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(h["k"], run[f"blocks.{layer}.attn.hook_k"][:, kv], atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(h["z"], run[f"blocks.{layer}.attn.hook_z"][:, head], atol=1e-5, rtol=1e-5)
        assert np.array(h["v"]).shape == (n, model.cfg.d_head)


def test_predictions_are_the_softmax_of_the_logits(client, smol):
    body = post(client, "/api/predictions", text="The capital of France is", top_k=5).json()
    run = smol.run("The capital of France is")
    assert len(body["predictions"]) == len(run.ids)
    logits = run.logits.astype(np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    for i, preds in enumerate(body["predictions"]):
        assert len(preds) == 5
        assert [p["id"] for p in preds] == list(np.argsort(-probs[i], kind="stable")[:5])
        np.testing.assert_allclose([p["prob"] for p in preds], probs[i, [p["id"] for p in preds]], atol=1e-6)
        assert [p["prob"] for p in preds] == sorted((p["prob"] for p in preds), reverse=True)
    assert body["predictions"][-1][0]["text"] == " Paris"


def test_predictions_temperature_sharpens(client):
    cold = post(client, "/api/predictions", text="The capital of France is", top_k=1, temperature=0.5).json()
    warm = post(client, "/api/predictions", text="The capital of France is", top_k=1, temperature=2.0).json()
    assert cold["predictions"][-1][0]["prob"] > warm["predictions"][-1][0]["prob"]


def test_residual_geometry(client, smol):
    body = post(client, "/api/residual", text=LESSON).json()
    n, B = len(body["tokens"]), smol.cfg.n_layers + 1
    assert body["layers"] == ["embed"] + [str(L) for L in range(smol.cfg.n_layers)]
    assert np.array(body["pca_2d"]).shape == (B, n, 2) and np.array(body["pca_3d"]).shape == (B, n, 3)
    assert np.array(body["norms"]).shape == (B, n)
    assert body["cosine_to_previous"][0] == [None] * n
    cos = np.array(body["cosine_to_previous"][1:], dtype=float)
    assert cos.shape == (B - 1, n) and (np.abs(cos) <= 1 + 1e-6).all()
    ev = body["explained_variance_3d"]
    assert ev == sorted(ev, reverse=True) and 0 < sum(ev) <= 1 + 1e-6
    assert body["explained_variance_2d"] == ev[:2]
    run = smol.run(LESSON)
    np.testing.assert_allclose(body["norms"][3], np.linalg.norm(run["blocks.2.hook_resid_post"], axis=-1), rtol=1e-4)
    norm_body = post(client, "/api/residual", text=LESSON, normalize=True).json()
    assert norm_body["normalize"] is True and norm_body["pca_2d"] != body["pca_2d"]


def test_one_run_serves_every_endpoint(client):
    api = client.app.state.runner
    text = "one text, run once, for every endpoint"
    before = api.runs.stats()["misses"]
    post(client, "/api/attention", text=text)
    post(client, "/api/head", text=text, layer=1, head=1)
    post(client, "/api/predictions", text=text)
    post(client, "/api/residual", text=text)
    assert api.runs.stats()["misses"] == before + 1


@pytest.mark.parametrize("text", SENTENCES)
def test_any_unicode_is_fine(client, text):
    r = post(client, "/api/attention", text=text, layers=[0])
    assert r.status_code == 200, r.text
    assert len(r.json()["tokens"]) > 0


ERROR_CASES = [
    ("/api/attention", {"text": ""}, 422, "empty_text"),
    ("/api/attention", {"text": "   \n\t "}, 422, "empty_text"),
    ("/api/attention", {"text": "word " * 20000}, 422, "too_many_tokens"),
    ("/api/attention", {"text": "hi", "model": "gpt-5"}, 404, "unknown_model"),
    ("/api/attention", {"text": "hi", "layers": [30]}, 422, "out_of_range"),
    ("/api/attention", {"text": "hi", "layers": [-1]}, 422, "out_of_range"),
    ("/api/attention", {"text": "hi", "encoding": "png"}, 422, "invalid_request"),
    ("/api/attention", {"txt": "hi"}, 422, "invalid_request"),
    ("/api/attention", {"text": 5}, 422, "invalid_request"),
    ("/api/head", {"text": "hi", "layer": 0, "head": 9}, 422, "out_of_range"),
    ("/api/head", {"text": "hi", "layer": 6, "head": 0, "model": "all-minilm-l6-v2"}, 422, "out_of_range"),
    ("/api/head", {"text": "hi", "layer": 0}, 422, "invalid_request"),
    ("/api/predictions", {"text": "hi", "model": "all-minilm-l6-v2"}, 422, "not_causal"),
    ("/api/predictions", {"text": "hi", "top_k": 0}, 422, "invalid_request"),
    ("/api/predictions", {"text": "hi", "temperature": 0}, 422, "invalid_request"),
    ("/api/residual", {"text": "", "model": "all-minilm-l6-v2"}, 422, "empty_text"),
]


@pytest.mark.parametrize("path,body,status,code", ERROR_CASES)
def test_bad_input_gets_a_clear_4xx(client, path, body, status, code):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and r.json()["detail"]


def test_error_messages_say_what_to_do(client):
    r = post(client, "/api/attention", text="word " * 20000).json()
    assert r["n_tokens"] >= 20000 and r["limit"] == 512 and "512" in r["detail"]
    r = post(client, "/api/attention", text="hi", model="gpt-5").json()
    assert set(r["known"]) == {"smollm2-135m-instruct", "all-minilm-l6-v2"} and "smollm2-135m-instruct" in r["detail"]


def test_malformed_json_and_oversized_bodies(client):
    r = client.post("/api/attention", content=b'{"text": "hi"', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
    r = client.post("/api/attention", content=b"[" * (2 << 20), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"


def test_hostile_text_comes_back_as_data(client):
    text = "<script>alert(1)</script>\x00\u202e"
    r = post(client, "/api/attention", text=text, layers=[0])
    assert r.headers["content-type"] == "application/json"
    tokens = r.json()["tokens"]
    assert "".join(text[t["start"]:t["end"]] for t in tokens if t["end"] > t["start"]).startswith("<script>")


def test_overload_sheds_with_503_and_retry_after(registry):
    import asyncio

    import httpx

    settings = Settings(preload="none", max_pending=1, run_cache_mb=0, response_cache_mb=0)
    app = create_app(settings, registry=registry)

    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
                reqs = [c.post("/api/attention", json={"text": f"sentence number {i} " * 20}) for i in range(6)]
                return await asyncio.gather(*reqs)

    # a thread of its own: the browser tests' Playwright keeps an event loop running in this one
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as ex:
        responses = ex.submit(asyncio.run, burst()).result()
    codes = sorted(r.status_code for r in responses)
    assert 200 in codes and 503 in codes, codes
    shed = next(r for r in responses if r.status_code == 503)
    assert shed.headers["retry-after"] == "1" and shed.json()["error"] == "overloaded"


def test_gzip_cached_body_compressed_once(client):
    r1 = client.post("/api/attention", json={"text": "gzip me"}, headers={"Accept-Encoding": "gzip"})
    r2 = client.post("/api/attention", json={"text": "gzip me"}, headers={"Accept-Encoding": "gzip"})
    assert r1.content == r2.content and gzip.compress(b"x")  # identical bytes from the cache


@pytest.mark.parametrize("model_id", ["smollm2-135m-instruct", "all-minilm-l6-v2"])
def test_head_detail_reproduces_the_lessons_math(client, registry, model_id):
    """e -> q = W_q e (then RoPE) -> scores -> softmax -> z -> z W_O: every step from the response alone."""
    model = registry.get(model_id)
    cfg, w = model.cfg, model.weights
    L, h = 1, 2
    d = post(client, "/api/head", text=LESSON, model=model_id, layer=L, head=h, detail=True).json()
    e, z = np.array(d["e"]), np.array(d["z"])
    W = w[f"blocks.{L}.attn.W_QKV"]
    b = w.get(f"blocks.{L}.attn.b_QKV")
    q_lin = e @ W[:, h * cfg.d_head:(h + 1) * cfg.d_head] + (0 if b is None else b[h * cfg.d_head:(h + 1) * cfg.d_head])
    q_shown = np.array(d["q_pre_rope"] if cfg.architecture == "llama" else d["q"])
    np.testing.assert_allclose(q_lin, q_shown, atol=2e-4 * max(1, np.abs(q_shown).max()))
    P = np.array(d["pattern"])
    np.testing.assert_allclose(P @ np.array(d["v"]), z, atol=1e-4 * max(1, np.abs(z).max()))
    out = np.array(d["out"])
    np.testing.assert_allclose(z @ w[f"blocks.{L}.attn.W_O"][h * cfg.d_head:(h + 1) * cfg.d_head], out, atol=1e-3)
    # the heads' shares plus the bias add up to the layer's attention output
    shares = sum(np.array(post(client, "/api/head", text=LESSON, model=model_id, layer=L, head=g, detail=True).json()["out"])
                 for g in range(cfg.n_heads))
    bias = w.get(f"blocks.{L}.attn.b_O")
    np.testing.assert_allclose(shares + (0 if bias is None else bias), np.array(d["attn_out"]), atol=2e-3)


@pytest.mark.parametrize("model_id", ["smollm2-135m-instruct", "all-minilm-l6-v2"])
def test_head_numbers_are_the_engines_float32_at_five_decimals(client, registry, model_id):
    """/api/head's q, k, v, z and v_out_norm are the run's float32 values rounded to 5 decimals exactly
    (equal, not close): the same numbers the exports print. numpy's own rounding of a float32 array
    (in float32) lands one unit off for ~4% of values, and on which ones depends on the machine's BLAS."""
    model = registry.get(model_id)
    L, h = 2, 3
    run = model.run(LESSON)
    d = post(client, "/api/head", text=LESSON, model=model_id, layer=L, head=h, detail=True).json()
    kv = h // (model.cfg.n_heads // model.cfg.n_kv_heads)
    want = {"q": run[f"blocks.{L}.attn.hook_q"][:, h], "k": run[f"blocks.{L}.attn.hook_k"][:, kv],
            "v": run[f"blocks.{L}.attn.hook_v"][:, kv], "z": run[f"blocks.{L}.attn.hook_z"][:, h]}
    for name, a in want.items():
        assert d[name] == np.round(a.astype(np.float64), 5).tolist(), name
    W_O = model.weights[f"blocks.{L}.attn.W_O"][h * model.cfg.d_head:(h + 1) * model.cfg.d_head]
    norms = np.linalg.norm(want["v"] @ W_O, axis=-1)  # [key]: what a weight of 1 on each key moves
    np.testing.assert_allclose(d["v_out_norm"], norms, atol=0.5e-5 + 1e-5 * norms.max())  # 5 decimals; the float32
    # norm itself may differ in its last bits from the engine's batched product over all heads


def test_a_vanishing_temperature_is_the_argmax_not_nan(client):
    body = post(client, "/api/predictions", text=LESSON, top_k=3, temperature=5e-324).json()
    top = body["predictions"][-1]
    assert top[0]["prob"] == 1.0 and all(p["prob"] == 0.0 for p in top[1:])
    normal = post(client, "/api/predictions", text=LESSON, top_k=1).json()
    assert top[0]["id"] == normal["predictions"][-1][0]["id"]


def test_a_body_that_is_not_utf8_gets_the_error_shape(client):
    r = client.post("/api/attention", content=b"\xd8\x85L3\xff\xfe", headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500 and r.json()["error"] and r.json()["detail"]
    r = client.get("/api/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
