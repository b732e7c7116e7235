"""workspaces, users, memberships, sign-in sessions and attempts, the audit trail (team mode)

Every corpus and LLM call gets a workspace. The stored ones go to the "Default" workspace
(id 1), which the first admin created with ``corpusmap users add --admin`` joins as its admin,
so an existing database keeps working in single-user mode and in team mode.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 16:10:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DEFAULT_WORKSPACE = "Default"


def upgrade() -> None:
    workspaces = op.create_table(
        "workspaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("storage_quota_mb", sa.Float(), nullable=True),
        sa.Column("llm_calls_per_day", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.bulk_insert(
        workspaces,
        [
            {
                "id": 1,
                "name": DEFAULT_WORKSPACE,
                "created_at": datetime.now(UTC).replace(tzinfo=None),
            }
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        # The explicit id 1 leaves the sequence behind it.
        op.execute("SELECT setval(pg_get_serial_sequence('workspaces', 'id'), 1)")
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=300), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "memberships",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "user_id"),
    )
    op.create_table(
        "auth_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_auth_sessions_user_id", "auth_sessions", ["user_id"])
    op.create_table(
        "sign_in_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sign_in_attempts_key_at", "sign_in_attempts", ["key", "at"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("object_kind", sa.String(length=20), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_workspace_at", "audit_events", ["workspace_id", "at"])
    # server_default 1 puts every stored corpus and call into the Default workspace. No foreign
    # key: on SQLite adding one rebuilds the table, and dropping the old one would cascade to
    # its documents; the store alone writes workspace ids.
    with op.batch_alter_table("corpora", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("workspace_id", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.create_index("ix_corpora_workspace_id", ["workspace_id"], unique=False)
    with op.batch_alter_table("llm_calls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("workspace_id", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.create_index("ix_llm_calls_workspace_id", ["workspace_id"], unique=False)


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+): a batch rebuild of corpora would cascade its drop to
    # the documents and runs.
    for table in ("llm_calls", "corpora"):
        op.drop_index(f"ix_{table}_workspace_id", table_name=table)
        op.execute(f"ALTER TABLE {table} DROP COLUMN workspace_id")
    for table in ("audit_events", "sign_in_attempts", "auth_sessions", "memberships", "users"):
        op.drop_table(table)
    op.drop_table("workspaces")
