"""The engine: real pretrained transformers in numpy, every attention tensor captured.

    from app.engine import load_model, Registry
    model = Registry.from_env().get("smollm2-135m-instruct")
    run = model.run("a fluffy blue creature roamed the verdant forest")
    run["blocks.0.attn.hook_pattern"]  # [head_index, query_pos, key_pos]
"""

from .config import ModelConfig
from .errors import EmptyInputError, EngineError, InputTooLongError, ModelLoadError, UnknownModelError
from .forward import forward, unembed
from .model import Model, Run, load_model
from .registry import DEFAULT_MODEL, Registry
from .tokenize import Token

__all__ = [
    "DEFAULT_MODEL", "EmptyInputError", "EngineError", "InputTooLongError", "Model", "ModelConfig",
    "ModelLoadError", "Registry", "Run", "Token", "UnknownModelError", "forward", "load_model", "unembed",
]
