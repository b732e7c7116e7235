"""A workspace as its members see it in team mode: members and their roles, limits and usage,
the audit trail, and the exports the store cannot see itself.

Each function takes the store scoped to the caller (``Store.scoped``), which checks the role:
only admins change members and limits or read the trail; anyone may record their own export.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from corpusmap.export import table_bytes
from storage import Store
from storage.access import ROLES
from storage.errors import ForbiddenError, QuotaError
from storage.team import MemberInfo, Usage

__all__ = [
    "ROLES",
    "audit_bytes",
    "audit_records",
    "audit_table",
    "members",
    "record_export",
    "remove_member",
    "set_limits",
    "set_member",
    "usage",
    "usage_line",
]
AUDIT_COLUMNS = ("at", "workspace", "actor", "action", "object_kind", "object_id", "detail")
"""Columns of the audit trail's table and CSV (``at``: UTC)."""


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


def megabytes(value: float) -> str:
    """1.2, 500, 0.0034: small amounts keep two significant digits instead of reading 0.0."""
    if value == 0 or value >= 10:
        return f"{value:,.0f}"
    return f"{value:.2g}" if value < 0.1 else f"{value:,.1f}"


def usage_line(usage: Usage) -> str:
    """``Storage 1.2 of 500 MB · LLM calls today 40 of 1,000`` (limits left out when none)."""
    storage = (
        f"Storage {megabytes(usage.storage_mb)} of {megabytes(usage.storage_quota_mb)} MB"
        if usage.storage_quota_mb is not None
        else f"Storage {megabytes(usage.storage_mb)} MB (no quota)"
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


def audit_records(store: Store, limit: int | None = None) -> list[dict[str, Any]]:
    """The workspace's audit trail, newest first, one plain dict per event (admins only: the
    store checks). The one shape the Team page, its CSV and the CLI's CSV and JSONL share."""
    name = store.access.workspace if store.access is not None else ""
    return [
        {
            "at": e.at.isoformat(sep=" ", timespec="seconds"),
            "workspace": name,
            "actor": e.actor,
            "action": e.action,
            "object_kind": e.object_kind,
            "object_id": e.object_id,
            "detail": e.detail,
        }
        for e in store.audit_events(limit)
    ]


def audit_table(store: Store, limit: int | None = None) -> pd.DataFrame:
    """``audit_records`` as a table, each event's detail as sorted JSON."""
    records = audit_records(store, limit)
    for record in records:
        record["detail"] = json.dumps(record["detail"], ensure_ascii=False, sort_keys=True)
    return pd.DataFrame(records, columns=list(AUDIT_COLUMNS)).astype({"object_id": "Int64"})


def audit_bytes(store: Store, fmt: str = "csv", limit: int | None = None) -> bytes:
    """The trail as CSV, every cell neutralised against spreadsheet formulas (a username or a
    workspace such as ``=HYPERLINK(...)`` must not run when an admin opens the file), or as
    JSONL, exactly as stored."""
    if fmt == "jsonl":
        lines = (
            json.dumps(r, ensure_ascii=False, default=str) for r in audit_records(store, limit)
        )
        return "".join(f"{line}\n" for line in lines).encode("utf-8")
    return table_bytes(audit_table(store, limit), "csv")
