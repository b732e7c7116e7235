"""One exchange with the LLM, shared by the labeler (``llm.labeler``) and the goal-driven asker
(``llm.asker``): the client, the call store, the usage totals, the response-format ladder and
the record of every call live here once.

``LLMExchange.exchange(messages, parse, formats)`` answers from the store when this exact call
succeeded before (any format level from the endpoint's current one down), else sends it (within
``budget`` when one is given), steps down the format ladder when the endpoint rejects a format,
and returns ``(answer, "", "")``, ``(None, reply, why)`` for a reply ``parse`` rejects (the
caller repairs it once), or ``(None, "", "")`` when the budget is spent. A refusal, an empty
reply or a failed call raises ``LLMCallError``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from llm.cache import (
    STATUS_EMPTY,
    STATUS_ERROR,
    STATUS_INVALID,
    STATUS_OK,
    STATUS_REFUSED,
    CallStore,
    cache_key,
    record_call,
    request_body,
)
from llm.client import PROMPT_ONLY, ChatClient, Completion, FormatRejectedError
from llm.errors import LLMCallError, LLMConfigError
from llm.reply import ReplyError
from llm.settings import ENV_API_KEY, ENV_BASE_URL, LLMSettings
from llm.usage import LLMUsage

T = TypeVar("T")
ParseText = Callable[[str], T]
"""Turns a reply's text into an answer, or raises ``ReplyError`` with a short reason."""
Formats = Callable[[int], dict[str, Any] | None]
"""The ``response_format`` to send at a level of the format ladder (``None``: prompt only)."""


class Budget(Protocol):
    def take(self) -> bool: ...


class LLMExchange:
    """The client, store and usage of one asker or labeler; see the module docstring."""

    def __init__(
        self,
        settings: LLMSettings,
        *,
        prompt_version: str,
        store: CallStore | None = None,
        run_id: int | None = None,
    ) -> None:
        settings.validate()
        if not settings.configured:
            raise LLMConfigError(
                f"no LLM endpoint: set {ENV_BASE_URL} (any OpenAI-compatible server, e.g. "
                f"`corpusmap llm serve` for the local model) or {ENV_API_KEY}"
            )
        self.settings = settings
        self.prompt_version = prompt_version
        self.store = store
        self.run_id = run_id
        self.usage = LLMUsage(model=settings.model, priced=settings.price_of() is not None)
        self.over_budget = 0
        """Questions not sent because the budget was spent."""
        self._client = ChatClient(settings)
        self._store_lock = threading.Lock()

    def bind_run(self, run_id: int) -> None:
        """Record the calls from now on against ``run_id``."""
        self.run_id = run_id

    def close(self) -> None:
        self._client.close()

    def add_seconds(self, seconds: float) -> None:
        with self.usage.lock:
            self.usage.seconds += seconds
            self.usage.cost_usd = self.settings.cost_usd(
                self.usage.prompt_tokens, self.usage.completion_tokens
            )

    def exchange(
        self,
        messages: list[dict[str, str]],
        parse: ParseText[T],
        formats: Formats | None,
        budget: Budget | None = None,
    ) -> tuple[T | None, str, str]:
        """Ask once (see the module docstring); ``formats=None`` sends the prompt only."""
        level, settled = self._client.response_format_level()
        if formats is None:
            level, settled = PROMPT_ONLY, True
        while True:
            cached = self._cached(messages, level, parse, formats)
            if cached is not None:
                return cached, "", ""
            body = self._body(messages, level, formats)
            key = cache_key(self.prompt_version, body)
            if budget is not None and not budget.take():
                with self.usage.lock:
                    self.over_budget += 1
                return None, "", ""
            try:
                completion = self._client.complete(body, format_settled=settled)
            except FormatRejectedError as err:
                self.usage.count_call(None, failed=True, retries=err.retries)
                self._record(key, body, None, STATUS_ERROR, str(err))
                with self.usage.lock:
                    self.usage.schema_fallbacks += 1
                level = min(level + 1, PROMPT_ONLY)
                continue
            except LLMCallError as err:
                self.usage.count_call(None, failed=True, retries=err.retries)
                self._record(key, body, None, err.status, str(err))
                raise
            if not settled:
                self._client.settle_response_format(level)
                settled = True
            status, answer, error = judge(completion, parse)
            self.usage.count_call(
                completion, failed=status != STATUS_OK, retries=completion.retries
            )
            self._record(key, body, completion, status, error)
            if status in (STATUS_REFUSED, STATUS_EMPTY):
                raise LLMCallError(error, status)
            return answer, completion.content, error

    def _body(
        self, messages: list[dict[str, str]], level: int, formats: Formats | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.settings.temperature}
        if self.settings.max_tokens is not None:
            params["max_tokens"] = self.settings.max_tokens
        kind = formats(level) if formats is not None else None
        if kind is not None:
            params["response_format"] = kind
        return request_body(self.settings.model, messages, params)

    def _cached(
        self,
        messages: list[dict[str, str]],
        level: int,
        parse: ParseText[T],
        formats: Formats | None,
    ) -> T | None:
        """A stored valid answer to these messages, at this format level or a later one (so a
        new process finds answers before it has found out the endpoint's format again)."""
        if self.store is None:
            return None
        for candidate in range(level, PROMPT_ONLY + 1):
            key = cache_key(self.prompt_version, self._body(messages, candidate, formats))
            with self._store_lock:
                found = self.store.find_llm_call(key)
            if found is None or getattr(found, "status", STATUS_OK) != STATUS_OK:
                continue
            try:
                answer = parse(found.response)
            except ReplyError:
                continue  # stored under a laxer validation than today's: ask again
            with self.usage.lock:
                self.usage.cache_hits += 1
            return answer
        return None

    def _record(
        self, key: str, body: dict[str, Any], completion: Completion | None, status: str, error: str
    ) -> None:
        if self.store is None:
            return
        with self._store_lock:
            record_call(
                self.store, self.settings, self.run_id, key, body, completion, status, error
            )


def judge(completion: Completion, parse: ParseText[T]) -> tuple[str, T | None, str]:
    """The reply's status, answer and reason: refused, empty, invalid or ok."""
    if completion.refusal or completion.finish_reason == "content_filter":
        reason = completion.refusal or "the reply was filtered (finish_reason content_filter)"
        return STATUS_REFUSED, None, f"the model refused: {reason}"
    if not completion.content.strip():
        return STATUS_EMPTY, None, f"empty reply (finish_reason {completion.finish_reason!r})"
    try:
        return STATUS_OK, parse(completion.content), ""
    except ReplyError as err:
        cut = " (cut at max_tokens)" if completion.finish_reason == "length" else ""
        return STATUS_INVALID, None, f"{err}{cut}"
