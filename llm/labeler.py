"""Names and explanations for clusters from any OpenAI-compatible chat endpoint.

For each cluster: ask (from the store if this exact call was answered before), validate the
JSON reply, ask once more with the validation error if it is unusable, and otherwise fall back
to the keyword label with status ``llm_failed`` and the error. ``label`` never raises for a
fault of the model or the endpoint, and one failed cluster never costs the others their labels.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clustering.labels import keyword_label
from clustering.types import ClusterLabel, ClusterSummary
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
from llm.prompts import (
    LABEL_GRAMMAR_SCHEMA,
    LABEL_SCHEMA,
    LABEL_SCHEMA_NAME,
    PROMPT_VERSION,
    label_messages,
    repair_messages,
)
from llm.reply import ReplyError, parse_label_reply
from llm.settings import ENV_API_KEY, ENV_BASE_URL, LLMSettings
from llm.usage import LLMUsage

log = logging.getLogger(__name__)

FAILED_STATUS = "llm_failed"
"""``ClusterLabel.status`` of a cluster whose LLM answer was unusable (the keyword label)."""

Parse = Callable[[str], ClusterLabel]


class LLMLabeler:
    """A ``clustering.types.Labeler`` that asks an LLM; see the module docstring.

    ``store`` keeps every call and answers repeated ones; ``run_id`` is stored with each call.
    ``usage`` accumulates over every ``label`` call of this labeler (a run's hierarchy and
    relabels included).
    """

    name = "llm"

    def __init__(
        self,
        settings: LLMSettings,
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
        self.store = store
        self.run_id = run_id
        self.prompt_version = PROMPT_VERSION
        self.usage = LLMUsage(model=settings.model, priced=settings.price_of() is not None)
        self._client = ChatClient(settings)
        self._store_lock = threading.Lock()

    def label(self, summaries: Sequence[ClusterSummary]) -> list[ClusterLabel]:
        """One label per summary, in order; LLM faults fall back per cluster."""
        summaries = list(summaries)
        if not summaries:
            return []
        start = time.perf_counter()
        workers = min(self.settings.max_in_flight, len(summaries))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-label") as pool:
            labels = list(pool.map(self._label_one, summaries))
        seconds = time.perf_counter() - start
        with self.usage.lock:
            self.usage.seconds += seconds
            self.usage.clusters += len(summaries)
            self.usage.cost_usd = self.settings.cost_usd(
                self.usage.prompt_tokens, self.usage.completion_tokens
            )
        failed = sum(1 for lab in labels if lab.status == FAILED_STATUS)
        log.info(
            "labelled %d clusters with %s in %.1f s: %d failed, %d calls, %d cache hits",
            len(labels),
            self.settings.model,
            seconds,
            failed,
            self.usage.calls,
            self.usage.cache_hits,
        )
        return labels

    def bind_run(self, run_id: int) -> None:
        """Record the calls from now on against ``run_id``."""
        self.run_id = run_id

    def usage_dict(self) -> dict[str, Any]:
        return self.usage.to_dict()

    def close(self) -> None:
        self._client.close()

    # One cluster ---------------------------------------------------------------------------

    def _label_one(self, summary: ClusterSummary) -> ClusterLabel:
        messages, examples = label_messages(summary)

        def parse(text: str) -> ClusterLabel:
            return parse_label_reply(text, summary.cluster_id, len(examples), labeler=self.name)

        try:
            label, reply, first = self._exchange(messages, parse)
            if label is not None:
                return label
            with self.usage.lock:
                self.usage.repairs += 1
            label, _, second = self._exchange(repair_messages(messages, reply, first), parse)
            if label is not None:
                return label
            why = first if second == first else f"{first}; then {second}"
            raise LLMCallError(f"invalid reply twice: {why}", STATUS_INVALID)
        except LLMCallError as err:
            log.warning(
                "cluster %d: LLM label failed (%s); keeping keywords", summary.cluster_id, err
            )
            with self.usage.lock:
                self.usage.add_error(summary.cluster_id, str(err))
            return keyword_label(summary, status=FAILED_STATUS, error=str(err))

    def _exchange(
        self, messages: list[dict[str, str]], parse: Parse
    ) -> tuple[ClusterLabel | None, str, str]:
        """Ask once: ``(label, "", "")``, or ``(None, reply, why)`` for an invalid reply.

        Raises ``LLMCallError`` when there is no reply to repair (error, refusal, empty).
        """
        level, settled = self._client.response_format_level()
        while True:
            cached = self._cached_label(messages, level, parse)
            if cached is not None:
                return cached, "", ""
            body = self._body(messages, level)
            key = cache_key(self.prompt_version, body)
            try:
                completion = self._client.complete(body, format_settled=settled)
            except FormatRejectedError as err:
                self.usage.count_call(None, failed=True, retries=err.retries)
                self._record(key, body, None, STATUS_ERROR, str(err))
                with self.usage.lock:
                    self.usage.schema_fallbacks += 1
                level += 1
                continue
            except LLMCallError as err:
                self.usage.count_call(None, failed=True, retries=err.retries)
                self._record(key, body, None, err.status, str(err))
                raise
            if not settled:
                self._client.settle_response_format(level)
                settled = True
            status, label, error = self._judge(completion, parse)
            self.usage.count_call(completion, failed=status != STATUS_OK, retries=completion.retries)
            self._record(key, body, completion, status, error)
            if status in (STATUS_REFUSED, STATUS_EMPTY):
                raise LLMCallError(error, status)
            return label, completion.content, error

    def _body(self, messages: list[dict[str, str]], level: int) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.settings.temperature}
        if self.settings.max_tokens is not None:
            params["max_tokens"] = self.settings.max_tokens
        kind = response_format(level, LABEL_SCHEMA_NAME, LABEL_SCHEMA, LABEL_GRAMMAR_SCHEMA)
        if kind is not None:
            params["response_format"] = kind
        return request_body(self.settings.model, messages, params)

    @staticmethod
    def _judge(completion: Completion, parse: Parse) -> tuple[str, ClusterLabel | None, str]:
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

    # Store and usage -----------------------------------------------------------------------

    def _cached_label(
        self, messages: list[dict[str, str]], level: int, parse: Parse
    ) -> ClusterLabel | None:
        """A stored valid answer to these messages, at this format level or a later one (so a
        new process finds answers before it has found out the endpoint's format again)."""
        if self.store is None:
            return None
        for candidate in range(level, PROMPT_ONLY + 1):
            key = cache_key(self.prompt_version, self._body(messages, candidate))
            with self._store_lock:
                found = self.store.find_llm_call(key)
            if found is None or getattr(found, "status", STATUS_OK) != STATUS_OK:
                continue
            try:
                label = parse(found.response)
            except ReplyError as err:
                # Stored under a laxer validation than today's: ask again.
                log.warning("cached call %s no longer validates (%s)", key[:12], err)
                continue
            with self.usage.lock:
                self.usage.cache_hits += 1
            return label
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
