"""Team mode's state: workspaces and their limits, users, memberships, sign-in sessions and
failed attempts, the audit trail.

Workspace data (members, limits, usage, the trail) is read and changed through the caller's
access like everything else in the store. Users, sessions and sign-in attempts belong to no
workspace: the accounts service (``corpusmap.accounts``) and the operator's CLI use them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.access import DEFAULT_WORKSPACE_ID, ROLES, Access, unscoped, workspace_wide
from storage.errors import ForbiddenError, NotFoundError, QuotaError, StorageError
from storage.models import (
    AuditRow,
    CorpusRow,
    DocumentRow,
    LLMCallRow,
    MembershipRow,
    UserRow,
    WorkspaceRow,
    utcnow,
)
from storage.session import StoreBase
from storage.users import user_id_of

MB = 1_000_000


@dataclass(frozen=True)
class WorkspaceInfo:
    id: int
    name: str
    storage_quota_mb: float | None
    llm_calls_per_day: int | None
    created_at: datetime


@dataclass(frozen=True)
class MemberInfo:
    username: str
    display_name: str
    role: str
    disabled: bool


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: datetime
    workspace_id: int | None
    actor: str
    action: str
    object_kind: str
    object_id: int | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class Usage:
    """A workspace's use of its limits (None: no limit)."""

    workspace: str
    storage_mb: float
    storage_quota_mb: float | None
    llm_calls_today: int
    llm_calls_per_day: int | None

    @property
    def llm_calls_left(self) -> int | None:
        if self.llm_calls_per_day is None:
            return None
        return max(0, self.llm_calls_per_day - self.llm_calls_today)


def _workspace(row: WorkspaceRow) -> WorkspaceInfo:
    return WorkspaceInfo(
        row.id, row.name, row.storage_quota_mb, row.llm_calls_per_day, row.created_at
    )


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise StorageError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def storage_chars(session: Session, workspace_id: int) -> int:
    """Characters of text and cells the workspace's corpora hold (the quota's measure)."""
    used = session.scalar(
        select(func.sum(func.length(DocumentRow.text) + func.length(DocumentRow.meta)))
        .join(CorpusRow, CorpusRow.id == DocumentRow.corpus_id)
        .where(CorpusRow.workspace_id == workspace_id)
    )
    return int(used or 0)


def check_storage_quota(session: Session, workspace_id: int, extra_chars: int) -> None:
    """Refuse, before anything is written, what would take the workspace past its quota."""
    row = session.get(WorkspaceRow, workspace_id)
    if row is None or row.storage_quota_mb is None:
        return
    used = storage_chars(session, workspace_id)
    if used + extra_chars > row.storage_quota_mb * MB:
        raise QuotaError(
            f"workspace {row.name!r} stores {used / MB:,.1f} MB of its "
            f"{row.storage_quota_mb:,.1f} MB quota and this needs {extra_chars / MB:,.1f} MB "
            "more: delete a corpus or ask an admin to raise the quota "
            "(`corpusmap workspaces limits`)"
        )


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class TeamStore(StoreBase):
    """``Store``'s methods for workspaces, users, members, sign-in and the audit trail."""

    # --- workspaces --------------------------------------------------------------------------

    @unscoped
    def create_workspace(
        self,
        name: str,
        *,
        storage_quota_mb: float | None = None,
        llm_calls_per_day: int | None = None,
    ) -> WorkspaceInfo:
        name = name.strip()
        if not name:
            raise StorageError("a workspace needs a name")
        with self._tx() as session:
            if session.scalar(select(WorkspaceRow.id).where(WorkspaceRow.name == name)):
                raise StorageError(f"workspace {name!r} exists already")
            row = WorkspaceRow(
                name=name, storage_quota_mb=storage_quota_mb, llm_calls_per_day=llm_calls_per_day
            )
            session.add(row)
            session.flush()
            self._audit(session, "workspace", "workspace", row.id, workspace_id=row.id, name=name)
            return _workspace(row)

    @unscoped
    def list_workspaces(self) -> list[WorkspaceInfo]:
        with self._tx() as session:
            rows = session.scalars(select(WorkspaceRow).order_by(WorkspaceRow.id)).all()
            return [_workspace(r) for r in rows]

    @unscoped
    def get_workspace(self, name: str) -> WorkspaceInfo:
        with self._tx() as session:
            row = session.scalars(select(WorkspaceRow).where(WorkspaceRow.name == name)).first()
            if row is None:
                raise NotFoundError(
                    f"no workspace {name!r}; `corpusmap workspaces list` lists them"
                )
            return _workspace(row)

    @workspace_wide("admin")
    def set_limits(
        self,
        *,
        storage_quota_mb: float | None,
        llm_calls_per_day: int | None,
        workspace: str | None = None,
    ) -> WorkspaceInfo:
        """Set both limits (None: none) of the caller's workspace, or of ``workspace`` for the
        operator."""
        for value in (storage_quota_mb, llm_calls_per_day):
            if value is not None and value < 0:
                raise StorageError("a limit cannot be negative; leave it out for no limit")
        with self._tx() as session:
            row = session.get(WorkspaceRow, self._target_workspace(workspace))
            assert row is not None
            row.storage_quota_mb = storage_quota_mb
            row.llm_calls_per_day = llm_calls_per_day
            self._audit(
                session,
                "limits",
                "workspace",
                row.id,
                workspace_id=row.id,
                storage_quota_mb=storage_quota_mb,
                llm_calls_per_day=llm_calls_per_day,
            )
            return _workspace(row)

    @workspace_wide("read")
    def usage(self) -> Usage:
        """The caller's workspace's storage and today's LLM calls, beside its limits."""
        now = utcnow()
        with self._tx() as session:
            row = session.get(WorkspaceRow, self.workspace_id)
            if row is None:
                raise NotFoundError(f"no workspace #{self.workspace_id}")
            calls = session.scalar(
                select(func.count(LLMCallRow.id)).where(
                    LLMCallRow.workspace_id == row.id, LLMCallRow.created_at >= _day_start(now)
                )
            )
            return Usage(
                row.name,
                storage_chars(session, row.id) / MB,
                row.storage_quota_mb,
                int(calls or 0),
                row.llm_calls_per_day,
            )

    @workspace_wide("edit")
    def check_run_limits(self, planned_llm_calls: int) -> Usage:
        """Refuse a run that the workspace's limits cannot take, before anything is stored."""
        usage = self.usage()
        if usage.storage_quota_mb is not None and usage.storage_mb >= usage.storage_quota_mb:
            raise QuotaError(
                f"workspace {usage.workspace!r} has used its {usage.storage_quota_mb:,.1f} MB "
                "storage quota: delete a corpus or ask an admin to raise the quota"
            )
        left = usage.llm_calls_left
        if left is not None and planned_llm_calls > left:
            raise QuotaError(
                f"this run plans {planned_llm_calls:,} LLM calls and workspace "
                f"{usage.workspace!r} has {left:,} of its {usage.llm_calls_per_day:,} calls "
                "left today (UTC): lower the run's LLM budget, run without the LLM, or ask an "
                "admin to raise the daily budget"
            )
        return usage

    # --- members -------------------------------------------------------------------------

    @unscoped
    def workspaces_of(self, username: str) -> list[Access]:
        """What ``username`` may act as: one ``Access`` per workspace they belong to."""
        with self._tx() as session:
            rows = session.execute(
                select(UserRow.id, UserRow.username, WorkspaceRow.id, WorkspaceRow.name)
                .add_columns(MembershipRow.role)
                .join(MembershipRow, MembershipRow.user_id == UserRow.id)
                .join(WorkspaceRow, WorkspaceRow.id == MembershipRow.workspace_id)
                .where(UserRow.username == username, UserRow.disabled.is_(False))
                .order_by(WorkspaceRow.name)
            ).all()
            return [Access(*r) for r in rows]

    @unscoped
    def access_for(self, username: str, workspace: str | None = None) -> Access:
        """``username`` acting in ``workspace`` (their only one when None)."""
        choices = self.workspaces_of(username)
        if not choices:
            raise ForbiddenError(
                f"{username!r} is not an enabled member of any workspace: an admin adds them "
                "with `corpusmap workspaces add-member`"
            )
        if workspace is None:
            if len(choices) > 1:
                names = ", ".join(a.workspace for a in choices)
                raise ForbiddenError(f"{username!r} belongs to {names}: name one (--workspace)")
            return choices[0]
        for access in choices:
            if access.workspace == workspace:
                return access
        raise NotFoundError(f"no workspace {workspace!r} among {username!r}'s workspaces")

    @workspace_wide("read")
    def members(self, workspace: str | None = None) -> list[MemberInfo]:
        with self._tx() as session:
            rows = session.execute(
                select(UserRow.username, UserRow.display_name, MembershipRow.role, UserRow.disabled)
                .join(MembershipRow, MembershipRow.user_id == UserRow.id)
                .where(MembershipRow.workspace_id == self._target_workspace(workspace))
                .order_by(UserRow.username)
            ).all()
            return [MemberInfo(*r) for r in rows]

    @workspace_wide("admin")
    def set_member(self, username: str, role: str, *, workspace: str | None = None) -> None:
        """Add ``username`` to the workspace with ``role``, or change their role."""
        _check_role(role)
        with self._tx() as session:
            workspace_id = self._target_workspace(workspace)
            user_id = user_id_of(session, username)
            if user_id is None:
                raise NotFoundError(
                    f"no user {username!r}: the server's operator adds users with "
                    "`corpusmap users add` (or they sign in once through the identity provider)"
                )
            row = session.get(MembershipRow, (workspace_id, user_id))
            if row is None:
                session.add(MembershipRow(workspace_id=workspace_id, user_id=user_id, role=role))
            else:
                if row.role == "admin" and role != "admin":
                    self._keep_an_admin(session, workspace_id, user_id)
                row.role = role
            self._audit(
                session,
                "member",
                "user",
                user_id,
                workspace_id=workspace_id,
                user=username,
                role=role,
            )

    @workspace_wide("admin")
    def remove_member(self, username: str, *, workspace: str | None = None) -> None:
        with self._tx() as session:
            workspace_id = self._target_workspace(workspace)
            user_id = user_id_of(session, username)
            row = session.get(MembershipRow, (workspace_id, user_id)) if user_id else None
            if row is None:
                raise NotFoundError(f"{username!r} is not a member of this workspace")
            if row.role == "admin":
                self._keep_an_admin(session, workspace_id, row.user_id)
            session.delete(row)
            self._audit(
                session,
                "member",
                "user",
                user_id,
                workspace_id=workspace_id,
                user=username,
                role="",
            )

    @unscoped
    def claim_default_workspace(self, username: str) -> bool:
        """Make ``username`` the admin of the Default workspace (where the data stored before
        team mode lies) if it has no member yet; True if they became it."""
        with self._tx() as session:
            if session.scalar(
                select(func.count()).where(MembershipRow.workspace_id == DEFAULT_WORKSPACE_ID)
            ):
                return False
            user_id = user_id_of(session, username)
            if user_id is None:
                raise NotFoundError(f"no user {username!r}")
            session.add(
                MembershipRow(workspace_id=DEFAULT_WORKSPACE_ID, user_id=user_id, role="admin")
            )
            self._audit(
                session,
                "member",
                "user",
                user_id,
                workspace_id=DEFAULT_WORKSPACE_ID,
                user=username,
                role="admin",
            )
            return True

    def _keep_an_admin(self, session: Session, workspace_id: int, leaving: int) -> None:
        others = session.scalar(
            select(func.count()).where(
                MembershipRow.workspace_id == workspace_id,
                MembershipRow.role == "admin",
                MembershipRow.user_id != leaving,
            )
        )
        if not others:
            raise ForbiddenError("a workspace keeps at least one admin: make another one first")

    def _target_workspace(self, workspace: str | None) -> int:
        """The caller's workspace; the operator (unscoped) names one."""
        if self.access is not None:
            if workspace not in (None, self.access.workspace):
                raise NotFoundError(f"no workspace {workspace!r} among your workspaces")
            return self.access.workspace_id
        if workspace is None:
            return DEFAULT_WORKSPACE_ID
        return self.get_workspace(workspace).id

    # --- audit trail ---------------------------------------------------------------------

    @workspace_wide("read")
    def record_audit(
        self, action: str, object_kind: str = "", object_id: int | None = None, **detail: Any
    ) -> None:
        """One line of the trail for what the store does not see itself (an export, a sign-in).
        A run or corpus it names must be one the caller may read."""
        if self.access is not None and object_kind in ("run", "corpus") and object_id is not None:
            self._check_access(object_kind, int(object_id), "read")
        with self._tx() as session:
            self._audit(session, action, object_kind, object_id, **detail)

    @workspace_wide("admin")
    def audit_events(self, limit: int | None = None) -> list[AuditEvent]:
        """The caller's workspace's trail, newest first (the operator: every workspace's)."""
        query = self._in_workspace(select(AuditRow), AuditRow.workspace_id)
        query = query.order_by(AuditRow.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as session:
            return [
                AuditEvent(
                    r.id,
                    r.at,
                    r.workspace_id,
                    r.actor,
                    r.action,
                    r.object_kind,
                    r.object_id,
                    json.loads(r.detail) if r.detail else {},
                )
                for r in session.scalars(query)
            ]
