"""Each process's memory of who is behind a bearer token or a session cookie, of the data versions
behind tile ETags and of which partnerships share with which agency, kept exact with PostgreSQL
LISTEN/NOTIFY, so that a cached tile or a 304 costs no database round trip at all.

- One dedicated asyncpg connection per process LISTENs on 'safermap_live'. Triggers
  (app/sql/notify.sql) send, at commit and in commit order, what would make the memory wrong: a
  token revoked or re-dated, a principal disabled, re-roled or signed out everywhere, a partnership
  changed, a data version bumped, a sharing rule changed, a table truncated.
- Principals are read from the database on first use and kept (by token digest, and by session
  cookie: principal, token, session epoch) until a notification names them; so are embedded maps
  (by public id and key digest), for their tiles. A token's expiry is
  checked against the clock in memory. A read that a notification overtook is not kept.
- Data versions and sharing grants are read whole when the connection is made and then follow the
  notifications.
- Never stale: while the listening connection is down (or reading everything again), every request
  reads the database, as before; `generation` counts each time the memory was dropped. A change this
  process commits itself is seen by its next request: that request first makes one round trip on the
  listening connection, after which the change's notification has arrived (PostgreSQL sends pending
  notifications before it answers), so a test or an admin page never sees its own change late.
- Other processes see a change when its notification arrives (milliseconds; well within a second).

`last_used_at` of tokens is written off the request path by the background writer (app/writer.py),
at most once a minute per token.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app import db
from app.auth import (
    SESSION_ENDED,
    TOKEN_REFUSED,
    TOUCH_TOKENS,
    Principal,
    digest,
    verify_session,
    verify_token,
)
from app.errors import Unauthorized
from app.settings import Settings, to_libpq_url
from app.writer import Writer

log = logging.getLogger("safermap.live")

CHANNEL = "safermap_live"
TOUCH_EVERY_S = 60.0      # "last used" to within a minute
MAX_CALLERS = 50_000      # principals kept per process (by token, and by session); the oldest go first

ALL_VERSIONS = "SELECT partnership_id, source, version FROM data_version"
# Which partnerships share with an agency: safermap_visible_partnerships (app/sql/sharing.sql) for all.
ALL_GRANTS = ("SELECT DISTINCT grantee_agency_id, partnership_id FROM sharing_rule "
              "WHERE grantee_agency_id IS NOT NULL AND level <> 'none'")

E = TypeVar("E")  # an embedded map, as app/api/embeds.py reads it (with `id` and `partnership_id`)

# Errors that mean the listening connection is gone or unusable.
LOST = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Bounded(dict):
    """A dict that forgets its oldest entries past `limit` (no reordering on reads: cheap)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: Any, value: Any) -> None:
        self.pop(key, None)
        while len(self) >= self.limit:
            del self[next(iter(self))]
        self[key] = value


def listener_name(pid: int | None = None) -> str:
    """The application_name of a process's listening connection (pg_stat_activity shows whose)."""
    return f"safermap-live {pid or os.getpid()}"


def _grants_of(rows: Iterable[Any]) -> dict[int, frozenset[int]]:
    grants: dict[int, set[int]] = {}
    for agency, partnership in rows:
        grants.setdefault(agency, set()).add(partnership)
    return {agency: frozenset(ps) for agency, ps in grants.items()}


class LiveState:
    def __init__(self, settings: Settings, writer: Writer) -> None:
        self.settings = settings
        self.writer = writer
        self.ready = False     # listening, and everything read since: memory may be used
        self.generation = 0    # bumped whenever the memory is dropped or read again
        self._auth_seq = 0     # bumped by every notification about principals: a read it overtook is not kept
        self._tokens: Bounded = Bounded(MAX_CALLERS)    # token digest -> Verified
        self._sessions: Bounded = Bounded(MAX_CALLERS)  # (principal, token, epoch) -> Verified
        self._touched: Bounded = Bounded(MAX_CALLERS)   # token id -> (when "last used" was queued, generation)
        self._embeds: Bounded = Bounded(MAX_CALLERS)    # (public id, key digest) -> (embed, expires epoch s)
        self._versions: dict[int, dict[str, int]] = {}  # partnership -> table -> version
        self._grants: dict[int, frozenset[int]] | None = None  # agency -> partnerships sharing with it
        self._grants_seq = 0
        self._buffer: list[str] | None = None  # notifications held while everything is read
        self._reset_wanted = False
        self._synced = db.writes()  # this process's commits that the memory is known to reflect
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()    # one query at a time on the listening connection
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._spawned: set[asyncio.Task] = set()

    # -- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._lock, self._wake = asyncio.Lock(), asyncio.Event()  # on the serving loop
        self._task = asyncio.get_running_loop().create_task(self._run(), name="safermap-live")

    async def stop(self) -> None:
        for task in (self._task, *self._spawned):
            if task is not None:
                task.cancel()
        for task in (self._task, *self._spawned):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._task = None

    def status(self) -> dict[str, Any]:
        return {"live": "listening" if self.ready else "database", "live_generation": self.generation}

    # -- callers ----------------------------------------------------------------------------------

    async def principal_for_token(self, session: AsyncSession, token: str) -> Principal:
        key = digest(token)
        if await self._usable():
            hit = self._tokens.get(key)
            if hit is not None:
                if hit.expired(time.time()):
                    raise Unauthorized(TOKEN_REFUSED)
                return hit.principal
        mark = self._mark()
        found = await verify_token(session, key)
        if self._still(mark):
            self._tokens.keep(key, found)
        return found.principal

    async def principal_for_session(self, session: AsyncSession, data: dict) -> Principal:
        key = (data["p"], data.get("t"), data.get("e", 0))
        if await self._usable():
            hit = self._sessions.get(key)
            if hit is not None:
                if hit.expired(time.time()):
                    raise Unauthorized(SESSION_ENDED)
                return hit.principal
        mark = self._mark()
        found = await verify_session(session, data)
        if self._still(mark):
            self._sessions.keep(key, found)
        return found.principal

    def known_token(self, token: str) -> Principal | None:
        """The caller behind a token if memory alone can say (no database, no waiting), else None."""
        if not self.ready or db.writes() > self._synced:
            return None
        hit = self._tokens.get(digest(token))
        return None if hit is None or hit.expired(time.time()) else hit.principal

    def known_session(self, data: dict) -> Principal | None:
        """The same for a decoded session cookie."""
        if not self.ready or db.writes() > self._synced:
            return None
        hit = self._sessions.get((data["p"], data.get("t"), data.get("e", 0)))
        return None if hit is None or hit.expired(time.time()) else hit.principal

    async def embed_for_key(self, public_id: str, key_hash: bytes,
                            read: Callable[[], Awaitable[tuple[E, float] | None]]) -> E | None:
        """The live embedded map a key opens: from memory when it can say, else `read()` from the
        database (the embed and when it expires, epoch seconds; None: the key opens nothing), kept
        unless a notification overtook the read. A key that opens nothing is not kept."""
        key = (public_id, key_hash)
        if await self._usable():
            hit = self._embeds.get(key)
            if hit is not None:
                embed, expires = hit
                return embed if time.time() < expires else None
        mark = self._mark()
        found = await read()
        if found is not None and self._still(mark):
            self._embeds.keep(key, found)
        return None if found is None else found[0]

    def known_embed(self, public_id: str, key_hash: bytes) -> Any | None:
        """The live embedded map behind a key if memory alone can say (no database), else None."""
        if not self.ready or db.writes() > self._synced:
            return None
        hit = self._embeds.get((public_id, key_hash))
        return None if hit is None or time.time() >= hit[1] else hit[0]

    def touch(self, principal: Principal) -> asyncio.Future[bool] | None:
        """Queue "last used" for the caller's token, at most once a minute (per process; the
        statement itself skips tokens another process touched within the minute)."""
        token_id = principal.token_id
        if token_id is None:
            return None
        now = time.monotonic()
        last, known_in = self._touched.get(token_id, (None, None))
        if last is not None and now - last < TOUCH_EVERY_S and known_in == self.generation:
            return None
        self._touched.keep(token_id, (now, self.generation))

        async def job(conn: AsyncConnection) -> None:
            await conn.execute(TOUCH_TOKENS, {"ids": [token_id]})
        return self.writer.submit(job)

    # -- data versions ------------------------------------------------------------------------------

    async def versions(self, partnership_id: int, tables: Iterable[str], agency_id: int | None,
                       shared: bool) -> list[str] | None:
        """The 'table=version' strings the versions SQL of app/tiles/sql.py would return (other
        partnerships' prefixed 'id:' for a shared layer), or None: ask the database."""
        if not await self._usable():
            return None
        partnerships = [partnership_id]
        if shared:
            grants = self._grants
            if grants is None:
                return None
            if agency_id is not None:
                partnerships = sorted({partnership_id, *grants.get(agency_id, ())})
        tables = sorted(tables)
        found = []
        for p in partnerships:
            have = self._versions.get(p)
            if not have:
                continue
            prefix = "" if p == partnership_id else f"{p}:"
            found += [f"{prefix}{t}={have[t]}" for t in tables if t in have]
        return found

    # -- keeping it exact ------------------------------------------------------------------------

    async def _usable(self) -> bool:
        if not self.ready:
            return False
        if db.writes() > self._synced:
            return await self._catch_up()
        return True

    def _mark(self) -> tuple[int, int]:
        return self.generation, self._auth_seq

    def _still(self, mark: tuple[int, int]) -> bool:
        return self.ready and mark == (self.generation, self._auth_seq)

    async def _catch_up(self) -> bool:
        """This process committed something: one round trip on the listening connection, after
        which every notification of that commit has been received and applied."""
        target = db.writes()
        conn = self._conn
        if conn is None:
            return False
        try:
            async with self._lock:
                if self._synced < target:
                    await conn.fetchval("SELECT 1", timeout=self.settings.pool_timeout_s)
                    await asyncio.sleep(0)  # let the notifications' callbacks run
                    self._synced = max(self._synced, target)
        except LOST as exc:
            self._lose(conn, f"catching up failed: {exc!r}")
            return False
        return self.ready

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if self._buffer is not None:
            self._buffer.append(payload)
        else:
            self._apply(payload)

    def _apply(self, payload: str) -> None:
        kind, _, rest = payload.partition(":")
        try:
            if kind == "v":
                p, source, version = rest.split(":")
                if version:
                    self._versions.setdefault(int(p), {})[source] = int(version)
                else:
                    self._versions.get(int(p), {}).pop(source, None)
            elif kind == "t":
                token_id = int(rest)
                self._forget(lambda pr: pr.token_id == token_id)
            elif kind == "p":
                principal_id = int(rest)
                self._forget(lambda pr: pr.id == principal_id)
            elif kind == "P":
                partnership_id = int(rest)
                self._forget(lambda pr: pr.partnership_id == partnership_id)
                self._forget_embeds(lambda e: e.partnership_id == partnership_id)
            elif kind == "e":
                embed_id = int(rest)
                self._forget_embeds(lambda e: e.id == embed_id)
            elif kind == "g":
                self._grants, self._grants_seq = None, self._grants_seq + 1
                if self.ready:
                    self._spawn(self._reload_grants())
            elif kind == "reset":
                self._drop()
                self._reset_wanted = True
                self._wake.set()
            else:
                raise ValueError(kind)
        except ValueError:
            log.error("live state: unknown notification %r; reading everything again", payload[:100])
            self._drop()
            self._reset_wanted = True
            self._wake.set()

    def _forget(self, which: Callable[[Principal], bool]) -> None:
        self._auth_seq += 1
        for kept in (self._tokens, self._sessions):
            for key in [k for k, v in kept.items() if which(v.principal)]:
                del kept[key]

    def _forget_embeds(self, which: Callable[[Any], bool]) -> None:
        self._auth_seq += 1
        for key in [k for k, (embed, _) in self._embeds.items() if which(embed)]:
            del self._embeds[key]

    def _drop(self) -> None:
        """Forget everything and stop answering from memory until it is read again."""
        self.ready = False
        self.generation += 1
        self._auth_seq += 1
        self._grants_seq += 1
        self._tokens.clear()
        self._sessions.clear()
        self._embeds.clear()
        self._versions, self._grants = {}, None

    def _lose(self, conn: asyncpg.Connection, why: str) -> None:
        if conn is self._conn:
            if self.ready:  # (not ready: already dropped; dropping again would only move the generation)
                log.warning("live state: %s; answering from the database until listening again", why)
                self._drop()
            self._wake.set()
        if not conn.is_closed():
            conn.terminate()

    def _is_current(self, conn: asyncpg.Connection) -> bool:
        return conn is self._conn

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def _reload_grants(self) -> None:
        conn = self._conn
        if conn is None:
            return
        while self._grants is None and self._is_current(conn):
            seq = self._grants_seq
            try:
                async with self._lock:
                    rows = await conn.fetch(ALL_GRANTS, timeout=self.settings.pool_timeout_s)
            except LOST as exc:
                self._lose(conn, f"reading sharing grants failed: {exc!r}")
                return
            if seq == self._grants_seq:  # else a newer change came in while reading: read again
                self._grants = _grants_of(rows)

    # -- the listening connection -------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever broke, answer from the database and try again
                log.warning("live state: not listening (%r); answering from the database", exc)
            await asyncio.sleep(self.settings.live_retry_s)

    async def _listen(self) -> None:
        conn = await asyncpg.connect(to_libpq_url(self.settings.resolved_database_url()), timeout=5,
                                     server_settings=db.server_settings(self.settings, listener_name()))
        self._conn = conn

        def terminated(c: asyncpg.Connection) -> None:
            self._lose(c, "the listening connection was closed")

        try:
            conn.add_termination_listener(terminated)
            self._buffer = []
            await conn.add_listener(CHANNEL, self._on_notify)
            await self._read_everything(conn)
            log.info("live state: listening (generation %d)", self.generation)
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.settings.live_check_s)
                except TimeoutError:
                    async with self._lock:
                        await conn.fetchval("SELECT 1", timeout=5)
                    continue
                self._wake.clear()
                if conn.is_closed() or conn is not self._conn:
                    return
                if self._reset_wanted:
                    self._buffer = []
                    await self._read_everything(conn)
        finally:
            conn.remove_termination_listener(terminated)
            if conn is self._conn:
                self._conn = None
                if self.ready:
                    self._drop()
            self._buffer = None
            if not conn.is_closed():
                conn.terminate()

    async def _read_everything(self, conn: asyncpg.Connection) -> None:
        """Versions and grants afresh, callers forgotten; then the notifications that came in
        meanwhile, in order (each names a state at least as new as what was read)."""
        self._reset_wanted = False
        writes = db.writes()
        async with self._lock:
            versions = await conn.fetch(ALL_VERSIONS)
            grants = await conn.fetch(ALL_GRANTS)
        self._drop()
        for p, source, version in versions:
            self._versions.setdefault(p, {})[source] = version
        self._grants = _grants_of(grants)
        held, self._buffer = self._buffer or [], None
        for payload in held:
            self._apply(payload)
        self._synced = max(self._synced, writes)
        if not self._reset_wanted:
            self.ready = True
            if self._grants is None:
                self._spawn(self._reload_grants())
