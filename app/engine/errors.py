"""Exceptions the engine raises. Each carries a message a user can act on."""


class EngineError(Exception):
    """Base class: anything the engine refuses to do, with the reason."""


class UnknownModelError(EngineError, KeyError):
    def __init__(self, model_id: str, known: list[str]):
        self.model_id, self.known = model_id, known
        super().__init__(f"unknown model {model_id!r}; known models: {', '.join(known) or 'none'}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class ModelLoadError(EngineError):
    """A weight or tokenizer file is missing, unreadable, corrupt or of an unsupported kind."""


class InputTooLongError(EngineError, ValueError):
    def __init__(self, n_tokens: int, limit: int):
        self.n_tokens, self.limit = n_tokens, limit
        super().__init__(f"the text has {n_tokens} tokens; this model takes at most {limit}")


class TokenIdError(EngineError, ValueError):
    def __init__(self, token_id: int, d_vocab: int):
        self.token_id, self.d_vocab = token_id, d_vocab
        super().__init__(f"token id {token_id} is not in this model's vocabulary (ids 0-{d_vocab - 1})")


class EmptyInputError(EngineError, ValueError):
    def __init__(self):
        super().__init__("the text is empty (or only whitespace): type something to look at")


class GenerationError(EngineError, ValueError):
    """Generation settings the engine cannot honour (a negative temperature, top_p outside (0, 1]...)."""


class NotCausalError(GenerationError):
    def __init__(self, model_id: str):
        self.model_id = model_id
        super().__init__(f"{model_id} is an encoder: it does not predict a next token, so it cannot generate")


class GenerationTooLongError(InputTooLongError):
    """The prompt plus the tokens asked for would pass the model's limit (checked before any work)."""

    def __init__(self, n_prompt: int, max_new_tokens: int, limit: int):
        self.n_prompt, self.max_new_tokens = n_prompt, max_new_tokens
        super().__init__(n_prompt + max_new_tokens, limit)
        self.args = (f"the prompt has {n_prompt} tokens and {max_new_tokens} more were asked for; "
                     f"this model takes at most {limit} in all",)
