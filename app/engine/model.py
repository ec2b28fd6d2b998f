"""A loaded model (config + weights + tokenizer) and one run of it over a text."""

import fcntl
import logging
import os
import re
from collections.abc import Collection, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import loaders, tokenize
from .chat import Message, render_chat
from .config import ModelConfig
from .errors import EmptyInputError, InputTooLongError, ModelLoadError, TokenIdError
from .forward import Cache, Hook, forward, unembed
from .tokenize import TextTokenizer, Token

log = logging.getLogger("attnscope.engine")


@dataclass
class Run:
    """One text through one model: its tokens, the activation cache, and logits if asked for."""

    model_id: str
    tokens: list[Token]
    cache: Cache
    logits: np.ndarray | None = None  # [pos, d_vocab] for the positions asked for
    text: str = ""  # what the tokens' spans index: the input, then the text of the ids written after it

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cache[name]

    @property
    def ids(self) -> list[int]:
        return [t.id for t in self.tokens]


@dataclass
class Model:
    id: str
    name: str
    source: Path
    cfg: ModelConfig
    weights: Mapping[str, np.ndarray] = field(repr=False)
    tokenizer: TextTokenizer = field(repr=False)
    max_tokens: int = 512
    eos_ids: tuple[int, ...] = ()  # generation stops at any of these
    chat_template: str | None = field(default=None, repr=False)  # jinja source, from the model's own files
    special_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)  # bos_token, eos_token: what templates name

    def tokenize(self, text: str) -> list[Token]:
        """The text's tokens; refuses empty text and text longer than max_tokens, saying why."""
        return self.read(text)[1]

    def read(self, text: str, then: Sequence[int] = ()) -> tuple[str, list[Token]]:
        """(the whole text, its tokens): the text's tokens, then the tokens of the ids `then` as they are
        (what the model wrote after the text, never re-read from their text: "\n" + "\n" written reads
        back as one "\n\n" token), their spans in text + their decoded text. Refuses empty text, ids
        outside the vocabulary and more than max_tokens in all, saying why."""
        if not isinstance(text, str) or not text.strip():
            raise EmptyInputError()
        tokens = self.tokenizer.encode(text)
        if then:
            then = [int(i) for i in then]
            bad = [i for i in then if not 0 <= i < self.cfg.d_vocab]
            if bad:
                raise TokenIdError(bad[0], self.cfg.d_vocab)
            if len(tokens) + len(then) > self.max_tokens:  # before any decoding: refused at once
                raise InputTooLongError(len(tokens) + len(then), self.max_tokens)
            written, more = self.tokenizer.continuation([t.id for t in tokens], then, offset=len(text))
            text, tokens = text + written, tokens + more
        if len(tokens) > self.max_tokens:
            raise InputTooLongError(len(tokens), self.max_tokens)
        if not tokens:
            raise EmptyInputError()
        return text, tokens

    def run(
        self,
        text: str,
        *,
        then: Sequence[int] = (),
        names: Collection[str] | None = None,
        logits: str | slice | None = "all",
        hooks: Mapping[str, Hook] | None = None,
    ) -> Run:
        """Tokenize (and append the ids `then`: see read) and run. names: the TransformerLens names to keep (None: all)."""
        text, tokens = self.read(text, then)
        out, cache = forward(self.cfg, self.weights, [t.id for t in tokens], names=names, hooks=hooks, logits=logits)
        return Run(self.id, tokens, cache, out, text)

    def chat_prompt(self, messages: str | Sequence[Message], add_generation_prompt: bool = True) -> str:
        """The prompt text of messages (a string: one user message) framed by the model's chat template."""
        return render_chat(self.chat_template, messages, add_generation_prompt=add_generation_prompt,
                           special_tokens=self.special_tokens)

    def unembed(self, resid: np.ndarray) -> np.ndarray:
        """Final norm + unembedding of residual vectors [pos, d_model] -> logits [pos, d_vocab]."""
        if not self.cfg.causal:
            raise ValueError(f"{self.id} is an encoder: it has no unembedding")
        return unembed(resid, self.cfg, self.weights)

    def info(self) -> dict:
        c = self.cfg
        return {"id": self.id, "name": self.name, "architecture": c.architecture, "model_type": c.model_type or c.architecture,
                "causal": c.causal,
                "n_layers": c.n_layers, "n_heads": c.n_heads, "n_kv_heads": c.n_kv_heads,
                "d_model": c.d_model, "d_head": c.d_head, "d_rotary": (c.d_rotary or c.d_head) if c.rotary else 0,
                "d_mlp": c.d_mlp, "d_vocab": c.d_vocab,
                "n_ctx": c.n_ctx, "max_tokens": self.max_tokens}


def default_cache_dir() -> Path:
    env = os.environ.get("ATTNSCOPE_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "attnscope"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


def load_model(
    path: str | os.PathLike,
    model_id: str | None = None,
    *,
    name: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    max_tokens: int = 512,
) -> Model:
    """Load a GGUF file or a local Hugging Face folder (GPT-2, BERT or Llama family).

    The converted float32 weights are stored under cache_dir (default ~/.cache/attnscope) and
    memory-mapped on later loads, so a second start skips dequantisation.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelLoadError(f"no model at {path}: the file or folder does not exist")
    is_gguf = path.is_file()
    if is_gguf and path.suffix.lower() != ".gguf":
        raise ModelLoadError(f"{path} is a file but not a .gguf file (give a GGUF file or a Hugging Face folder)")
    model_id = model_id or slug(path.stem if is_gguf else path.name)
    store_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    store_dir = store_dir / f"{model_id}-{loaders.source_key(path)}"

    with _conversion_lock(store_dir):  # several server workers starting at once convert only once
        stored = loaders.open_store(store_dir)
        if stored is not None:
            cfg, weights, meta = stored
            tk = TextTokenizer(tokenize.Tokenizer.from_str(meta["tokenizer"])) if "tokenizer" in meta else tokenize.from_hf_folder(path)
            display = meta.get("name", model_id)
            gen = meta["generation"]
        else:
            if is_gguf:
                cfg, weights, tok_meta = loaders.read_gguf(path)
                tk, display, gen = tokenize.from_gguf_metadata(tok_meta), tok_meta["name"], tok_meta["generation"]
                extra = {"tokenizer": tk.tk.to_str(), "name": display, "generation": gen}
            else:
                cfg, weights = loaders.read_hf_folder(path)
                tk, display, gen = tokenize.from_hf_folder(path), path.name, loaders.read_generation_meta(path)
                extra = {"name": display, "generation": gen}
            weights = _store_and_map(store_dir, cfg, weights, extra)
    if tk.vocab_size > cfg.d_vocab:
        raise ModelLoadError(f"{path}: the tokenizer has {tk.vocab_size} tokens but the model embeds only {cfg.d_vocab}")
    limit = min(cfg.n_ctx, max_tokens)
    specials = {k: gen[k] for k in ("bos_token", "eos_token") if gen.get(k) is not None}
    eos = tuple(i for i in gen["eos_ids"] if 0 <= i < cfg.d_vocab)
    return Model(model_id, name or display, path, cfg, weights, tk, limit, eos, gen["chat_template"], specials)


@contextmanager
def _conversion_lock(store_dir: Path):
    """An exclusive file lock beside the store; no lock (and no store) where we cannot write."""
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
        f = open(store_dir / "convert.lock", "w")
    except OSError:
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _store_and_map(store_dir: Path, cfg: ModelConfig, weights: dict, extra: dict) -> Mapping[str, np.ndarray]:
    """Write the converted tree once and use the mapped copy; keep it in memory if we cannot write."""
    try:
        loaders.save_store(store_dir, cfg, weights, extra)
        stored = loaders.open_store(store_dir)
        if stored is not None:
            return stored[1]
    except OSError as e:
        log.warning("cannot cache weights in %s (%s); keeping them in memory", store_dir, e)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
