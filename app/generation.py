"""/api/generate over HTTP: the engine's generate() (app/engine/generate.py), one step per compute-pool job.

Each step is its own job in the shared compute pool, so a long generation never holds the pool while a
reader's views wait: their forward passes run between its steps. Only the first job (the prompt's
tokens, every setting checked) can be shed with 503; a generation once started keeps its place. A client
that goes away stops its generation within a step: the JSON route asks between steps, the streaming one
stops when a line cannot be written, and the cancel event makes a step already queued do nothing.

What was written is a state the views can show exactly: `text` (the prompt as run) with `then` (the
ids given and written), which /api/attention and the rest run as they are (Model.read).
"""

import secrets
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request

from .engine import Model, NotCausalError
from .analysis import token_public
from .engine.generate import GeneratedToken, generate
from .engine.tokenize import continues
from .http import dumps
from .runs import Runner
from .service import Overloaded
from .schemas import GenerateRequest

SEED_LIMIT = 2**32  # the seed chosen for a sampled generation that named none: reported, so it can be replayed


@dataclass
class Writing:
    """One generation in progress: its prompt, settings, the engine's iterator and what it has written."""

    model: Model
    prompt: str  # the text as run (framed by the model's chat template when chat)
    given: list[int]  # ids given after the prompt (`then`: continuing an earlier generation)
    prompt_ids: list[int]  # the prompt's tokens, then the given ids: what generation continues
    prompt_tokens: list[dict]
    settings: dict
    steps: object  # the engine's iterator of GeneratedToken: each next() is one forward step
    cancel: threading.Event
    tokens: list[GeneratedToken] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)  # each token as its line said it (read where it was written)
    stop_reason: str | None = None
    pending: bytes = b""  # the bytes of a character the text so far stops inside, in so_far pieces
    so_far: int = 0

    def then(self) -> list[int]:
        return self.given + [t.id for t in self.tokens]

    def written(self) -> str:
        """What follows the prompt so far (the given ids' text too); an unfinished character at its end held back."""
        return self.model.tokenizer.continuation_text(self.prompt_ids[:len(self.prompt_ids) - len(self.given)],
                                                      self.then()).rstrip("\ufffd")

    def add(self, t: GeneratedToken) -> dict:
        """Take a token just chosen: its line, each token read where it was written (a byte piece of a
        character says which, or its bytes while the character is unfinished; analysis.read_next)."""
        tk = self.model.tokenizer
        read = lambda i: tk.read_next(i, self.pending, self.so_far)  # noqa: E731
        line = {"id": t.id, "text": tk.id_text(t.id), **read(t.id), "position": t.position, "prob": round(t.prob, 6),
                "top": [{"id": i, "text": tk.id_text(i), **read(i), "prob": round(p, 6)} for i, p in t.top]}
        if "bytes" in line:  # an unfinished character: the next piece continues it
            data = tk.id_bytes(t.id)
            self.pending, self.so_far = (self.pending if continues(data) else b"") + data, line["piece"]
        else:
            self.pending, self.so_far = b"", 0
        self.tokens.append(t)
        self.lines.append(line)
        return line

    def summary(self) -> dict:
        """The whole generation; each token's span is in the text the views show for {text: prompt, then}."""
        whole, spans = self.model.read(self.prompt, self.then())
        n = len(self.tokens)
        # the pieces as the whole text has them; a last character left unfinished: its bytes, as its line said
        tokens = [token_public(s) | {k: line[k] for k in ("position", "prob", "top")}
                  | ({k: line[k] for k in ("bytes", "piece", "range") if k in line} if not s.pieces else {})
                  for line, s in zip(self.lines, spans[len(spans) - n:])]
        reads_back = [t.id for t in self.model.tokenizer.encode(whole)] == [t.id for t in spans]
        return {"model": self.model.id, "prompt": self.prompt, "prompt_tokens": self.prompt_tokens, "tokens": tokens,
                "text": whole[len(self.prompt):], "stop_reason": self.stop_reason, "settings": self.settings,
                "then": self.then(), "reads_back": reads_back}


def prepare(runner: Runner, req: GenerateRequest) -> Writing:
    """Blocking, in the pool: the prompt's tokens, every setting checked, no forward step yet."""
    model = runner.model(req.model)
    if not model.cfg.causal:
        raise NotCausalError(model.id)
    prompt = model.chat_prompt(req.text) if req.chat else req.text
    _, tokens = model.read(prompt, req.then)
    ids = [t.id for t in tokens]
    seed = req.seed if req.seed is not None or req.temperature == 0 else secrets.randbelow(SEED_LIMIT)
    settings = {"max_new_tokens": req.max_new_tokens, "temperature": req.temperature, "top_k": req.top_k,
                "top_p": req.top_p, "seed": seed, "chat": req.chat}
    cancel = threading.Event()
    steps = generate(model, ids, req.max_new_tokens, req.temperature, req.top_k, req.top_p, seed,
                     n_top=req.n_top, cancel=cancel, attention=False)
    pending, so_far = model.tokenizer.next_piece(tokens, len(tokens) - 1)
    return Writing(model, prompt, list(req.then), ids, [token_public(t) for t in tokens], settings, steps, cancel,
                   pending=pending, so_far=so_far)


async def start(runner: Runner, req: GenerateRequest) -> Writing:
    """The first job: shed (503 + Retry-After) like any other work when too much waits, or when
    max_generations are writing already; a bad input is a 4xx."""
    if runner.writing >= runner.settings.max_generations:
        raise Overloaded()
    return await runner.pool.run(prepare, runner, req)


def _step(w: Writing) -> GeneratedToken | None:
    return None if w.cancel.is_set() else next(w.steps, None)


async def tokens(runner: Runner, w: Writing, request: Request | None = None) -> AsyncIterator[GeneratedToken]:
    """Each token as soon as it is chosen; stops when the client has gone (if request is given). Counted in
    runner.writing while it runs (a generation whose response never started holds nothing: its prefill
    runs with the first step)."""
    runner.writing += 1
    try:
        while w.stop_reason is None:
            if request is not None and await request.is_disconnected():
                w.stop_reason = "disconnected"
                return
            t = await runner.pool.run(_step, w, shed=False)
            if t is None:  # cancelled
                w.stop_reason = "cancelled"
                return
            w.add(t)
            w.stop_reason = t.stop_reason
            yield t
    finally:
        runner.writing -= 1
        w.cancel.set()  # whatever stopped us (the client gone, an error, a cancelled task): no step runs after this


async def lines(runner: Runner, w: Writing) -> AsyncIterator[bytes]:
    """application/x-ndjson: a start line, a line per token as soon as it is chosen, then the summary line."""
    yield dumps({"type": "start", "model": w.model.id, "prompt": w.prompt, "prompt_tokens": w.prompt_tokens,
                 "settings": w.settings}) + b"\n"
    try:
        async for t in tokens(runner, w):
            yield dumps({"type": "token", **w.lines[-1], "written": w.written()}) + b"\n"
        yield dumps({"type": "done", **await runner.pool.run(w.summary, shed=False)}) + b"\n"
    except Exception as e:  # noqa: BLE001 (the status line has gone out: an error is a line of its own)
        yield dumps({"type": "error", "error": "generation_failed", "detail": str(e)}) + b"\n"
