"""Chat templates: the model's own jinja template, rendered in jinja2's sandbox into prompt text.

A chat model was trained on text framed by its template (SmolLM2: `<|im_start|>user ... <|im_end|>`);
prompting it with the same frame is what makes it answer an instruction rather than continue it.
Templates come from model files (GGUF metadata, tokenizer_config.json), so they are untrusted code:
`ImmutableSandboxedEnvironment` forbids attribute tricks and mutating the objects passed in. The
environment is set up as Hugging Face's `apply_chat_template` sets up its own (trim_blocks and
lstrip_blocks, loop controls, a `tojson` that does not HTML-escape, `raise_exception`,
`strftime_now`), so a template renders here exactly as it does there (tests/engine/test_chat.py).
"""

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import GenerationError

Message = Mapping[str, str]  # {"role": "system" | "user" | "assistant", "content": str}
ROLES = ("system", "user", "assistant")


class ChatTemplateError(GenerationError):
    """The model has no chat template, or its template failed on these messages."""


class _Generation(Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text for training masks; rendering keeps its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def _raise(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@lru_cache(maxsize=8)
def compile_template(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except jinja2.TemplateError as e:
        raise ChatTemplateError(f"the model's chat template does not compile: {e}") from e


def render_chat(
    template: str | None,
    messages: str | Sequence[Message],
    *,
    add_generation_prompt: bool = True,
    special_tokens: Mapping[str, str] | None = None,
) -> str:
    """The prompt text for messages (a bare string is one user message), ready to tokenize.

    add_generation_prompt: end with the assistant's header, so what the model writes next is its reply.
    special_tokens: bos_token, eos_token... as the template refers to them.
    """
    if not template:
        raise ChatTemplateError("this model has no chat template: give the prompt as plain text")
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    msgs = [dict(m) for m in messages]
    for m in msgs:
        if m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ChatTemplateError(f"a chat message is {{'role': one of {', '.join(ROLES)}, 'content': text}}, not {m!r}")
    try:
        return compile_template(template).render(
            messages=msgs, add_generation_prompt=add_generation_prompt, **(special_tokens or {}))
    except jinja2.TemplateError as e:  # a template's raise_exception, or the sandbox refusing something
        raise ChatTemplateError(f"the model's chat template refused these messages: {e}") from e
