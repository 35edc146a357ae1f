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
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": "safermap", "jit": "off"}},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def raw_connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection, for COPY and other bulk work in the CLI."""
    conn = await asyncpg.connect(to_libpq_url(settings.resolved_database_url()))
    try:
        yield conn
    finally:
        await conn.close()
