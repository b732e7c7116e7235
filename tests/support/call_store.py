"""An in-memory ``llm.CallStore``, for tests of the labeler that are not about storage."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredCall:
    id: int
    cache_key: str
    model: str
    base_url: str
    request: str
    response: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    status: str
    error: str
    run_id: int | None


class InMemoryCallStore:
    def __init__(self) -> None:
        self.calls: list[StoredCall] = []
        self._lock = threading.Lock()

    def find_llm_call(self, cache_key: str) -> StoredCall | None:
        with self._lock:
            for call in reversed(self.calls):
                if call.cache_key == cache_key and call.status == "ok":
                    return call
        return None

    def add_llm_call(self, **values: object) -> int:
        with self._lock:
            call = StoredCall(id=len(self.calls) + 1, **values)  # type: ignore[arg-type]
            self.calls.append(call)
            return call.id
