"""Every LLM call is stored, and an identical call is answered from the store.

The labeler talks to any object with the two methods of ``CallStore``; ``storage.Store``
implements them on SQL. A call's key is the sha256 of everything that decides its answer
(model, prompt version, messages and sampling parameters) and nothing else: the endpoint and the
API key are not in it, and the stored request never holds the key (it is a header, never part
of the body we record).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from llm.client import Completion
    from llm.settings import LLMSettings

STATUS_OK = "ok"
"""A call whose reply gave a valid label: the only status ``find_llm_call`` returns."""
STATUS_INVALID = "invalid"
"""The reply was not a valid label (not JSON, wrong keys, a placeholder name...)."""
STATUS_EMPTY = "empty"
STATUS_REFUSED = "refused"
STATUS_ERROR = "error"
"""No reply: HTTP error after retries, time-out, refused connection."""
CALL_STATUSES = (STATUS_OK, STATUS_INVALID, STATUS_EMPTY, STATUS_REFUSED, STATUS_ERROR)


@runtime_checkable
class CallStore(Protocol):
    """Where calls are kept. The labeler calls it from its worker threads, one call at a time
    (it holds a lock around every store call)."""

    def find_llm_call(self, cache_key: str) -> Any | None:
        """The stored successful call (status ``ok``) with this key, or ``None``.

        The object has ``.response`` (the model's text), ``.prompt_tokens``,
        ``.completion_tokens`` and ``.status``.
        """
        ...

    def add_llm_call(
        self,
        *,
        cache_key: str,
        model: str,
        base_url: str,
        request: str,
        response: str,
        prompt_tokens: int,
        completion_tokens: int,
        latency_s: float,
        status: str,
        error: str = "",
        run_id: int | None = None,
    ) -> int:
        """Store one call (any status, one of ``CALL_STATUSES``); returns its id."""
        ...


def request_body(
    model: str, messages: list[dict[str, str]], params: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON body of a chat completion, as sent (less transport details) and as stored."""
    return {"model": model, "messages": messages, **params}


def cache_key(prompt_version: str, body: Mapping[str, Any]) -> str:
    """sha256 of the prompt version and the request body (model, messages, parameters)."""
    canonical = json.dumps(
        {"prompt_version": prompt_version, "request": body},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def record_call(
    store: CallStore,
    settings: LLMSettings,
    run_id: int | None,
    key: str,
    body: dict[str, Any],
    completion: Completion | None,
    status: str,
    error: str,
) -> None:
    """Store one call: its request body (never the key), the reply, tokens, latency, status."""
    response = ""
    if completion is not None:
        response = completion.refusal if status == STATUS_REFUSED else completion.content
    store.add_llm_call(
        cache_key=key,
        model=settings.model,
        base_url=settings.public_base_url,
        request=json.dumps(body, ensure_ascii=False),
        response=response,
        prompt_tokens=completion.prompt_tokens if completion else 0,
        completion_tokens=completion.completion_tokens if completion else 0,
        latency_s=completion.latency_s if completion else 0.0,
        status=status,
        error=error,
        run_id=run_id,
    )
