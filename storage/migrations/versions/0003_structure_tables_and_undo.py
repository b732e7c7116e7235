"""structure in tables (rules, hierarchy, constraints, novelty), edit undo and stable ids

Rules, the hierarchy's choice, constraint results and novelty lived inside ``runs.metrics``
(JSON keyed by cluster numbers that edits shifted, issue 15). They move to tables keyed by
(run_id, cluster_id); every stored run's data moves with them and leaves its metrics. Edits
get the sentence the log shows and the before/after state that undo and redo apply; runs get
the counter that keeps cluster ids from being reused.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 13:20:00
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STRUCTURE_KEYS = ("rules", "parent_rules", "hierarchy", "constraints", "novelty")
CONSTRAINT_COLUMNS = (
    "n_seeds",
    "n_seed_classes",
    "must_link_held",
    "must_link_total",
    "cannot_link_held",
    "cannot_link_total",
    "seeds_together",
    "seeds_total",
)

# Tables as this revision knows them (never the ORM models, which move on).
runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("metrics", sa.Text))
rules = sa.table(
    "cluster_rules",
    sa.column("run_id", sa.Integer),
    sa.column("cluster_id", sa.Integer),
    sa.column("level", sa.Integer),
    sa.column("rule", sa.Text),
    sa.column("precision", sa.Float),
    sa.column("recall", sa.Float),
)
hierarchies = sa.table(
    "hierarchies",
    sa.column("run_id", sa.Integer),
    sa.column("n_parents", sa.Integer),
    sa.column("method", sa.String),
    sa.column("choice", sa.Text),
    sa.column("parent_id_base", sa.Integer),
)
constraint_results = sa.table(
    "constraint_results",
    sa.column("run_id", sa.Integer),
    *(sa.column(c, sa.Integer) for c in CONSTRAINT_COLUMNS),
    sa.column("satisfied_share", sa.Float),
    sa.column("stale", sa.Boolean),
)
novelty = sa.table(
    "cluster_novelty",
    sa.column("run_id", sa.Integer),
    sa.column("cluster_id", sa.Integer),
    sa.column("seed_class", sa.Text),
    sa.column("purity", sa.Float),
)


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("next_cluster_id", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("edits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sentence", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("undone", sa.Boolean(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("before", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("after", sa.LargeBinary(), nullable=True))
    op.create_table(
        "cluster_rules",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("precision", sa.Float(), nullable=True),
        sa.Column("recall", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "cluster_id"),
    )
    op.create_table(
        "hierarchies",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("n_parents", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=40), nullable=False),
        sa.Column("choice", sa.Text(), nullable=False),
        sa.Column("parent_id_base", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_table(
        "constraint_results",
        sa.Column("run_id", sa.Integer(), nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in CONSTRAINT_COLUMNS),
        sa.Column("satisfied_share", sa.Float(), nullable=True),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_table(
        "cluster_novelty",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("seed_class", sa.Text(), nullable=True),
        sa.Column("purity", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "cluster_id"),
    )
    _move_out_of_metrics()


def _move_out_of_metrics() -> None:
    connection = op.get_bind()
    for run_id, text in connection.execute(sa.select(runs.c.id, runs.c.metrics)).all():
        try:
            metrics = json.loads(text or "{}")
        except ValueError:
            continue
        if not isinstance(metrics, dict) or not any(k in metrics for k in STRUCTURE_KEYS):
            continue
        for level, key in ((0, "rules"), (1, "parent_rules")):
            rows = [
                {
                    "run_id": run_id,
                    "cluster_id": int(cluster_id),
                    "level": level,
                    "rule": str(rule.get("rule", "")),
                    "precision": rule.get("rule_precision"),
                    "recall": rule.get("rule_recall"),
                }
                for cluster_id, rule in (metrics.pop(key, None) or {}).items()
            ]
            if rows:
                connection.execute(rules.insert(), rows)
        hierarchy = metrics.pop("hierarchy", None)
        if hierarchy:
            choice = hierarchy.get("choice") or {}
            connection.execute(
                hierarchies.insert(),
                {
                    "run_id": run_id,
                    "n_parents": int(hierarchy.get("n_parents", 0)),
                    "method": str(choice.get("method", "")),
                    "choice": json.dumps(choice),
                    "parent_id_base": int(hierarchy.get("parent_id_base", 0)),
                },
            )
        report = metrics.pop("constraints", None)
        if report:
            connection.execute(
                constraint_results.insert(),
                {
                    "run_id": run_id,
                    **{c: int(report.get(c, 0)) for c in CONSTRAINT_COLUMNS},
                    "satisfied_share": report.get("satisfied_share"),
                    "stale": False,
                },
            )
        found = metrics.pop("novelty", None)
        if found:
            known = {int(c): str(name) for c, name in (found.get("known") or {}).items()}
            purity = {int(c): float(p) for c, p in (found.get("purity") or {}).items()}
            ids = set(known) | {int(c) for c in found.get("novel") or ()}
            rows = [
                {
                    "run_id": run_id,
                    "cluster_id": c,
                    "seed_class": known.get(c),
                    "purity": purity.get(c),
                }
                for c in sorted(ids)
            ]
            if rows:
                connection.execute(novelty.insert(), rows)
        connection.execute(
            runs.update().where(runs.c.id == run_id).values(metrics=json.dumps(metrics))
        )


def downgrade() -> None:
    connection = op.get_bind()
    for run_id, text in connection.execute(sa.select(runs.c.id, runs.c.metrics)).all():
        metrics = json.loads(text or "{}")
        for level, key in ((0, "rules"), (1, "parent_rules")):
            found = connection.execute(
                sa.select(rules).where(rules.c.run_id == run_id, rules.c.level == level)
            ).all()
            if found:
                metrics[key] = {
                    str(r.cluster_id): {
                        "rule": r.rule,
                        "rule_precision": r.precision,
                        "rule_recall": r.recall,
                    }
                    for r in found
                }
        row = connection.execute(
            sa.select(hierarchies).where(hierarchies.c.run_id == run_id)
        ).first()
        if row is not None:
            metrics["hierarchy"] = {
                "n_parents": row.n_parents,
                "choice": json.loads(row.choice),
                "parent_id_base": row.parent_id_base,
            }
        row = connection.execute(
            sa.select(constraint_results).where(constraint_results.c.run_id == run_id)
        ).first()
        if row is not None:
            metrics["constraints"] = {
                **{c: getattr(row, c) for c in CONSTRAINT_COLUMNS},
                "satisfied_share": row.satisfied_share,
            }
        found = connection.execute(sa.select(novelty).where(novelty.c.run_id == run_id)).all()
        if found:
            metrics["novelty"] = {
                "known": {str(r.cluster_id): r.seed_class for r in found if r.seed_class},
                "novel": [r.cluster_id for r in found if r.seed_class is None],
                "purity": {str(r.cluster_id): r.purity for r in found if r.purity is not None},
            }
        connection.execute(
            runs.update().where(runs.c.id == run_id).values(metrics=json.dumps(metrics))
        )
    op.drop_table("cluster_novelty")
    op.drop_table("constraint_results")
    op.drop_table("hierarchies")
    op.drop_table("cluster_rules")
    with op.batch_alter_table("edits", schema=None) as batch_op:
        batch_op.drop_column("after")
        batch_op.drop_column("before")
        batch_op.drop_column("undone")
        batch_op.drop_column("sentence")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("next_cluster_id")
