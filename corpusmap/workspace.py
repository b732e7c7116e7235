"""A workspace as its members see it in team mode: members and their roles, limits and usage,
the audit trail, and the exports the store cannot see itself.

Each function takes the store scoped to the caller (``Store.scoped``), which checks the role:
only admins change members and limits or read the trail; anyone may record their own export.
"""

from __future__ import annotations

import pandas as pd

from corpusmap.export import table_bytes
from storage import Store
from storage.access import ROLES
from storage.errors import ForbiddenError, QuotaError
from storage.team import MemberInfo, Usage

__all__ = [
    "ROLES",
    "audit_csv",
    "audit_table",
    "members",
    "record_export",
    "remove_member",
    "set_limits",
    "set_member",
    "usage",
    "usage_line",
]
AUDIT_COLUMNS = ("when (UTC)", "who", "action", "object", "id", "detail")


def members(store: Store) -> list[MemberInfo]:
    return store.members()


def set_member(store: Store, username: str, role: str) -> None:
    """Add ``username`` (an existing account) with ``role``, or change their role."""
    store.set_member(username.strip(), role)


def remove_member(store: Store, username: str) -> None:
    store.remove_member(username)


def set_limits(
    store: Store, *, storage_quota_mb: float | None, llm_calls_per_day: int | None
) -> None:
    """Both limits of the caller's workspace (None: no limit)."""
    store.set_limits(storage_quota_mb=storage_quota_mb, llm_calls_per_day=llm_calls_per_day)


def usage(store: Store) -> Usage:
    return store.usage()


def run_limit_refusal(store: Store, planned_llm_calls: int) -> str | None:
    """Why the workspace's limits refuse a run planning these calls (the check ``workflow``
    makes again when it starts), or None: shown before Start, which stays disabled."""
    try:
        store.check_run_limits(planned_llm_calls)
    except (QuotaError, ForbiddenError) as err:
        return str(err)
    return None


def usage_line(usage: Usage) -> str:
    """``Storage 1.2 of 500 MB · LLM calls today 40 of 1,000`` (limits left out when none)."""
    storage = (
        f"Storage {usage.storage_mb:,.1f} of {usage.storage_quota_mb:,.0f} MB"
        if usage.storage_quota_mb is not None
        else f"Storage {usage.storage_mb:,.1f} MB (no quota)"
    )
    calls = (
        f"LLM calls today {usage.llm_calls_today:,} of {usage.llm_calls_per_day:,}"
        if usage.llm_calls_per_day is not None
        else f"LLM calls today {usage.llm_calls_today:,} (no daily limit)"
    )
    return f"{storage} · {calls}"


def record_export(store: Store, run_id: int, fmt: str, what: str = "labeled corpus") -> None:
    """One line of the audit trail for a download of a run's data."""
    store.record_audit("export", "run", run_id, format=fmt, what=what)


def audit_table(store: Store, limit: int | None = None) -> pd.DataFrame:
    """The workspace's audit trail, newest first (admins only: the store checks)."""
    events = store.audit_events(limit)
    return pd.DataFrame(
        {
            AUDIT_COLUMNS[0]: [e.at.strftime("%Y-%m-%d %H:%M:%S") for e in events],
            AUDIT_COLUMNS[1]: [e.actor for e in events],
            AUDIT_COLUMNS[2]: [e.action for e in events],
            AUDIT_COLUMNS[3]: [e.object_kind for e in events],
            AUDIT_COLUMNS[4]: [e.object_id for e in events],
            AUDIT_COLUMNS[5]: [", ".join(f"{k}={v}" for k, v in e.detail.items()) for e in events],
        },
        columns=list(AUDIT_COLUMNS),
    )


def audit_csv(store: Store) -> bytes:
    """The whole trail as CSV, every cell neutralised against spreadsheet formulas (a username
    or a corpus name such as ``=HYPERLINK(...)`` must not run when an admin opens the file)."""
    return table_bytes(audit_table(store), "csv")
