"""The engine: real pretrained transformers in numpy, every attention tensor captured.

    from app.engine import load_model, Registry
    model = Registry.from_env().get("smollm2-135m-instruct")
    run = model.run("a fluffy blue creature roamed the verdant forest")
    run["blocks.0.attn.hook_pattern"]  # [head_index, query_pos, key_pos]

Generation lives in its own module, so that `app.engine.generate` names the module, not the function:

    from app.engine.generate import generate
"""

from .chat import ChatTemplateError, render_chat
from .config import ModelConfig
from .errors import (EmptyInputError, EngineError, GenerationError, GenerationTooLongError, InputTooLongError,
                     ModelLoadError, NotCausalError, TokenIdError, UnknownModelError)
from .forward import KVCache, forward, unembed
from .model import Model, Run, load_model
from .registry import DEFAULT_MODEL, Registry
from .tokenize import Token

__all__ = [
    "DEFAULT_MODEL", "ChatTemplateError", "EmptyInputError", "EngineError", "GenerationError",
    "GenerationTooLongError", "InputTooLongError", "KVCache", "Model", "ModelConfig", "ModelLoadError",
    "NotCausalError", "Registry", "Run", "Token", "TokenIdError", "UnknownModelError", "forward", "load_model", "render_chat", "unembed",
]
