"""What labeling cost: calls, cache hits, failures, retries, tokens, seconds and dollars."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm.client import Completion

MAX_ERRORS = 50
"""Error texts kept per run (the first ones); every failed cluster is still counted."""


@dataclass
class LLMUsage:
    """Running totals of one labeler; updated from its worker threads under ``lock``.

    ``calls`` counts chat completions sent (each stored as one call row), including repair
    calls and calls that failed; ``retries`` counts requests the SDK sent again inside a call
    (429/5xx/time-outs); ``failures`` counts calls whose answer was unusable (error, time-out,
    refusal, empty or invalid reply); ``failed_clusters`` are the clusters that got the keyword
    label instead. Tokens and cost are of calls actually sent, never of cache hits.
    """

    model: str = ""
    calls: int = 0
    cache_hits: int = 0
    failures: int = 0
    retries: int = 0
    repairs: int = 0
    """Calls that asked again after an invalid reply."""
    schema_fallbacks: int = 0
    """Calls sent again with a simpler ``response_format`` after the endpoint rejected one."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cost_usd: float = 0.0
    priced: bool = True
    """False when the model is not in the price table (its cost shows as 0)."""
    clusters: int = 0
    failed_clusters: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_call(self, completion: Completion | None, *, failed: bool, retries: int) -> None:
        """One chat completion sent (``completion`` is None when no reply came)."""
        with self.lock:
            self.calls += 1
            self.retries += retries
            self.failures += int(failed)
            if completion is not None:
                self.prompt_tokens += completion.prompt_tokens
                self.completion_tokens += completion.completion_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def failed_share(self) -> float:
        return len(self.failed_clusters) / self.clusters if self.clusters else 0.0

    def add_error(self, cluster_id: int, error: str) -> None:
        self.failed_clusters.append(cluster_id)
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"cluster {cluster_id}: {error}")

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it would deep-copy the lock.
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "lock"}
        data["errors"] = list(self.errors)
        data["failed_clusters"] = sorted(self.failed_clusters)
        data["total_tokens"] = self.total_tokens
        data["failed_share"] = round(self.failed_share, 4)
        data["seconds"] = round(self.seconds, 3)
        data["cost_usd"] = round(self.cost_usd, 6)
        return data
