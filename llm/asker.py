"""Ask an LLM for one JSON object, within a call budget, through the same exchange (client, call
store, usage totals, format ladder: ``llm.exchange``) as the labeler.

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

from llm.cache import STATUS_INVALID, CallStore
from llm.client import response_format
from llm.errors import LLMCallError
from llm.exchange import LLMExchange
from llm.reply import find_json_object
from llm.settings import LLMSettings
from llm.usage import MAX_ERRORS

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


class JSONAsker(LLMExchange):
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
        super().__init__(settings, prompt_version=prompt_version, store=store, run_id=run_id)
        self.budget = budget or CallBudget()
        self.unanswered = 0
        """Questions whose call failed or whose reply stayed unusable."""

    def usage_dict(self) -> dict[str, Any]:
        """``LLMUsage.to_dict`` plus the budget and what it left unasked."""
        data = self.usage.to_dict()
        data.update(
            budget=self.budget.to_dict(), over_budget=self.over_budget, unanswered=self.unanswered
        )
        return data

    def ask(self, question: Question, parse: Parse[T]) -> T | None:
        """The parsed answer, or ``None`` (budget spent, call failed, reply unusable twice)."""
        start = time.perf_counter()

        def parse_text(text: str) -> T:
            return parse(find_json_object(text))

        formats = None
        if question.schema is not None:
            schema = question.schema

            def formats(level: int) -> dict[str, Any] | None:
                return response_format(level, question.name, schema)

        try:
            answer, reply, error = self.exchange(
                question.messages, parse_text, formats, self.budget
            )
            if answer is not None or not reply:
                return answer
            with self.usage.lock:
                self.usage.repairs += 1
            messages = [
                *question.messages,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": REPAIR_PROMPT.format(error=error)},
            ]
            answer, _, second = self.exchange(messages, parse_text, formats, self.budget)
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
            self.add_seconds(time.perf_counter() - start)

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
