"""The store's engine, its one way to a transaction and its access checks, shared by the parts
of ``Store``."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from sqlalchemy import Engine, Select, select
from sqlalchemy.orm import Session

from storage.access import (
    DEFAULT_WORKSPACE_ID,
    LOCAL_ACTOR,
    Access,
    Need,
    check_declared,
    missing,
)
from storage.models import AuditRow, CorpusRow, RunRow

NOT_ACCESS_CHECKED = frozenset({"open", "close", "scoped"})


class StoreBase:
    """An engine, its URL, short transactions on it, and who is asking (``access``)."""

    access: Access | None = None
    """None: single-user mode, nothing is checked; else every method checks it."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_declared(cls, NOT_ACCESS_CHECKED)

    def close(self) -> None:
        self.engine.dispose()

    def scoped(self, access: Access | None) -> Self:
        """This store acting for ``access`` (same engine); None: single-user mode."""
        clone = copy.copy(self)
        clone.access = access
        return clone

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def workspace_id(self) -> int:
        """The workspace new corpora and LLM calls go to."""
        return self.access.workspace_id if self.access else DEFAULT_WORKSPACE_ID

    @property
    def actor(self) -> str:
        return self.access.username if self.access else LOCAL_ACTOR

    def _in_workspace(self, query: Select[Any], column: Any) -> Select[Any]:
        """``query`` kept to the caller's workspace (``column`` holds the workspace id); as it
        is in single-user mode."""
        if self.access is None:
            return query
        return query.where(column == self.access.workspace_id)

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def _check_access(self, kind: str, object_id: int, need: Need) -> None:
        assert self.access is not None
        with self._tx() as session:
            if kind == "corpus":
                query = select(CorpusRow.workspace_id).where(CorpusRow.id == object_id)
            else:
                query = (
                    select(CorpusRow.workspace_id)
                    .join(RunRow, RunRow.corpus_id == CorpusRow.id)
                    .where(RunRow.id == object_id)
                )
            workspace = session.scalar(query)
        if workspace != self.access.workspace_id:
            raise missing(kind, object_id)
        self.access.require(need)

    def _audit(
        self,
        session: Session,
        action: str,
        object_kind: str = "",
        object_id: int | None = None,
        workspace_id: int | None = None,
        server_wide: bool = False,
        **detail: Any,
    ) -> None:
        """One line of the audit trail, written in the caller's transaction (in the caller's
        workspace unless ``workspace_id`` names one; in none when ``server_wide``)."""
        if workspace_id is None and not server_wide:
            workspace_id = self.workspace_id
        session.add(
            AuditRow(
                workspace_id=workspace_id,
                actor=self.actor,
                action=action,
                object_kind=object_kind,
                object_id=object_id,
                detail=json.dumps(detail, default=str, ensure_ascii=False) if detail else "",
            )
        )
