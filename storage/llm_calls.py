"""How ``Store`` records LLM calls and answers an identical call from them."""

from __future__ import annotations

from sqlalchemy import select

from storage.access import guarded, workspace_wide
from storage.models import (
    LLMCallRow,
)
from storage.records import (
    LLMCallRecord,
    _llm_record,
)
from storage.session import StoreBase


class LLMCallStore(StoreBase):
    """``Store``'s methods for LLM calls."""

    # --- LLM calls -------------------------------------------------------------------------

    @workspace_wide("read")
    def find_llm_call(self, cache_key: str) -> LLMCallRecord | None:
        """The latest successful call with this key, for answering an identical call."""
        with self._tx() as session:
            query = select(LLMCallRow).where(
                LLMCallRow.cache_key == cache_key, LLMCallRow.status == "ok"
            )
            # A reply is reused only within the workspace whose texts it was about.
            query = self._in_workspace(query, LLMCallRow.workspace_id)
            row = session.scalars(query.order_by(LLMCallRow.id.desc()).limit(1)).first()
            return _llm_record(row) if row else None

    @guarded("edit")
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
        with self._tx() as session:
            row = LLMCallRow(
                workspace_id=self.workspace_id,
                cache_key=cache_key,
                run_id=run_id,
                model=model,
                base_url=base_url,
                request=request,
                response=response,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_s=latency_s,
                status=status,
                error=error,
            )
            session.add(row)
            session.flush()
            return row.id

    @guarded("read")
    def list_llm_calls(self, run_id: int | None = None) -> list[LLMCallRecord]:
        with self._tx() as session:
            query = select(LLMCallRow).order_by(LLMCallRow.id)
            if run_id is not None:
                query = query.where(LLMCallRow.run_id == run_id)  # its workspace: guarded
            else:
                query = self._in_workspace(query, LLMCallRow.workspace_id)
            return [_llm_record(r) for r in session.scalars(query).all()]
