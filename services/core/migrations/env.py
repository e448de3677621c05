"""Alembic environment: runs migrations on one synchronous connection from `db.migrate`."""

from __future__ import annotations

from alembic import context

from services.core.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
