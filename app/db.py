"""Async engine and sessions. The engine is made in the app's lifespan and kept on app.state.

Also here: how big each worker's pool may be (sized from the server's max_connections), a session
made only when a request first uses it (`LazySession`), and a count of this process's own commits,
which lets the live state (app/live_state.py) catch up with a change the process itself made before
it answers from memory again.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from app.settings import Settings, to_libpq_url

log = logging.getLogger("safermap.db")


@dataclass(frozen=True)
class PoolPlan:
    size: int
    overflow: int
    why: str = ""


def plan_pool(settings: Settings, max_connections: int | None, reserved: int = 0) -> PoolPlan:
    """Each worker's pool: what the settings ask for, shrunk so that every worker's pool plus its
    listening connection stays under the server's max_connections, less the superuser's reserve and
    `db_headroom` for the CLI, migrations and imports. Without the server's figures (it could not be
    asked), the settings as they are."""
    wanted = PoolPlan(settings.pool_size, settings.max_overflow)
    if max_connections is None:
        return wanted
    workers = settings.resolved_workers()
    per_worker = (max_connections - reserved - settings.db_headroom) // workers - 1  # -1: the listener
    if per_worker >= wanted.size + wanted.overflow:
        return wanted
    size = max(1, min(wanted.size, per_worker))
    overflow = max(0, min(wanted.overflow, per_worker - size))
    return PoolPlan(size, overflow, (
        f"max_connections {max_connections} (less {reserved} reserved and {settings.db_headroom} headroom) "
        f"shared by {workers} workers: pool {size} + overflow {overflow} per worker"))


async def server_limits(settings: Settings) -> tuple[int, int] | None:
    """(max_connections, superuser_reserved_connections) of the server, or None if unreachable."""
    try:
        conn = await asyncpg.connect(to_libpq_url(settings.resolved_database_url()), timeout=5,
                                     server_settings=server_settings(settings))
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        log.warning("could not read max_connections (%s); pool as configured", exc)
        return None
    try:
        return (int(await conn.fetchval("SHOW max_connections")),
                int(await conn.fetchval("SHOW superuser_reserved_connections")))
    finally:
        await conn.close()


def make_engine(settings: Settings, plan: PoolPlan | None = None) -> AsyncEngine:
    plan = plan or PoolPlan(settings.pool_size, settings.max_overflow)
    engine = create_async_engine(
        settings.resolved_database_url(),
        pool_size=plan.size,
        max_overflow=plan.overflow,
        # A request that cannot get a connection soon is answered 503 with Retry-After
        # (app/errors.py), instead of queueing until the client gives up.
        pool_timeout=settings.pool_timeout_s,
        # No pre-ping: it costs a round trip on every request; a connection the server dropped
        # is discarded by SQLAlchemy when it fails, and the pool recycles connections hourly.
        pool_recycle=3600,
        connect_args={"server_settings": server_settings(settings)},
    )
    event.listen(engine.sync_engine, "handle_error", discard_after_client_side_error)
    return engine


def failed_in_driver(exc: BaseException | None) -> bool:
    """True when asyncpg refused a statement itself (an argument it could not encode, a protocol
    misuse) rather than the server answering with an error. asyncpg prepares with Parse/Describe/
    Flush, so by then the server holds an implicit transaction, and the locks of the statement's
    tables, until the next Sync, which such a failure never sends. Errors from the server carry
    a severity; asyncpg's own do not."""
    cause = exc.__cause__ if exc is not None else None
    if isinstance(cause, asyncpg.InterfaceError):
        return True
    return isinstance(cause, asyncpg.PostgresError) and getattr(cause, "severity", None) is None


def discard_after_client_side_error(context: ExceptionContext) -> None:
    """Close the connection instead of returning it to the pool half-way through a statement (see
    failed_in_driver); only that connection, not the whole pool."""
    if failed_in_driver(context.original_exception):
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False


def server_settings(settings: Settings, application_name: str = "safermap") -> dict[str, str]:
    """Set at connection start-up: the app works as its own role (see migration 0004)."""
    values = {"application_name": application_name, "jit": "off"}
    if settings.db_role:
        values["role"] = settings.db_role
    return values


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def make_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for safe (GET/HEAD) requests: autocommit, so a read pays no BEGIN/ROLLBACK round
    trips. Each statement sees its own snapshot; a tile reads its data and versions in one."""
    return async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


class LazySession:
    """Stands in for an AsyncSession and makes the real one on first use, so a request answered
    from memory (a cached tile, a 304) never makes one. Everything else is the session's own."""

    __slots__ = ("_maker", "_session")

    def __init__(self, maker: Callable[[], AsyncSession]) -> None:
        self._maker = maker
        self._session: AsyncSession | None = None

    @property
    def opened(self) -> bool:
        return self._session is not None

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._session = self._maker()
        return getattr(self._session, name)

    async def aclose(self) -> None:
        if self._session is not None:
            await asyncio.shield(self._session.close())


# -- this process's own commits ------------------------------------------------------------------
# A change committed by this process must be seen by its next request, even before the change's
# notification has come back over the listening connection.

class _Writes:
    count = 0


def note_write(*_: object) -> None:
    _Writes.count += 1


def writes() -> int:
    """How many commits this process has made (sessions, and plain connections on closing)."""
    return _Writes.count


event.listen(Session, "after_commit", note_write)


@asynccontextmanager
async def raw_connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection, for COPY and other bulk work in the CLI."""
    conn = await asyncpg.connect(to_libpq_url(settings.resolved_database_url()),
                                 server_settings=server_settings(settings))
    try:
        yield conn
    finally:
        await conn.close()
        note_write()
