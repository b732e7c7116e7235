"""Ask an LLM for one JSON object, within a call budget, through the same client, call store
and usage totals as the labeler.

The goal-driven modes (``llm.goal``, ``llm.classify``, ``llm.granularity``) ask many small
questions; each goes through ``JSONAsker.ask``: answered from the store when this exact call
succeeded before (free: no budget spent), otherwise sent once, and sent once more with the
validation error when the reply is unusable. A call the budget cannot pay for is not sent and
the answer is ``None``; so is an answer that stays unusable. Callers fall back to embeddings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

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
from llm.client import PROMPT_ONLY, ChatClient, Completion, FormatRejectedError, response_format
from llm.errors import LLMCallError, LLMConfigError
from llm.reply import ReplyError, find_json_object
from llm.settings import ENV_API_KEY, ENV_BASE_URL, LLMSettings
from llm.usage import MAX_ERRORS, LLMUsage

log = logging.getLogger(__name__)

T = TypeVar("T")
Parse = Callable[[Any], T]
"""Turns the decoded JSON value into an answer, or raises ``ReplyError`` with a short reason."""

REPAIR_PROMPT = (
    "That reply cannot be used: {error}. Reply again with only the JSON object asked for."
)


@dataclass
class CallBudget:
    """At most ``max_calls`` chat completions (``None``: no limit); thread-safe."""

    max_calls: int | None = None
    used: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def take(self) -> bool:
        with self.lock:
            if self.max_calls is not None and self.used >= self.max_calls:
                return False
            self.used += 1
            return True

    @property
    def left(self) -> int | None:
        with self.lock:
            return None if self.max_calls is None else max(0, self.max_calls - self.used)

    def to_dict(self) -> dict[str, Any]:
        return {"max_calls": self.max_calls, "used": self.used}


@dataclass(frozen=True)
class Question:
    """One request: chat messages, the JSON schema the reply should follow, and its name."""

    messages: list[dict[str, str]]
    schema: dict[str, Any] | None = None
    name: str = "answer"


class JSONAsker:
    """Asks for JSON answers; see the module docstring. ``usage`` is shared by all its calls."""

    def __init__(
        self,
        settings: LLMSettings,
        *,
        prompt_version: str,
        store: CallStore | None = None,
        run_id: int | None = None,
        budget: CallBudget | None = None,
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
        self.budget = budget or CallBudget()
        self.usage = LLMUsage(model=settings.model, priced=settings.price_of() is not None)
        self.over_budget = 0
        """Questions not sent because the budget was spent."""
        self.unanswered = 0
        """Questions whose call failed or whose reply stayed unusable."""
        self._client = ChatClient(settings)
        self._store_lock = threading.Lock()

    def usage_dict(self) -> dict[str, Any]:
        """``LLMUsage.to_dict`` plus the budget and what it left unasked."""
        data = self.usage.to_dict()
        data.update(
            budget=self.budget.to_dict(), over_budget=self.over_budget, unanswered=self.unanswered
        )
        return data

    def close(self) -> None:
        self._client.close()

    def ask(self, question: Question, parse: Parse[T]) -> T | None:
        """The parsed answer, or ``None`` (budget spent, call failed, reply unusable twice)."""
        start = time.perf_counter()
        try:
            answer, reply, error = self._exchange(question.messages, question, parse)
            if answer is not None or not reply:
                return answer
            with self.usage.lock:
                self.usage.repairs += 1
            messages = [
                *question.messages,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": REPAIR_PROMPT.format(error=error)},
            ]
            answer, _, second = self._exchange(messages, question, parse)
            if answer is None and second:
                raise LLMCallError(f"invalid reply twice: {error}; then {second}", STATUS_INVALID)
            return answer
        except LLMCallError as err:
            log.warning("%s: LLM call failed (%s)", question.name, err)
            with self.usage.lock:
                self.unanswered += 1
                if len(self.usage.errors) < MAX_ERRORS:
                    self.usage.errors.append(f"{question.name}: {err}")
            return None
        finally:
            with self.usage.lock:
                self.usage.seconds += time.perf_counter() - start
                self.usage.cost_usd = self.settings.cost_usd(
                    self.usage.prompt_tokens, self.usage.completion_tokens
                )

    def ask_many(
        self, questions: Sequence[Question], parse: Parse[T] | Sequence[Parse[T]]
    ) -> list[T | None]:
        """``ask`` for each question (one parser for all, or one each), ``settings.max_in_flight``
        at a time; answers in order."""
        if not questions:
            return []
        parsers = list(parse) if isinstance(parse, Sequence) else [parse] * len(questions)
        workers = min(self.settings.max_in_flight, len(questions))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-ask") as pool:
            return list(pool.map(self.ask, questions, parsers))

    # One exchange ------------------------------------------------------------------------

    def _exchange(
        self, messages: list[dict[str, str]], question: Question, parse: Parse[T]
    ) -> tuple[T | None, str, str]:
        """``(answer, "", "")``; ``(None, reply, why)`` for an invalid reply; ``(None, "", "")``
        when the budget is spent. Raises ``LLMCallError`` when there is nothing to repair."""
        level, settled = self._client.response_format_level()
        if question.schema is None:
            level, settled = PROMPT_ONLY, True
        while True:
            cached = self._cached(messages, question, level, parse)
            if cached is not None:
                return cached, "", ""
            body = self._body(messages, question, level)
            key = cache_key(self.prompt_version, body)
            if not self.budget.take():
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
            self.usage.count_call(completion, failed=status != STATUS_OK, retries=completion.retries)
            self._record(key, body, completion, status, error)
            if status in (STATUS_REFUSED, STATUS_EMPTY):
                raise LLMCallError(error, status)
            return answer, completion.content, error

    def _body(
        self, messages: list[dict[str, str]], question: Question, level: int
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.settings.temperature}
        if self.settings.max_tokens is not None:
            params["max_tokens"] = self.settings.max_tokens
        if question.schema is not None:
            kind = response_format(level, question.name, question.schema)
            if kind is not None:
                params["response_format"] = kind
        return request_body(self.settings.model, messages, params)

    def _cached(
        self, messages: list[dict[str, str]], question: Question, level: int, parse: Parse[T]
    ) -> T | None:
        """A stored valid answer at this format level or a later one (as the labeler does)."""
        if self.store is None:
            return None
        for candidate in range(level, PROMPT_ONLY + 1):
            key = cache_key(self.prompt_version, self._body(messages, question, candidate))
            with self._store_lock:
                found = self.store.find_llm_call(key)
            if found is None or getattr(found, "status", STATUS_OK) != STATUS_OK:
                continue
            try:
                answer = parse(find_json_object(found.response))
            except ReplyError:
                continue
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


def judge(completion: Completion, parse: Parse[T]) -> tuple[str, T | None, str]:
    if completion.refusal or completion.finish_reason == "content_filter":
        reason = completion.refusal or "the reply was filtered (finish_reason content_filter)"
        return STATUS_REFUSED, None, f"the model refused: {reason}"
    if not completion.content.strip():
        return STATUS_EMPTY, None, f"empty reply (finish_reason {completion.finish_reason!r})"
    try:
        return STATUS_OK, parse(find_json_object(completion.content)), ""
    except ReplyError as err:
        cut = " (cut at max_tokens)" if completion.finish_reason == "length" else ""
        return STATUS_INVALID, None, f"{err}{cut}"
