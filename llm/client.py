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
from typing import Any

import openai

from llm.cache import STATUS_ERROR
from llm.errors import LLMCallError
from llm.settings import LLMSettings

log = logging.getLogger(__name__)

KEYLESS_API_KEY = "no-key"
"""Sent to endpoints that need no key (llama.cpp, Ollama, vLLM): the SDK insists on one."""
ERROR_CHARS = 300

_schema_rejected: set[str] = set()
_schema_lock = threading.Lock()
"""Endpoints (base URL + model) that answered a ``response_format`` with HTTP 400: they are
asked for JSON in the prompt only, for the rest of the process."""


@dataclass(frozen=True)
class Completion:
    content: str
    refusal: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    retries: int
    latency_s: float


class SchemaRejectedError(LLMCallError):
    """HTTP 400 to a request with ``response_format``: ask again without it."""


class ChatClient:
    """A thin, thread-safe wrapper of ``openai.OpenAI`` for chat completions."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._client = openai.OpenAI(
            base_url=settings.endpoint,
            api_key=settings.api_key or KEYLESS_API_KEY,
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
        )

    @property
    def _endpoint_key(self) -> str:
        return f"{self.settings.public_base_url}|{self.settings.model}"

    @property
    def takes_schema(self) -> bool:
        """False once this endpoint has rejected a ``response_format`` in this process."""
        if not self.settings.structured_output:
            return False
        with _schema_lock:
            return self._endpoint_key not in _schema_rejected

    def reject_schema(self) -> None:
        with _schema_lock:
            if self._endpoint_key not in _schema_rejected:
                log.info(
                    "%s rejects response_format: asking for JSON in the prompt only",
                    self._endpoint_key,
                )
            _schema_rejected.add(self._endpoint_key)

    def complete(self, body: dict[str, Any]) -> Completion:
        """One chat completion for ``body`` (model, messages, parameters)."""
        start = time.perf_counter()
        try:
            raw = self._client.chat.completions.with_raw_response.create(**body)
            completion = raw.parse()
        except openai.BadRequestError as err:
            message = f"HTTP 400: {short_error(err)}"
            if "response_format" in body:
                raise SchemaRejectedError(message, STATUS_ERROR) from err
            raise LLMCallError(message, STATUS_ERROR) from err
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
            raise LLMCallError(
                f"HTTP {err.status_code}{retried}: {short_error(err)}",
                STATUS_ERROR,
                retries=retries,
            ) from err
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
