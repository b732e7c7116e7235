"""run warnings, owner and heartbeat (resume of crashed runs)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # server_default fills the rows written by the first schema.
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("warnings", sa.Text(), nullable=False, server_default="[]"))
        batch_op.add_column(
            sa.Column("owner", sa.String(length=300), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
        batch_op.create_index("ix_runs_corpus_status", ["corpus_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_corpus_status")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("owner")
        batch_op.drop_column("warnings")
