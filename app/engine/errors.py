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


class EmptyInputError(EngineError, ValueError):
    def __init__(self):
        super().__init__("the text is empty (or only whitespace): type something to look at")
