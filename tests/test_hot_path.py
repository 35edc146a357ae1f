"""Requests that need no database touch none, and memory is never stale.

Two real uvicorn servers (one worker each, two ports, one database: two workers whose requests the
test aims at, rather than hoping a balancer spreads them) keep callers and data versions in memory,
kept exact by LISTEN/NOTIFY (app/live_state.py). A revoked token, a disabled user's session, a role
change and a data change reach both within a second. With the listening connection killed, a worker
asks the database on every request (a revoked token is still refused at once) until the listener is
back. In-process: a cached tile and a 304 are served while every pooled connection is taken (so they
made no round trip, and no statement ran), and a request that needs a connection then gets 503 with
Retry-After instead of waiting. Deadlines are polled, never slept."""
from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from sqlalchemy import event, text
from typer.testing import CliRunner

from app.auth import create_token, digest
from app.db import PoolPlan, plan_pool
from app.live_state import listener_name
from app.settings import ROOT, Settings
from app.tiles.sql import lonlat_to_tile
from tests import factories
from tests.factories import LAT, LON

PROPAGATION_S = 1.0  # the promise: every worker refuses or redraws within this
RETRY_S = 5.0        # how long a server waits before listening again: the window the fallback test uses


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base: str
    proc: subprocess.Popen

    def health(self) -> dict:
        return httpx.get(self.base + "/health", timeout=5).json()


def _start(settings: Settings) -> Server:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": settings.database_url, "SAFERMAP_SECRET_KEY": settings.secret_key,
           "SAFERMAP_VAR_DIR": str(settings.var_dir), "SAFERMAP_LIVE_RETRY_S": str(RETRY_S),
           "SAFERMAP_WORKERS": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    return Server(f"http://127.0.0.1:{port}", proc)


def _wait_listening(server: Server, deadline_s: float = 60) -> dict:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"the server exited with {server.proc.returncode}")
        try:
            health = server.health()
            if health.get("live") == "listening":
                return health
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{server.base} did not start listening within {deadline_s} s")


@pytest.fixture(scope="module")
def servers(settings: Settings) -> Iterator[list[Server]]:
    started = [_start(settings), _start(settings)]
    try:
        for s in started:
            _wait_listening(s)
        yield started
    finally:
        for s in started:
            s.proc.terminate()
        for s in started:
            try:
                s.proc.wait(15)
            except subprocess.TimeoutExpired:
                s.proc.kill()


async def _status(base: str, path: str, headers: dict[str, str]) -> int:
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:  # a fresh connection each time
        return (await c.get(path, headers=headers)).status_code


async def _all(servers: list[Server], path: str, headers: dict[str, str], times: int = 10) -> set[int]:
    """Statuses of `times` requests to every server."""
    found = await asyncio.gather(*(_status(s.base, path, headers) for s in servers for _ in range(times)))
    return set(found)


async def _within(servers: list[Server], seconds: float, ok: Callable[[Server], Awaitable[bool]]) -> list[float]:
    """Poll every server until `ok` holds for it; the seconds each took (failing after `seconds`
    plus a grace, so a slow answer is reported with its figure rather than as a hang)."""
    started = time.monotonic()
    took: dict[int, float] = {}
    while len(took) < len(servers) and time.monotonic() - started < seconds + 5:
        for i, s in enumerate(servers):
            if i not in took and await ok(s):
                took[i] = time.monotonic() - started
    assert len(took) == len(servers), f"not every server got there within {seconds + 5} s: {took}"
    assert max(took.values()) <= seconds, f"seconds each server took: {took}"
    return [took[i] for i in range(len(servers))]


async def _token_id(db, token: str) -> int:
    return (await db.execute(text("SELECT id FROM api_token WHERE token_hash = :h"), {"h": digest(token)})).scalar_one()


async def _user(base: str, admin: factories.Caller, role: str) -> int:
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        r = await c.post("/api/users", headers=admin.headers, json={
            "name": f"{role} {secrets.token_hex(3)}", "email": f"{secrets.token_hex(5)}@example.gov.uk",
            "role": role})
    assert r.status_code == 201, r.text
    return r.json()["id"]


# -- two workers, one database ---------------------------------------------------------------------

async def test_a_revoked_token_is_refused_by_every_worker_within_a_second(servers, db):
    pid = await factories.partnership(db, "hot-one")
    caller = await factories.person(db, pid, "viewer")
    assert await _all(servers, "/tiles", caller.headers) == {200}  # both now hold the token in memory

    token_id = await _token_id(db, caller.token)
    async with httpx.AsyncClient(base_url=servers[0].base) as c:
        assert (await c.delete(f"/api/tokens/{token_id}", headers=caller.headers)).status_code == 204

    async def refused(s: Server) -> bool:
        return await _status(s.base, "/tiles", caller.headers) == 401
    await _within(servers, PROPAGATION_S, refused)
    assert await _all(servers, "/tiles", caller.headers, times=20) == {401}


async def test_a_disabled_users_session_ends_on_every_worker_within_a_second(servers, db):
    pid = await factories.partnership(db, "hot-two")
    admin = await factories.person(db, pid, "admin")
    uid = await _user(servers[0].base, admin, "viewer")
    token = await create_token(db, uid, "laptop")
    await db.commit()
    async with httpx.AsyncClient(base_url=servers[1].base) as c:
        r = await c.post("/auth/session", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 204
        cookie = {"Cookie": f"safermap_session={r.cookies['safermap_session']}"}
    assert await _all(servers, "/tiles", cookie) == {200}

    async with httpx.AsyncClient(base_url=servers[1].base) as c:
        r = await c.patch(f"/api/users/{uid}", headers=admin.headers, json={"disabled": True})
        assert r.status_code == 204

    async def refused(s: Server) -> bool:
        return await _status(s.base, "/tiles", cookie) == 401
    await _within(servers, PROPAGATION_S, refused)
    assert await _all(servers, "/tiles", cookie) == {401}


async def test_a_role_change_reaches_every_worker_within_a_second(servers, db):
    pid = await factories.partnership(db, "hot-three")
    admin = await factories.person(db, pid, "admin")
    uid = await _user(servers[0].base, admin, "admin")
    bearer = {"Authorization": f"Bearer {await create_token(db, uid, 'script')}"}
    await db.commit()
    assert await _all(servers, "/api/users", bearer) == {200}

    async with httpx.AsyncClient(base_url=servers[0].base) as c:
        r = await c.patch(f"/api/users/{uid}", headers=admin.headers, json={"role": "viewer"})
        assert r.status_code == 204

    async def lowered(s: Server) -> bool:
        return await _status(s.base, "/api/users", bearer) == 403
    await _within(servers, PROPAGATION_S, lowered)
    assert await _all(servers, "/api/users", bearer) == {403}
    assert await _all(servers, "/tiles", bearer) == {200}  # still a viewer


async def test_a_data_change_redraws_the_tile_on_every_worker_within_a_second(servers, db):
    pid = await factories.partnership(db, "hot-four")
    admin = await factories.person(db, pid, "admin")
    z = 16
    x, y = lonlat_to_tile(LON, LAT, z)
    url = f"/tiles/cameras/{z}/{x}/{y}.mvt"

    async def post_camera(ref: str, lon: float) -> None:
        async with httpx.AsyncClient(base_url=servers[0].base) as c:
            r = await c.post("/api/cameras", headers=admin.headers, json=factories.camera_feature(ref, (lon, LAT)))
            assert r.status_code == 201, r.text

    await post_camera("HOT-1", LON)
    tags = set()
    for s in servers:
        async with httpx.AsyncClient(base_url=s.base) as c:
            r = await c.get(url, headers=admin.headers)
            assert r.status_code == 200
            tags.add(r.headers["etag"])
            again = await c.get(url, headers={**admin.headers, "If-None-Match": r.headers["etag"]})
            assert again.status_code == 304
    assert len(tags) == 1, "both workers name the same tile the same"
    [old] = tags

    await post_camera("HOT-2", LON + 0.0005)

    async def redrawn(s: Server) -> bool:
        async with httpx.AsyncClient(base_url=s.base) as c:
            r = await c.get(url, headers={**admin.headers, "If-None-Match": old})
        return r.status_code == 200 and r.headers["etag"] != old
    await _within(servers, PROPAGATION_S, redrawn)


def _kill_listeners(database_url: str, servers: list[Server]) -> int:
    """pg_terminate_backend on each server's listening connection (as the database owner)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return sum(conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s", (listener_name(s.proc.pid),)).fetchone()[0] for s in servers)


async def test_with_the_listener_down_the_database_is_asked_and_the_listener_comes_back(servers, db, database_url):
    pid = await factories.partnership(db, "hot-five")
    caller = await factories.person(db, pid, "viewer")
    assert await _all(servers, "/tiles", caller.headers) == {200}

    assert _kill_listeners(database_url, servers) == 2
    down: list[dict] = []
    for s in servers:  # each notices at once (the server closes the socket), well before it retries
        deadline = time.monotonic() + RETRY_S
        while (health := s.health())["live"] != "database":
            assert time.monotonic() < deadline, "the server did not notice its listener was gone"
        down.append(health)

    token_id = await _token_id(db, caller.token)
    async with httpx.AsyncClient(base_url=servers[0].base) as c:
        assert (await c.delete(f"/api/tokens/{token_id}", headers=caller.headers)).status_code == 204
    # Refused at once by both, though no notification can reach them ...
    assert await _all(servers, "/tiles", caller.headers) == {401}
    # ... and both were still without a listener throughout (same generation, still 'database').
    assert [s.health() for s in servers] == down, "a listener came back during the check: raise RETRY_S"

    for s, before in zip(servers, down, strict=True):  # and it comes back, having read everything again
        back = _wait_listening(s, RETRY_S + 30)
        assert back["live_generation"] > before["live_generation"]

    again = await factories.person(db, pid, "viewer")  # notifications flow again
    assert await _all(servers, "/tiles", again.headers) == {200}
    async with httpx.AsyncClient(base_url=servers[1].base) as c:
        r = await c.delete(f"/api/tokens/{await _token_id(db, again.token)}", headers=again.headers)
        assert r.status_code == 204

    async def refused(s: Server) -> bool:
        return await _status(s.base, "/tiles", again.headers) == 401
    await _within(servers, PROPAGATION_S, refused)


# -- no database on the hot path; 503 when the pool is exhausted -------------------------------------

@pytest.fixture
async def tiny(settings: Settings):
    """The app with a pool of one connection that a request waits for at most 0.3 s."""
    from app.main import create_app
    application = create_app(settings.model_copy(update={"pool_size": 1, "max_overflow": 0, "pool_timeout_s": 0.3}))
    async with application.router.lifespan_context(application):
        deadline = time.monotonic() + 30
        while not application.state.live.ready:
            assert time.monotonic() < deadline, "the live state did not start listening"
            await asyncio.sleep(0.01)
        yield application


async def test_a_cached_tile_and_a_304_need_no_database_while_others_get_503(tiny, db, caplog):
    caplog.set_level("INFO", logger="safermap")
    pid = await factories.partnership(db, "hot-six")
    admin = await factories.person(db, pid, "admin")
    await factories.camera(db, pid, "HOT-6")
    x, y = lonlat_to_tile(LON, LAT, 16)
    url = f"/tiles/cameras/16/{x}/{y}.mvt"
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    engine = tiny.state.engine
    assert engine.pool.size() == 1 and tiny.state.pool_plan.overflow == 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=tiny), base_url="http://t") as client:
        first = await client.get(url, headers=admin.headers)  # drawn (and the caller read): the database
        assert first.status_code == 200 and first.content
        tag = first.headers["etag"]

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        held = await engine.connect()  # the only connection: nobody else gets one now
        await held.exec_driver_sql("SELECT 1")
        statements.clear()
        try:
            answers = await asyncio.gather(*(client.get(url, headers=admin.headers) for _ in range(20)))
            assert {r.status_code for r in answers} == {200}
            assert {r.content for r in answers} == {first.content} and {r.headers["etag"] for r in answers} == {tag}
            not_modified = await client.get(url, headers={**admin.headers, "If-None-Match": tag})
            assert not_modified.status_code == 304 and not_modified.headers["etag"] == tag
            assert statements == [], "a cached tile or a 304 ran a statement"

            started = time.monotonic()
            busy = await client.get("/api/cameras", headers=admin.headers)  # needs a connection
            waited = time.monotonic() - started
            assert busy.status_code == 503
            assert busy.headers["content-type"].startswith("application/problem+json")
            assert busy.headers["retry-after"] == "1"
            assert busy.json()["title"] == "Busy" and "SELECT" not in busy.text
            assert waited < 10, "answered at once, not left to time out"

            # A tile not drawn yet needs a connection too: the hot path answers its 503 itself,
            # after one wait for the pool, rather than hand it to the route to wait again.
            caplog.clear()
            cx, cy = lonlat_to_tile(LON, LAT, 15)
            cold = await client.get(f"/tiles/cameras/15/{cx}/{cy}.mvt", headers=admin.headers)
            assert cold.status_code == 503 and cold.headers["retry-after"] == "1"
            assert cold.headers["content-type"].startswith("application/problem+json")
            refusals = [r for r in caplog.records if "answered 503" in r.getMessage()]
            assert [r.name for r in refusals] == ["safermap.tiles"], "the pool was waited for more than once"
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
            await held.close()
        assert (await client.get("/api/cameras", headers=admin.headers)).status_code == 200


async def test_tiles_beyond_the_draw_limit_wait_without_a_connection_then_get_503(tiny, db):
    """Tiles drawn at once are limited (app/tiles/pipeline.py DrawGate): one more waits its turn,
    holding no connection (others' requests still get one), and past the pool's wait is answered
    503 with Retry-After; once a slot is free it is drawn."""
    pid = await factories.partnership(db, "hot-gate")
    admin = await factories.person(db, pid, "admin")
    await factories.camera(db, pid, "GATE-1")
    x, y = lonlat_to_tile(LON, LAT, 16)
    url = f"/tiles/cameras/16/{x}/{y}.mvt"
    gate = tiny.state.tiles.draws
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=tiny), base_url="http://t") as client:
        assert (await client.get("/api/cameras", headers=admin.headers)).status_code == 200  # caller in memory
        async with AsyncExitStack() as every_slot:
            for _ in range(gate.size):
                await every_slot.enter_async_context(gate.slot())
            waiting, other = await asyncio.gather(client.get(url, headers=admin.headers),
                                                  client.get("/api/cameras", headers=admin.headers))
            assert other.status_code == 200, "a tile waiting for its turn held the only connection"
            assert waiting.status_code == 503 and waiting.headers["retry-after"] == "1"
            assert waiting.headers["content-type"].startswith("application/problem+json")
        drawn = await client.get(url, headers=admin.headers)
        assert drawn.status_code == 200 and drawn.content


async def test_an_exact_view_is_audited_after_the_answer_once_a_minute(client, db, make_caller):
    """The audit of exact views is written by the background writer (the in-process client waits
    for the response's background tasks, so it is there when the answer is): once per caller and
    layer a minute, however many tiles."""
    caller = await make_caller("hot-seven", "admin")
    ds = await factories.dataset(db, caller.partnership_id)
    await factories.incidents(db, caller.partnership_id, ds, [(LON, LAT, "Burglary", "2024-01", 3)])
    for z in (17, 18, 18, 16):
        x, y = lonlat_to_tile(LON, LAT, z)
        r = await client.get(f"/tiles/incidents/{z}/{x}/{y}.mvt", headers=caller.headers)
        assert r.status_code == 200
    views = (await db.execute(text(
        "SELECT principal_id, target, detail FROM audit_event WHERE action = 'view.exact'"))).all()
    assert [(v.principal_id, v.target) for v in views] == [(caller.principal_id, "tiles/incidents")]
    assert views[0].detail["tile"].startswith("17/")


async def test_the_hot_path_answers_exactly_as_the_route_does(app, client, db, make_caller, monkeypatch):
    """app/api/hot_tiles.py answers cached tiles and 304s from memory without FastAPI's dependency
    solving; with the caller unknown to memory the route answers the same request. Same bytes, same
    headers, for a plain tile, a filtered one and a 304; refusals and other routes are the route's."""
    from app.tiles.pipeline import TilePipeline
    caller = await make_caller("hot-ten", "viewer")
    ds = await factories.dataset(db, caller.partnership_id)
    await factories.incidents(db, caller.partnership_id, ds, [(LON, LAT, "Burglary", "2024-01", 3),
                                                               (LON + 0.001, LAT, "Robbery", "2024-02", 2)])
    drawn = []
    real = TilePipeline.layer_tile

    async def counted(self, *args, **kwargs):
        drawn.append(args[2].tile)
        return await real(self, *args, **kwargs)
    monkeypatch.setattr(TilePipeline, "layer_tile", counted)
    x, y = lonlat_to_tile(LON, LAT, 16)
    for url in (f"/tiles/incidents/16/{x}/{y}.mvt", f"/tiles/incidents/16/{x}/{y}.mvt?category=Burglary&from=2024-01"):
        first = await client.get(url, headers=caller.headers)  # drawn by the route
        assert first.status_code == 200 and len(drawn) == 1
        hot = await client.get(url, headers=caller.headers)
        hot_304 = await client.get(url, headers={**caller.headers, "If-None-Match": hot.headers["etag"]})
        assert len(drawn) == 1, "the hot path answered both"
        with monkeypatch.context() as m:  # memory says nothing of the caller: the route answers
            m.setattr(app.state.live, "known_token", lambda token: None)
            routed = await client.get(url, headers=caller.headers)
            routed_304 = await client.get(url, headers={**caller.headers, "If-None-Match": hot.headers["etag"]})
        assert len(drawn) == 3
        assert (hot.status_code, hot.content, dict(hot.headers)) == (routed.status_code, routed.content,
                                                                     dict(routed.headers))
        assert hot.content == first.content and dict(hot.headers) == dict(first.headers)
        assert (hot_304.status_code, dict(hot_304.headers)) == (304, dict(routed_304.headers))
        drawn.clear()

    # What memory cannot answer is the route's, with its problems.
    missing = await client.get(f"/tiles/nowhere/16/{x}/{y}.mvt", headers=caller.headers)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    bad = await client.get("/tiles/incidents/3/99/0.mvt", headers=caller.headers)
    assert bad.status_code == 400 and "x and y run from 0 to 7" in bad.json()["detail"]
    bad = await client.get(f"/tiles/incidents/16/{x}/{y}.mvt?from=yesterday", headers=caller.headers)
    assert bad.status_code == 400 and bad.json()["detail"].startswith("from must be")
    assert (await client.get(f"/tiles/incidents/16/{x}/{y}.mvt")).status_code == 401
    cells = await client.get(f"/tiles/hotspot-cells/12/{x >> 4}/{y >> 4}.mvt", headers=caller.headers)
    assert cells.status_code in (200, 204) and "problem" not in cells.headers.get("content-type", "")


async def test_last_used_is_written_once_a_minute_not_per_request(client, db, make_caller):
    caller = await make_caller("hot-eight", "viewer")
    for _ in range(5):
        assert (await client.get("/tiles", headers=caller.headers)).status_code == 200
    first = (await db.execute(text("SELECT last_used_at FROM api_token WHERE principal_id = :p"),
                              {"p": caller.principal_id})).scalar_one()
    assert first is not None
    for _ in range(5):
        assert (await client.get("/tiles", headers=caller.headers)).status_code == 200
    again = (await db.execute(text("SELECT last_used_at FROM api_token WHERE principal_id = :p"),
                              {"p": caller.principal_id})).scalar_one()
    assert again == first


async def test_an_expired_token_is_refused_from_memory_by_the_clock(app, client, make_caller):
    caller = await make_caller("hot-nine", "viewer")
    assert (await client.get("/tiles", headers=caller.headers)).status_code == 200
    # Expire it without any notification (the column changes, the trigger would say so): the
    # memory's copy carries the expiry, so move the copy's clock instead.
    live = app.state.live
    kept = live._tokens[digest(caller.token)]
    live._tokens[digest(caller.token)] = type(kept)(kept.principal, time.time() - 1)
    r = await client.get("/tiles", headers=caller.headers)
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")


# -- sizing -------------------------------------------------------------------------------------------

def test_the_pool_is_sized_to_the_servers_max_connections():
    s = Settings(database_url="postgresql://x/y", pool_size=5, max_overflow=5, workers=8, db_headroom=10)
    assert plan_pool(s, None) == PoolPlan(5, 5)                     # unknown server: as configured
    assert plan_pool(s, 1000, 3) == PoolPlan(5, 5)                  # room enough
    small = plan_pool(s, 100, 3)                                    # (100 - 3 - 10) // 8 - 1 listener = 9
    assert (small.size, small.overflow) == (5, 4) and "8 workers" in small.why
    tiny = plan_pool(s, 30, 3)                                      # (30 - 13) // 8 - 1 = 1
    assert (tiny.size, tiny.overflow) == (1, 0)
    total = 8 * (tiny.size + tiny.overflow + 1)
    assert total <= 30 - 3 - 10


def test_serve_runs_one_worker_per_core_by_default(monkeypatch):
    import uvicorn

    from app import cli
    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.setenv("SAFERMAP_WORKERS", "")
    monkeypatch.delenv("SAFERMAP_WORKERS")
    result = CliRunner().invoke(cli.app, ["serve"])
    cli.get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert seen["workers"] == (os.cpu_count() or 1) and seen["loop"] == "asyncio"
    assert os.environ["SAFERMAP_WORKERS"] == str(os.cpu_count() or 1)


# -- a statement the driver refuses ------------------------------------------------------------------

@pytest.mark.parametrize("maker", ["read_sessionmaker", "sessionmaker"])
async def test_a_statement_the_driver_refuses_leaves_no_lock_behind(app, database_url, maker):
    """asyncpg parses a statement before it encodes the arguments; one it cannot encode used to
    leave the pooled connection mid-statement, holding the table's lock until its next use, so a
    TRUNCATE or a migration waited on an idle pool."""
    async with getattr(app.state, maker)() as session:
        with pytest.raises(Exception, match="out of int64 range"):
            await session.execute(text("SELECT id FROM partnership OFFSET :o"), {"o": 2**70})
    with psycopg.connect(database_url, autocommit=True) as owner:
        owner.execute("SET lock_timeout = '2s'")
        owner.execute("BEGIN")
        owner.execute("LOCK TABLE partnership IN ACCESS EXCLUSIVE MODE")  # fails if a lock was left
        owner.execute("ROLLBACK")
        left = owner.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                             "AND application_name = 'safermap' AND state <> 'idle'").fetchone()
    assert left == (0,)


async def test_a_tile_to_draw_is_drawn_in_the_hot_path_and_a_failure_there_goes_to_the_route(
        app, client, db, make_caller, monkeypatch):
    """A caller known to memory: a tile not yet cached is drawn by the hot path with the route's own
    pipeline call (same bytes and headers as the route); should that fail, the route answers."""
    from app.api.hot_tiles import HotTiles
    from app.tiles.pipeline import TilePipeline
    caller = await make_caller("hot-draw", "viewer")
    ds = await factories.dataset(db, caller.partnership_id)
    await factories.incidents(db, caller.partnership_id, ds, [(LON, LAT, "Burglary", "2024-01", 4)])
    x, y = lonlat_to_tile(LON, LAT, 16)
    assert (await client.get("/tiles", headers=caller.headers)).status_code == 200  # the caller, now in memory
    hot_draws = []
    real_draw = HotTiles._draw

    async def draw(self, *args, **kwargs):
        hot_draws.append(args[3].tile)
        return await real_draw(self, *args, **kwargs)
    monkeypatch.setattr(HotTiles, "_draw", draw)

    url = f"/tiles/incidents/16/{x}/{y}.mvt"
    hot = await client.get(url, headers=caller.headers)
    assert hot.status_code == 200 and len(hot_draws) == 1
    app.state.tiles.cache.clear()
    with monkeypatch.context() as m:  # memory says nothing of the caller: the route draws it
        m.setattr(app.state.live, "known_token", lambda token: None)
        routed = await client.get(url, headers=caller.headers)
    assert len(hot_draws) == 1
    assert (hot.status_code, hot.content, dict(hot.headers)) == (routed.status_code, routed.content,
                                                                 dict(routed.headers))

    app.state.tiles.cache.clear()
    real_tile = TilePipeline.layer_tile
    calls = []

    async def fails_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the hot path's draw fails")
        return await real_tile(self, *args, **kwargs)
    monkeypatch.setattr(TilePipeline, "layer_tile", fails_once)
    again = await client.get(url, headers=caller.headers)
    assert len(hot_draws) == 2 and len(calls) == 2, "tried in the hot path, then answered by the route"
    assert (again.status_code, again.content) == (200, hot.content)
