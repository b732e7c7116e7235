"""Alembic environment: migrations run on the connection that storage.migrate hands over."""

from alembic import context

from storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - `alembic` CLI use, for writing new migrations
    from sqlalchemy import create_engine

    connection = create_engine(str(context.config.get_main_option("sqlalchemy.url"))).connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
)
with context.begin_transaction():
    context.run_migrations()
