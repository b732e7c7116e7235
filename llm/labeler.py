"""Names and explanations for clusters from any OpenAI-compatible chat endpoint.

For each cluster: ask (from the store if this exact call was answered before), validate the
JSON reply, ask once more with the validation error if it is unusable, and otherwise fall back
to the keyword label with status ``llm_failed`` and the error. ``label`` never raises for a
fault of the model or the endpoint, and one failed cluster never costs the others their labels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clustering.labels import keyword_label
from clustering.types import ClusterLabel, ClusterSummary
from llm.cache import STATUS_INVALID, CallStore
from llm.client import response_format
from llm.errors import LLMCallError
from llm.exchange import LLMExchange
from llm.prompts import (
    LABEL_GRAMMAR_SCHEMA,
    LABEL_SCHEMA,
    LABEL_SCHEMA_NAME,
    PROMPT_VERSION,
    label_messages,
    repair_messages,
)
from llm.reply import parse_label_reply
from llm.settings import LLMSettings

log = logging.getLogger(__name__)

FAILED_STATUS = "llm_failed"
"""``ClusterLabel.status`` of a cluster whose LLM answer was unusable (the keyword label)."""


def _label_format(level: int) -> dict[str, Any] | None:
    return response_format(level, LABEL_SCHEMA_NAME, LABEL_SCHEMA, LABEL_GRAMMAR_SCHEMA)


class LLMLabeler(LLMExchange):
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
        super().__init__(settings, prompt_version=PROMPT_VERSION, store=store, run_id=run_id)

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

    def usage_dict(self) -> dict[str, Any]:
        return self.usage.to_dict()

    # One cluster ---------------------------------------------------------------------------

    def _label_one(self, summary: ClusterSummary) -> ClusterLabel:
        messages, examples = label_messages(summary)

        def parse(text: str) -> ClusterLabel:
            return parse_label_reply(text, summary.cluster_id, len(examples), labeler=self.name)

        try:
            label, reply, first = self.exchange(messages, parse, _label_format)
            if label is not None:
                return label
            with self.usage.lock:
                self.usage.repairs += 1
            repaired = repair_messages(messages, reply, first)
            label, _, second = self.exchange(repaired, parse, _label_format)
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
