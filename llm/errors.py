"""Errors of the llm package. Each message says what went wrong and what to do.

``LLMLabeler.label`` never raises for a fault of the model or the endpoint: it falls back to
the keyword label of that cluster. These errors are for wrong settings and the local server.
"""


class LLMError(Exception):
    """Base of every error this package raises on purpose."""


class LLMConfigError(LLMError):
    """The LLM settings are missing or out of range."""


class LLMCallError(LLMError):
    """One chat completion failed (HTTP error, time-out, refusal, empty or invalid reply).

    Caught inside the labeler and turned into an ``llm_failed`` label; ``status`` is the status
    stored with the call (see ``llm.cache``).
    """

    def __init__(self, message: str, status: str, retries: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.retries = retries
        """Requests the SDK sent again before giving up."""


class LocalModelError(LLMError):
    """The bundled local model is missing, or its llama.cpp server does not start."""


class KeyphraseError(LLMError):
    """Keyphrase expansion cannot embed the texts asked for (no LLM endpoint for texts missing
    from the embedding cache, or vectors made by another prompt version)."""
