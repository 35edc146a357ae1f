"""Async engine and sessions. The engine is made in the app's lifespan and kept on app.state."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.settings import Settings, to_libpq_url


def make_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.resolved_database_url(),
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        # No pre-ping: it costs a round trip on every request; a connection the server dropped
        # is discarded by SQLAlchemy when it fails, and the pool recycles connections hourly.
        pool_recycle=3600,
        connect_args={"server_settings": server_settings(settings)},
    )


def server_settings(settings: Settings) -> dict[str, str]:
    """Set at connection start-up: the app works as its own role (see migration 0004)."""
    values = {"application_name": "safermap", "jit": "off"}
    if settings.db_role:
        values["role"] = settings.db_role
    return values


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def make_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for safe (GET/HEAD) requests: autocommit, so a read pays no BEGIN/ROLLBACK round
    trips. Each statement sees its own snapshot; a tile reads its data and versions in one."""
    return async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


@asynccontextmanager
async def raw_connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection, for COPY and other bulk work in the CLI."""
    conn = await asyncpg.connect(to_libpq_url(settings.resolved_database_url()),
                                 server_settings=server_settings(settings))
    try:
        yield conn
    finally:
        await conn.close()
