"""The one place that calls the ``openai`` SDK: one chat completion in, one ``Completion`` out.

Retries on 408/409/429/5xx, time-outs and refused connections are the SDK's own (exponential
backoff from 0.5 s, honouring ``Retry-After`` up to two minutes), bounded by
``LLMSettings.max_retries``. Every other failure becomes an ``LLMCallError``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from llm.cache import STATUS_ERROR
from llm.errors import LLMCallError
from llm.settings import LLMSettings

if TYPE_CHECKING:
    import openai  # imported where a client is made: a run without an LLM never loads it

log = logging.getLogger(__name__)

KEYLESS_API_KEY = "no-key"
"""Sent to endpoints that need no key (llama.cpp, Ollama, vLLM): the SDK insists on one."""
ERROR_CHARS = 300


RESPONSE_FORMAT_KINDS = ("json_schema", "json_object", "prompt")
"""How to ask for JSON, best first; an endpoint that rejects one is asked with the next.
``json_schema`` is OpenAI's structured output (vLLM, Ollama, gateways); ``json_object`` with a
``schema`` is llama-cpp-python's dialect (it answers ``json_schema`` with a 500 validation error)
and decodes under a grammar; ``prompt`` sends no ``response_format`` (the JSON is described in
the prompt, which every caller does anyway)."""
PROMPT_ONLY = len(RESPONSE_FORMAT_KINDS) - 1


def response_format(
    level: int, name: str, schema: dict[str, Any], grammar_schema: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The ``response_format`` of ``RESPONSE_FORMAT_KINDS[level]`` for a reply that follows
    ``schema``; ``grammar_schema`` may add bounds (maxLength...) for grammar decoding that
    OpenAI's strict mode would reject."""
    kind = RESPONSE_FORMAT_KINDS[level]
    if kind == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": name, "strict": True, "schema": schema},
        }
    if kind == "json_object":
        return {"type": "json_object", "schema": grammar_schema or schema}
    return None


@dataclass
class _FormatState:
    level: int = 0
    """Index into ``RESPONSE_FORMAT_KINDS`` of the best format the endpoint may take."""
    settled: bool = False
    """True once a request at ``level`` went through: later errors are not about the format."""


_formats: dict[str, _FormatState] = {}
_formats_lock = threading.Lock()
"""Per endpoint (base URL + model), for the life of the process: each endpoint is found out
once, not once per run."""


def forget_response_formats(address: str) -> None:
    """Forget what was found out about the response formats of the endpoints at ``address``
    (``host:port``): another server now listens there, which may take other formats."""
    with _formats_lock:
        for key in [k for k in _formats if urlsplit(k.split("|", 1)[0]).netloc == address]:
            del _formats[key]


@dataclass(frozen=True)
class Completion:
    content: str
    refusal: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    retries: int
    latency_s: float


class FormatRejectedError(LLMCallError):
    """The endpoint rejected the request's ``response_format``: ask with the next one."""


class ChatClient:
    """A thin, thread-safe wrapper of ``openai.OpenAI`` for chat completions."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        import openai

        self._client = openai.OpenAI(
            base_url=settings.endpoint,
            api_key=settings.api_key or KEYLESS_API_KEY,
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
        )

    @property
    def _endpoint_key(self) -> str:
        return f"{self.settings.public_base_url}|{self.settings.model}"

    def response_format_level(self) -> tuple[int, bool]:
        """``(level, settled)``: the ``RESPONSE_FORMAT_KINDS`` index to use here now."""
        if not self.settings.structured_output:
            return PROMPT_ONLY, True
        with _formats_lock:
            state = _formats.setdefault(self._endpoint_key, _FormatState())
            return state.level, state.settled

    def settle_response_format(self, level: int) -> None:
        """A request at ``level`` went through: use it from now on (the first success wins)."""
        with _formats_lock:
            state = _formats.setdefault(self._endpoint_key, _FormatState())
            if state.settled:
                return
            state.level, state.settled = level, True
        if level > 0:
            log.info("%s: asking for JSON by %s", self._endpoint_key, RESPONSE_FORMAT_KINDS[level])

    def complete(self, body: dict[str, Any], *, format_settled: bool | None = None) -> Completion:
        """``_complete``, with the API key cut out of any error message: a proxy or server that
        echoes the Authorization header must not put the key into stored errors and logs
        (issue 7)."""
        try:
            return self._complete(body, format_settled=format_settled)
        except LLMCallError as err:
            key = self.settings.api_key
            if key and any(key in str(arg) for arg in err.args):
                err.args = tuple(str(arg).replace(key, "[API key]") for arg in err.args)
            raise

    def _complete(self, body: dict[str, Any], *, format_settled: bool | None = None) -> Completion:
        """One chat completion for ``body`` (model, messages, parameters).

        Until the endpoint's format is settled (``None``: as this client knows it), a 400/422
        to a request with ``response_format`` (or any error naming it, as llama.cpp's 500 does)
        raises ``FormatRejectedError``.
        """
        import openai

        if format_settled is None:
            format_settled = self.response_format_level()[1]
        start = time.perf_counter()
        try:
            raw = self._client.chat.completions.with_raw_response.create(**body)
            completion = raw.parse()
        except openai.APITimeoutError as err:
            raise LLMCallError(
                f"no reply within {self.settings.timeout_s:g} s "
                f"(tried {self.settings.max_retries + 1} times)",
                STATUS_ERROR,
                retries=self.settings.max_retries,
            ) from err
        except openai.APIConnectionError as err:
            raise LLMCallError(
                f"cannot reach {self.settings.public_base_url} "
                f"(tried {self.settings.max_retries + 1} times): {short_error(err)}",
                STATUS_ERROR,
                retries=self.settings.max_retries,
            ) from err
        except openai.APIStatusError as err:
            # The SDK retried a retryable status max_retries times before raising (it gives up
            # earlier only for a Retry-After over two minutes or an x-should-retry: false).
            retries = self.settings.max_retries if retryable_status(err) else 0
            retried = f" (tried {retries + 1} times)" if retries else ""
            message = f"HTTP {err.status_code}{retried}: {short_error(err)}"
            if not format_settled and "response_format" in body and rejects_format(err):
                raise FormatRejectedError(message, STATUS_ERROR, retries=retries) from err
            raise LLMCallError(message, STATUS_ERROR, retries=retries) from err
        except (openai.APIError, ValueError) as err:
            # A 200 whose body is not a chat completion: not JSON (JSONDecodeError, a
            # ValueError), or JSON of another shape (APIResponseValidationError).
            raise LLMCallError(f"unusable response: {short_error(err)}", STATUS_ERROR) from err
        latency = time.perf_counter() - start
        if not getattr(completion, "choices", None):
            raise LLMCallError("the response has no choices", STATUS_ERROR)
        choice = completion.choices[0]
        message = choice.message
        usage = completion.usage
        return Completion(
            content=message.content or "",
            refusal=getattr(message, "refusal", None) or "",
            finish_reason=choice.finish_reason or "",
            prompt_tokens=int(usage.prompt_tokens or 0) if usage else 0,
            completion_tokens=int(usage.completion_tokens or 0) if usage else 0,
            retries=int(getattr(raw, "retries_taken", 0) or 0),
            latency_s=latency,
        )

    def close(self) -> None:
        self._client.close()


def rejects_format(err: openai.APIStatusError) -> bool:
    """Whether an error to a request with ``response_format`` is most likely about it."""
    text = short_error(err).lower()
    return err.status_code in (400, 422) or "response_format" in text or "json_schema" in text


def retryable_status(err: openai.APIStatusError) -> bool:
    """The statuses the SDK retries (its ``_should_retry``), less server overrides."""
    return err.status_code in (408, 409, 429) or err.status_code >= 500


def short_error(err: BaseException) -> str:
    """The server's error message in one short line."""
    body = getattr(err, "body", None)
    text = ""
    if isinstance(body, dict):
        inner = body.get("error", body)
        text = str(inner.get("message", "") if isinstance(inner, dict) else inner)
    text = text or str(err) or type(err).__name__
    text = " ".join(text.split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"
