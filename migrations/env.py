"""Alembic environment: migrates DATABASE_URL, or the embedded cluster when it is unset."""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from app.settings import get_settings, to_sync_url

config = context.config
url = config.get_main_option("sqlalchemy.url") or to_sync_url(get_settings().resolved_database_url())


def run_migrations_offline() -> None:
    context.configure(url=url, literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
