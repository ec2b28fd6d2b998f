"""/api/generate (app/generation.py) and the states it writes: `then`, the ids after a text, which every
view runs as they are. The engine's generate() is tested against transformers in
tests/engine/test_generate.py; here: the HTTP face gives the engine's tokens, streams them line by line,
stops when its client goes, shares the compute pool and sheds, and each step's state, viewed with `then`,
is what the model computed when it wrote."""

import asyncio
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import uvicorn

from app import generation
from app.engine.generate import generate
from app.main import create_app
from app.settings import Settings
from tests.conftest import TEST_HOST
from tests.generation_steps import counted, settle  # noqa: F401 (counted: a fixture)

PROMPT = "The capital of France is"


def post(client, path, **body):
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def engine_ids(model, text, n, **kw):
    return [t.id for t in generate(model, [t.id for t in model.tokenize(text)], n, **kw)]


# --- what it writes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt", [PROMPT, "def fibonacci(n):", "I love 🦊 and"])
def test_greedy_writes_the_engines_tokens(client, smol, prompt):
    d = post(client, "/api/generate", text=prompt, max_new_tokens=24)
    assert [t["id"] for t in d["tokens"]] == engine_ids(smol, prompt, 24)
    assert d["then"] == [t["id"] for t in d["tokens"]] and d["prompt"] == prompt
    assert [t["id"] for t in d["prompt_tokens"]] == [t.id for t in smol.tokenize(prompt)]
    assert d["text"] == smol.tokenizer.continuation_text([t.id for t in smol.tokenize(prompt)], d["then"])
    assert d["stop_reason"] in ("length", "eos") and d["settings"]["seed"] is None
    for t in d["tokens"]:  # greedy: the chosen token is the likeliest, listed first
        assert t["top"][0]["id"] == t["id"] and t["top"][0]["prob"] == t["prob"]
        assert [p["prob"] for p in t["top"]] == sorted((p["prob"] for p in t["top"]), reverse=True)


def test_seeded_sampling_replays(client):
    body = dict(text=PROMPT, max_new_tokens=16, temperature=0.9, top_k=40, top_p=0.95)
    a = post(client, "/api/generate", **body, seed=7)
    assert a == post(client, "/api/generate", **body, seed=7)  # same seed, same everything
    chosen = post(client, "/api/generate", **body)  # no seed: one is chosen and reported
    seed = chosen["settings"]["seed"]
    assert isinstance(seed, int) and 0 <= seed < generation.SEED_LIMIT
    assert post(client, "/api/generate", **body, seed=seed)["then"] == chosen["then"]


def test_chat_frames_the_prompt_with_the_models_template(client, smol):
    d = post(client, "/api/generate", text="Name three colours.", chat=True, max_new_tokens=40)
    assert d["prompt"] == smol.chat_prompt("Name three colours.") and d["prompt"].startswith("<|im_start|>")
    assert d["then"] == engine_ids(smol, d["prompt"], 40)
    if d["stop_reason"] == "eos":
        assert d["then"][-1] in smol.eos_ids


def test_then_continues_a_generation(client, smol):
    whole = post(client, "/api/generate", text=PROMPT, max_new_tokens=12)
    first = post(client, "/api/generate", text=PROMPT, max_new_tokens=5)
    more = post(client, "/api/generate", text=PROMPT, then=first["then"], max_new_tokens=7)
    assert more["then"] == whole["then"] and more["text"] == whole["text"]
    assert [t["position"] for t in more["tokens"]] == [t["position"] for t in whole["tokens"]][5:]
    assert len(more["prompt_tokens"]) == len(smol.tokenize(PROMPT)) + 5


# --- the states it writes, viewed with `then` ---------------------------------------------------------

def test_each_step_viewed_with_then_is_what_the_model_computed(client, smol):
    """At step t the views run prompt + then[:t] as ids: the predictions at the last position name the
    token written next, with the probability it was written with."""
    d = post(client, "/api/generate", text="I love 🦊 and 日本", max_new_tokens=16)
    n = len(d["prompt_tokens"])
    for t, tok in enumerate(d["tokens"]):
        p = post(client, "/api/predictions", text=d["prompt"], then=d["then"][:t], top_k=5)
        assert [x["id"] for x in p["tokens"]] == [x["id"] for x in d["prompt_tokens"]] + d["then"][:t]
        best = p["predictions"][n + t - 1][0]
        assert best["id"] == tok["id"]
        # one forward over every id against KV-cached steps: the same float32 sums in another order,
        # logits within ~1e-5 relative (tests/engine/test_generate.py's ATOL_KV_PATTERN reasoning),
        # probabilities within a few 1e-6; both sides are rounded to 6 decimals as sent
        assert abs(best["prob"] - tok["prob"]) <= 2e-5


def test_then_spans_index_the_written_text(client, smol):
    d = post(client, "/api/generate", text="日本の首都は", max_new_tokens=10)
    a = post(client, "/api/attention", text=d["prompt"], then=d["then"], layers=[0])
    whole = d["prompt"] + d["text"]
    assert [t["id"] for t in a["tokens"]][len(d["prompt_tokens"]):] == d["then"]
    assert [(t["start"], t["end"]) for t in a["tokens"]][len(d["prompt_tokens"]):] == [(t["start"], t["end"]) for t in d["tokens"]]
    for t in d["tokens"]:
        assert 0 <= t["start"] <= t["end"] <= len(whole)
    # every written character is covered by the span of some token that wrote it
    covered = set().union(*(range(t["start"], t["end"]) for t in d["tokens"]))
    assert covered == set(range(len(d["prompt"]), len(whole)))


def test_two_newlines_written_stay_two_tokens(client, smol):
    nl = smol.tokenizer.tk.token_to_id("Ċ")
    a = post(client, "/api/attention", text="Hello", then=[nl, nl], layers=[0])
    assert [t["id"] for t in a["tokens"]][-2:] == [nl, nl]
    assert [t.id for t in smol.tokenize("Hello\n\n")][-1] != nl  # typed, the same text reads as one token
    n = len(a["tokens"])
    assert np.asarray(a["attention"]["0"]).shape[-1] == n


# --- streaming ---------------------------------------------------------------------------------------

def test_the_stream_parses_line_by_line(client):
    body = dict(text="Name three colours.", chat=True, max_new_tokens=20, temperature=0.7, seed=3)
    with client.stream("POST", "/api/generate", json=body | {"stream": True}, headers={"Accept-Encoding": "gzip"}) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        assert "content-encoding" not in r.headers  # gzip would hold lines back until a block fills
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert lines[0]["type"] == "start" and lines[-1]["type"] == "done"
    toks, done = lines[1:-1], lines[-1]
    assert all(t["type"] == "token" for t in toks)
    assert [t["id"] for t in toks] == done["then"] == post(client, "/api/generate", **body)["then"]
    for t in toks:
        assert {k: t[k] for k in ("id", "text", "prob", "top", "position")} == {k: v for k, v in done["tokens"][toks.index(t)].items() if k not in ("start", "end")}
    written = [t["written"] for t in toks]
    assert all(b.startswith(a) for a, b in zip(written, written[1:]))
    assert done["text"].startswith(written[-1])


# --- errors, limits ----------------------------------------------------------------------------------

@pytest.mark.parametrize("body, status, code", [
    ({"text": "x", "model": "all-minilm-l6-v2"}, 422, "not_causal"),
    ({"text": "x", "max_new_tokens": 0}, 422, "invalid_request"),
    ({"text": "x", "max_new_tokens": 129}, 422, "invalid_request"),
    ({"text": "x", "temperature": -1}, 422, "invalid_request"),
    ({"text": "x", "top_p": 0}, 422, "invalid_request"),
    ({"text": "x", "top_k": 0}, 422, "invalid_request"),
    ({"text": "x", "seed": -1}, 422, "invalid_request"),
    ({"text": "x", "then": [1] * 500, "max_new_tokens": 20}, 422, "too_many_tokens"),
    ({"text": "x", "then": [10**9]}, 422, "bad_token_id"),
    ({"text": "  "}, 422, "empty_text"),
    ({"text": "x", "model": "nope"}, 404, "unknown_model"),
    ({"text": "x", "stream": True, "model": "all-minilm-l6-v2"}, 422, "not_causal"),  # before any line is sent
])
def test_bad_requests_get_a_clear_4xx(client, body, status, code):
    r = client.post("/api/generate", json=body)
    assert r.status_code == status and r.json()["error"] == code, r.text


def test_then_in_views_is_checked_too(client):
    r = client.post("/api/head", json={"text": "x", "then": [-1], "layer": 0, "head": 0})
    assert r.status_code == 422 and r.json()["error"] in ("bad_token_id", "invalid_request")
    r = client.post("/api/attention", json={"text": "x", "then": [5] * 600})
    assert r.status_code == 422 and r.json()["error"] == "too_many_tokens"


def test_a_busy_pool_sheds_a_new_generation_with_503(client):
    pool = client.app.state.runner.pool
    with pool._lock:
        pool._pending += pool.max_pending  # as if that much work were waiting
    try:
        r = client.post("/api/generate", json={"text": PROMPT, "stream": True})
    finally:
        with pool._lock:
            pool._pending -= pool.max_pending
    assert r.status_code == 503 and r.headers["retry-after"] and r.json()["error"] == "overloaded"


# --- a client that goes away stops its generation ------------------------------------------------------

@pytest.fixture(scope="module")
def live(registry, smol):
    """The app under a real uvicorn in a thread of this process, so the test can count its steps."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Settings(preload="default", allowed_hosts=TEST_HOST + ",127.0.0.1"), registry=registry)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.05)
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


def _stream_then_leave(url, n_lines):
    async def go():
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            async with c.stream("POST", "/api/generate", json={"text": PROMPT, "max_new_tokens": 128, "stream": True}) as r:
                assert r.status_code == 200
                got = 0
                async for line in r.aiter_lines():
                    if line:
                        got += 1
                    if got == n_lines:
                        return got  # leaving the block closes the connection mid-stream
    return asyncio.run(go())


def test_a_stream_whose_client_leaves_stops(live, counted):
    app, url = live
    with ThreadPoolExecutor(1) as ex:  # a loop of its own: the browser tests' Playwright runs one in this thread
        assert ex.submit(_stream_then_leave, url, 4).result() == 4  # the start line and 3 tokens
    steps = settle(app, counted)
    print(f"stream: {steps} steps ran for a client that read 3 tokens of 128")
    assert 3 <= steps <= 6, f"{steps} steps ran for a client that read 3 tokens of 128"  # at most a line or two in flight


def test_a_json_request_whose_client_leaves_stops(live, counted):
    app, url = live

    async def go():
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            task = asyncio.create_task(c.post("/api/generate", json={"text": PROMPT, "max_new_tokens": 128}))
            while len(counted) < 3:
                await asyncio.sleep(0.01)
            task.cancel()  # the connection closes with the request unanswered
            with pytest.raises(asyncio.CancelledError):
                await task

    with ThreadPoolExecutor(1) as ex:
        ex.submit(asyncio.run, go()).result()
    steps = settle(app, counted)
    print(f"json: {steps} steps ran for a client that left after 3 of 128")
    assert steps < 20, f"{steps} steps ran for a client that left after 3"


# --- Model.read: any ids after any text --------------------------------------------------------------

def test_read_keeps_any_ids_and_spans_their_text(smol):
    """Random ids (byte pieces, special tokens, words) after a text: kept as they are, each span inside
    the whole text, in order, and the spans together cover every character the ids wrote."""
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=60, derandomize=True, deadline=None, database=None)
    @given(st.lists(st.integers(0, smol.cfg.d_vocab - 1), min_size=1, max_size=24), st.sampled_from(["Hi", "日本", "a 🦊"]))
    def check(then, text):
        whole, tokens = smol.read(text, then)
        written = tokens[len(tokens) - len(then):]
        assert [t.id for t in written] == then and whole.startswith(text)
        assert whole[len(text):] == smol.tokenizer.continuation_text([t.id for t in smol.tokenize(text)], then)
        for a, b in zip(written, written[1:]):
            assert a.start <= b.start and a.end <= b.end
        for t in written:
            assert len(text) <= t.start <= t.end <= len(whole)
        assert set().union(*(range(t.start, t.end) for t in written)) == set(range(len(text), len(whole)))

    check()


# --- the written state in pages, embeds and exports ----------------------------------------------------

def test_embeds_exports_and_pages_run_the_written_ids(client):
    import re
    from urllib.parse import parse_qs, urlencode, urlsplit

    d = post(client, "/api/generate", text=PROMPT, max_new_tokens=6)
    then = ",".join(map(str, d["then"]))
    att = post(client, "/api/attention", text=PROMPT, then=d["then"][:4], layers=[2])
    # an embed of the explorer's step 4 (its URL's upto cuts then): the API's numbers for that step
    url = "http://testserver/?" + urlencode({"text": PROMPT, "then": then, "upto": 4, "layer": 2, "head": 3})
    o = client.get("/oembed", params={"url": url}).json()
    src = re.search(r'src="([^"]+)"', o["html"]).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(src).query)["then"] == [",".join(map(str, d["then"][:4]))]
    html = client.get(urlsplit(src).path + "?" + urlsplit(src).query).text
    inline = json.loads(re.search(r'<script type="application/json" id="initial">(.*?)</script>', html, re.S).group(1))
    assert inline["error"] is None and inline["data"]["attention"]["tokens"] == att["tokens"]
    assert inline["data"]["attention"]["attention"]["2"] == att["attention"]["2"]
    # an export of that step
    r = client.get("/export/heatmap.json", params={"text": PROMPT, "then": ",".join(map(str, d["then"][:4])), "layer": 2, "head": 3})
    assert r.status_code == 200 and r.json()["tokens"] == att["tokens"]
    assert r.json()["text"] == PROMPT + d["text"][:d["tokens"][3]["end"] - len(PROMPT)]
    bad = client.get("/export/heatmap.json", params={"text": PROMPT, "then": "1,x"})
    assert bad.status_code == 422 and bad.json()["error"] == "bad_parameter"
    bad = client.get("/embed/heatmap", params={"text": PROMPT, "then": "-3"})
    assert bad.status_code in (200, 422) and "then must be token ids" in bad.text
    # the explorer page at that step: its first view is the step's, its timeline knows every written token
    page = client.get("/", params={"text": PROMPT, "then": then, "upto": 4}).text
    state = json.loads(re.search(r'<script type="application/json" id="initial">(.*?)</script>', page, re.S).group(1))
    assert state["data"]["attention"]["tokens"] == att["tokens"] and state["state"]["upto"] == 4
    assert [t["id"] for t in state["state"]["written"]["tokens"]] == d["then"]
    assert state["state"]["written"]["whole"] == PROMPT + d["text"]


def test_written_byte_pieces_read_as_people_read_them(client):
    """SmolLM2 writes katakana after this prompt as two byte pieces each: the summary says which
    character each piece belongs to; each streamed line reads its token where it was written (the
    first piece: its bytes, the character unfinished; the second: the character it completes)."""
    body = dict(text="日本の首都は", max_new_tokens=8)
    d = post(client, "/api/generate", **body)
    pieces = [t for t in d["tokens"] if t.get("pieces")]
    assert pieces and all("\\x" not in t["char"] for t in pieces)
    with client.stream("POST", "/api/generate", json=body | {"stream": True}) as r:
        lines = [json.loads(x) for x in r.iter_lines() if x][1:-1]
    for line, t in zip(lines, d["tokens"]):
        if t.get("pieces") and t["piece"] < t["pieces"]:
            assert "bytes" in line and line["piece"] == t["piece"] and "char" not in line
        elif t.get("pieces"):
            assert (line["char"], line["piece"], line["pieces"]) == (t["char"], t["piece"], t["pieces"])
