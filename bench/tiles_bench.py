"""Tile benchmark: SaferMap beside tipg (from PyPI) and the bare ST_AsMVT query, in one run.

1,000,000 incidents over Greater Manchester, clustered around town centres and snapped to ~40k
points, in a scratch database on the embedded cluster (built once, reused while its row count and
generator version match). 500 shuffled tiles z12-16 that contain data, drawn with a fixed seed.
Every line is measured over the same tiles by 16 concurrent clients on loopback, so each claim is
a ratio measured in one run.

    python -m bench.tiles_bench
"""
from __future__ import annotations

import asyncio
import collections
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import httpx
import psycopg

from app.auth import digest, new_secret
from app.embedded import resolve_port
from app.settings import ROOT, Settings

# The embedded cluster, on whatever port this checkout resolved (54329 unless that was taken).
SERVER = f"postgresql://postgres@127.0.0.1:{resolve_port(Settings(database_url=None))}"
# SAFERMAP_BENCH_TILES_DB: another scratch database (e.g. a copy, so helpers do not migrate a shared one)
DB_NAME = os.environ.get("SAFERMAP_BENCH_TILES_DB", "safermap_bench_tiles")
DB_URL = f"{SERVER}/{DB_NAME}"
INCIDENTS = 1_000_000
POINTS = 40_000
TILES = 500
ZOOMS = range(12, 17)
CLIENTS = 16
SEED = 42
GENERATOR = "gm-towns-v1"  # bump when the data below changes, so an old database is rebuilt
TIPG_VENV = ROOT / "bench" / ".venv-tipg"
FIELDS = ("category", "month_label", "location_text", "lsoa_name", "outcome", "dataset")

# Town centres of Greater Manchester: (name, lon, lat, weight, spread in metres).
TOWNS = [
    ("Manchester", -2.2426, 53.4808, 30, 1500), ("Salford", -2.2901, 53.4875, 8, 1200),
    ("Bolton", -2.4282, 53.5769, 9, 1300), ("Bury", -2.2966, 53.5933, 5, 1000),
    ("Rochdale", -2.1561, 53.6158, 6, 1100), ("Oldham", -2.1114, 53.5409, 7, 1200),
    ("Stockport", -2.1575, 53.4106, 8, 1300), ("Wigan", -2.6318, 53.5448, 7, 1200),
    ("Ashton-under-Lyne", -2.0952, 53.4897, 4, 900), ("Altrincham", -2.3486, 53.3877, 3, 900),
    ("Sale", -2.3220, 53.4246, 3, 900), ("Leigh", -2.5150, 53.4975, 3, 900),
    ("Stretford", -2.3090, 53.4466, 2, 800), ("Hyde", -2.0787, 53.4510, 2, 800),
    ("Middleton", -2.2003, 53.5526, 2, 800), ("Wythenshawe", -2.2646, 53.3926, 3, 1200),
]
CATEGORIES = [("Violence and sexual offences", 30), ("Anti-social behaviour", 22), ("Shoplifting", 8),
              ("Criminal damage and arson", 8), ("Vehicle crime", 7), ("Other theft", 7), ("Burglary", 5),
              ("Public order", 5), ("Drugs", 2), ("Theft from the person", 2), ("Robbery", 1),
              ("Bicycle theft", 1), ("Possession of weapons", 1), ("Other crime", 1)]
OUTCOMES = ["Investigation complete; no suspect identified", "Unable to prosecute suspect",
            "Under investigation", "Awaiting court outcome", "Local resolution", ""]
STREETS = ["High Street", "Market Street", "Church Lane", "Station Road", "Park Road", "Victoria Street",
           "Mill Lane", "King Street", "Oxford Road", "Chapel Street", "Bridge Street", "George Street",
           "Shopping Area", "Supermarket", "Parking Area", "Petrol Station", "Nightclub", "Sports/Recreation Area"]

LOAD_SQL = """
SELECT setseed(0.42);
CREATE TEMP TABLE town (name text, lon float8, lat float8, weight float8, spread float8);
INSERT INTO town VALUES {towns};
CREATE TEMP TABLE town_cum AS
    SELECT *, sum(weight) OVER (ORDER BY name) / sum(weight) OVER () AS cum FROM town;
-- ~40k snapped points: 85% around town centres (exponential fall-off), 15% anywhere in the county
CREATE TEMP TABLE pt AS
WITH draws AS (
    SELECT g AS id, random() AS r_town, random() AS r_d, random() AS r_a, random() AS r_bg,
           random() AS r_x, random() AS r_y FROM generate_series(1, {points}) g
), placed AS (
    SELECT d.id,
           CASE WHEN d.r_bg < 0.15 THEN -2.75 + d.r_x * 0.85
                ELSE t.lon + t.spread * -ln(1 - d.r_d) * sin(2 * pi() * d.r_a) / (111320 * cos(radians(t.lat))) END AS lon,
           CASE WHEN d.r_bg < 0.15 THEN 53.33 + d.r_y * 0.36
                ELSE t.lat + t.spread * -ln(1 - d.r_d) * cos(2 * pi() * d.r_a) / 111320 END AS lat
    FROM draws d CROSS JOIN LATERAL (
        SELECT * FROM town_cum WHERE cum >= d.r_town ORDER BY cum LIMIT 1) t
)
SELECT id,
       ST_SetSRID(ST_MakePoint(round(least(greatest(lon, -2.75), -1.9)::numeric, 5),
                               round(least(greatest(lat, 53.33), 53.69)::numeric, 5)), 4326) AS geom,
       'On or near ' || (ARRAY[{streets}])[1 + id % {n_streets}] AS location_text,
       'E0100' || lpad((id % 1700)::text, 4, '0') AS lsoa_code,
       'Greater Manchester ' || lpad((id % 1700)::text, 3, '0') || chr(65 + id % 5) AS lsoa_name
FROM placed;
CREATE UNIQUE INDEX ON pt (id);
ANALYZE pt;
-- 1M incidents on those points, skewed so that some points are hotspots
INSERT INTO incident (partnership_id, dataset_id, external_ref, category, month, geom, location_text,
                      lsoa_code, lsoa_name, outcome)
SELECT {pid}, {ds}, CASE WHEN s.cat = 'Anti-social behaviour' THEN NULL ELSE md5(s.g::text) END,
       s.cat, DATE '2023-01-01' + make_interval(months => s.m), pt.geom, pt.location_text,
       pt.lsoa_code, pt.lsoa_name, (ARRAY[{outcomes}])[1 + s.o]
FROM (SELECT g, 1 + floor({points} * power(random(), 2.5))::int AS pid,
             (ARRAY[{categories}])[1 + floor(random() * {n_categories})::int] AS cat,
             floor(random() * 24)::int AS m, floor(random() * {n_outcomes})::int AS o
      FROM generate_series(1, {incidents}) g) s
JOIN pt ON pt.id = s.pid;
"""

INCIDENT_INDEXES = {
    "incident_geom_idx": "CREATE INDEX incident_geom_idx ON incident USING gist (geom)",
    "incident_dataset_month_idx": "CREATE INDEX incident_dataset_month_idx ON incident (dataset_id, month)",
    "incident_partnership_month_idx":
        "CREATE INDEX incident_partnership_month_idx ON incident (partnership_id, month)",
}

# (a) the floor: the bare query, every point with the same fields SaferMap ships above its cells
FLOOR_SQL = f"""
SELECT ST_AsMVT(t, 'incidents', 4096, 'geom', 'id') FROM (
    SELECT ST_AsMVTGeom(ST_Transform(i.geom, 3857), ST_TileEnvelope($1, $2, $3), 4096, 64, true) AS geom,
           i.id, {", ".join("i." + f for f in FIELDS)}
    FROM layer_incidents i
    WHERE i.geom && ST_Transform(ST_TileEnvelope($1, $2, $3, margin => 64.0 / 4096), 4326)
) t"""


def _lit(values) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the database --------------------------------------------------------------------------------------
def ensure_database() -> tuple[int, float, float]:
    """Build the scratch database unless a complete one is there. Returns (partnership id, load s,
    incident cells build s)."""
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (generator text, incidents bigint, partnership int)")
    from app.cli import migrate
    migrate(Settings(database_url=DB_URL))
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        meta = conn.execute("SELECT generator, incidents, partnership FROM bench_meta").fetchone()
        if meta and meta[0] == GENERATOR and meta[1] == INCIDENTS:
            count = conn.execute("SELECT count(*) FROM incident WHERE partnership_id = %s", (meta[2],)).fetchone()[0]
            if count == INCIDENTS:
                log(f"reusing {DB_NAME} ({count:,} incidents)")
                return meta[2], 0.0, build_cells(conn, meta[2])
        log(f"building {DB_NAME}: {INCIDENTS:,} incidents on ~{POINTS:,} points ...")
        started = time.perf_counter()
        conn.execute("TRUNCATE partnership, bench_meta, data_version RESTART IDENTITY CASCADE")
        pid = conn.execute("INSERT INTO partnership (slug, name) VALUES ('bench', 'Bench CSP') RETURNING id").fetchone()[0]
        ds = conn.execute("INSERT INTO dataset (partnership_id, source_key, name, kind) VALUES "
                          "(%s, 'police-uk:greater-manchester', 'Greater Manchester Police', 'police_uk') "
                          "RETURNING id", (pid,)).fetchone()[0]
        for name in INCIDENT_INDEXES:  # an index built after the load is about twice as fast
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        cats = [c for c, w in CATEGORIES for _ in range(w)]
        sql = LOAD_SQL.format(
            towns=", ".join(f"('{n}', {lon}, {lat}, {w}, {s})" for n, lon, lat, w, s in TOWNS),
            pid=int(pid), ds=int(ds), points=POINTS, incidents=INCIDENTS, streets=_lit(STREETS), n_streets=len(STREETS),
            outcomes=_lit(OUTCOMES), n_outcomes=len(OUTCOMES), categories=_lit(cats), n_categories=len(cats))
        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = off")
            for statement in sql.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
        loaded = time.perf_counter()
        for ddl in INCIDENT_INDEXES.values():
            conn.execute(ddl)
        conn.execute("ANALYZE incident")
        conn.execute("ANALYZE dataset")
        conn.execute("INSERT INTO bench_meta VALUES (%s, %s, %s)", (GENERATOR, INCIDENTS, pid))
        done = time.perf_counter()
        log(f"  loaded in {loaded - started:.1f} s, indexes + ANALYZE in {done - loaded:.1f} s")
        return pid, done - started, build_cells(conn, pid)


def build_cells(conn: psycopg.Connection, pid: int) -> float:
    """The low-zoom aggregate (app/sql/incident_cells.sql), built once per data version as an import
    would leave it (a no-op when it is current). Without it the first low-zoom tiles after a change
    are drawn from every point while it is rebuilt in the background. Returns seconds spent."""
    started = time.perf_counter()
    conn.execute("SELECT safermap_build_incident_cells(%s)", (pid,))
    conn.execute("VACUUM ANALYZE incident_cell")  # as autovacuum would: visibility map, statistics
    spent = time.perf_counter() - started
    log(f"incident cells current ({spent:.1f} s)")
    return spent


def make_token(pid: int) -> str:
    secret = new_secret()
    with psycopg.connect(DB_URL, autocommit=True) as conn:
        principal = conn.execute("INSERT INTO principal (partnership_id, name, role) VALUES (%s, 'bench', 'viewer') "
                                 "RETURNING id", (pid,)).fetchone()[0]
        conn.execute("INSERT INTO api_token (principal_id, name, token_hash) VALUES (%s, 'bench', %s)",
                     (principal, digest(secret)))
    return secret


def pick_tiles() -> list[tuple[int, int, int]]:
    """500 distinct tiles z12-16 holding data: tiles around randomly drawn incidents, so dense
    places are drawn as often as people look at them. Fixed seed; shuffled."""
    from app.tiles.sql import lonlat_to_tile
    with psycopg.connect(DB_URL) as conn:
        rows = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM incident TABLESAMPLE BERNOULLI (0.5) "
                            "REPEATABLE (42) WHERE geom IS NOT NULL ORDER BY id").fetchall()
    rng = random.Random(SEED)
    rng.shuffle(rows)
    chosen: dict[tuple[int, int, int], None] = {}
    for lon, lat in rows:
        z = rng.choice(ZOOMS)
        chosen[(z, *lonlat_to_tile(lon, lat, z))] = None
        if len(chosen) == TILES:
            break
    tiles = list(chosen)
    rng.shuffle(tiles)
    return tiles


# -- measuring -----------------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    zooms: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    note: str = ""

    def row(self) -> dict:
        lat = sorted(self.latencies)
        n = len(lat)
        by_zoom = {}
        for z in sorted(set(self.zooms)):
            zl = sorted(l for l, zz in zip(self.latencies, self.zooms) if zz == z)
            by_zoom[z] = round(1000 * zl[len(zl) // 2], 1)
        return {"name": self.name, "requests": n, "req_per_s": round(n / self.seconds, 1),
                "p50_ms": round(1000 * lat[n // 2], 1), "p99_ms": round(1000 * lat[min(n - 1, int(n * 0.99))], 1),
                "mean_kb": round(statistics.mean(self.sizes) / 1024, 1), "max_kb": round(max(self.sizes) / 1024, 1),
                "p50_ms_by_zoom": by_zoom, "statuses": dict(self.statuses), "note": self.note}


async def drive(name: str, tiles: list[tuple[int, int, int]], workers: int,
                fetch: Callable[[int, tuple[int, int, int]], Awaitable[tuple[int, int]]], note: str = "") -> Result:
    """`workers` clients pull tiles off one shared list until it is empty (a bounded loop)."""
    result = Result(name, note=note)
    queue = list(enumerate(tiles))
    queue.reverse()

    async def worker(wid: int) -> None:
        while queue:
            i, t = queue.pop()
            start = time.perf_counter()
            status, size = await fetch(wid, t)
            result.latencies.append(time.perf_counter() - start)
            result.sizes.append(size)
            result.zooms.append(t[0])
            result.statuses[status] = result.statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    result.seconds = time.perf_counter() - started
    return result


class FairConnections:
    """Connections handed out first come, first served: a released one goes straight to the
    longest waiter (an asyncio.Queue lets the releasing client take it back at once, which starves
    the others and would make the floor's tail a property of the queue, not of the query)."""

    def __init__(self, conns: list[asyncpg.Connection]) -> None:
        self.all, self.free = list(conns), list(conns)
        self.waiters: collections.deque[asyncio.Future[asyncpg.Connection]] = collections.deque()

    async def get(self) -> asyncpg.Connection:
        if self.free and not self.waiters:
            return self.free.pop()
        waiter: asyncio.Future[asyncpg.Connection] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter

    def put(self, conn: asyncpg.Connection) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.free.append(conn)


async def floor_pass(tiles, clients: int = 2) -> Result:
    """The bare query on 2 connections (one per core: the database's best throughput here). With 2
    clients there is no queue, so its latencies are the queries' own; with CLIENTS clients, as every
    HTTP line has, they queue for the 2 connections first come, first served, and its latencies are
    those of an ideal server under the same load: the reference for SaferMap's p99."""
    pool = FairConnections([await asyncpg.connect(DB_URL, server_settings={"jit": "off"}) for _ in range(2)])
    try:
        async def fetch(wid: int, t):
            conn = await pool.get()
            try:
                tile = await conn.fetchval(FLOOR_SQL, *t)
            finally:
                pool.put(conn)
            return 200, len(tile or b"")
        name = "floor: bare ST_AsMVT, every point, 2 conns" + (f", {clients} clients" if clients != 2 else "")
        return await drive(name, tiles, clients, fetch)
    finally:
        for conn in pool.all:
            await conn.close()


async def http_pass(name: str, url_of: Callable[[tuple[int, int, int]], str], tiles, headers: dict,
                    etags: dict | None = None, use_etags: bool = False, note: str = "") -> Result:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(limits=limits, timeout=120, headers=headers) as client:
        async def fetch(wid: int, t):
            h = {"If-None-Match": etags[t]} if use_etags and etags and t in etags else None
            r = await client.get(url_of(t), headers=h)
            if r.status_code not in (200, 204, 304):
                raise RuntimeError(f"{name}: {url_of(t)} answered {r.status_code}: {r.text[:300]}")
            if etags is not None and not use_etags and "etag" in r.headers:
                etags[t] = r.headers["etag"]
            return r.status_code, len(r.content)
        return await drive(name, tiles, CLIENTS, fetch, note)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess on a loopback port, stopped (by its own pid) on exit."""

    def __init__(self, argv: list[str], env: dict, ready_path: str, headers: dict | None = None) -> None:
        self.port = _free_port()
        self.argv = [*argv, "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self.env, self.ready_path, self.headers = env, ready_path, headers or {}
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env={**os.environ, **self.env})
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited with {self.proc.returncode}")
            try:
                if httpx.get(self.base + self.ready_path, headers=self.headers, timeout=2).status_code == 200:
                    time.sleep(1.0)  # let every worker finish starting
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"{' '.join(self.argv[:3])} did not start")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def ensure_tipg() -> str:
    uvicorn = TIPG_VENV / "bin" / "uvicorn"
    if not uvicorn.exists():
        log("installing tipg into bench/.venv-tipg ...")
        subprocess.run(["python3", "-m", "venv", str(TIPG_VENV)], check=True)
        subprocess.run([str(TIPG_VENV / "bin" / "pip"), "install", "-q", "tipg", "uvicorn"], check=True)
    version = subprocess.run([str(TIPG_VENV / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('tipg'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return version


def safermap_server(workers: int) -> Server:
    env = {"DATABASE_URL": DB_URL, "SAFERMAP_SECRET_KEY": secrets.token_urlsafe(16),
           "SAFERMAP_VAR_DIR": tempfile.mkdtemp(prefix="safermap-bench-"), "SAFERMAP_WORKERS": str(workers),
           # one token asks for every tile: no rate limit in the way
           "SAFERMAP_RATE_LIMIT_PER_MINUTE": "10000000", "SAFERMAP_TILE_RATE_LIMIT_PER_MINUTE": "10000000"}
    return Server([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--workers", str(workers),
                   "--loop", "asyncio", "--no-access-log"], env, "/health")  # as `safermap serve` runs it


def tipg_server(max_features: int) -> Server:
    env = {"DATABASE_URL": DB_URL, "TIPG_DB_SCHEMAS": '["public"]', "TIPG_DB_TABLES": '["public.layer_incidents"]',
           "TIPG_DB_SPATIAL_EXTENT": "false", "TIPG_DB_DATETIME_EXTENT": "false",
           "TIPG_MAX_FEATURES_PER_TILE": str(max_features)}
    return Server([str(TIPG_VENV / "bin" / "uvicorn"), "tipg.main:app", "--workers", "1", "--no-access-log"],
                  env, "/healthz")


# -- the run -------------------------------------------------------------------------------------------
async def measure(tiles, token: str, tipg_version: str) -> list[Result]:
    results: list[Result] = []
    log("warming the database cache (unmeasured) ...")
    await floor_pass(tiles[:100])
    log("(a) floor ...")
    results.append(await floor_pass(tiles))
    results.append(await floor_pass(tiles, CLIENTS))

    auth = {"Authorization": f"Bearer {token}"}
    for workers in (1, 2):
        log(f"(b) SaferMap, {workers} worker(s) ...")
        with safermap_server(workers) as srv:
            def url(t, b=srv.base):
                return f"{b}/tiles/incidents/{t[0]}/{t[1]}/{t[2]}.mvt"
            etags: dict = {}
            results.append(await http_pass(f"SaferMap {workers}w: cold cache", url, tiles, auth, etags,
                                           note="cells to z15, each incident at z16"))
            results.append(await http_pass(f"SaferMap {workers}w: warm, cache hits", url, tiles, auth,
                                           note="same tiles again: served from the in-process LRU"
                                                + (" (per worker)" if workers > 1 else "")))
            results.append(await http_pass(f"SaferMap {workers}w: warm, If-None-Match", url, tiles, auth, etags,
                                           use_etags=True, note="304: one data_version lookup, no tile drawn"))

    props = ",".join(FIELDS)
    for cap, label in ((10_000_000, "every point"), (10_000, "default cap 10k")):
        log(f"(c) tipg {tipg_version}, 1 worker, {label} ...")
        with tipg_server(cap) as srv:
            def url(t, b=srv.base):
                return (f"{b}/collections/public.layer_incidents/tiles/WebMercatorQuad/"
                                                     f"{t[0]}/{t[1]}/{t[2]}?properties={props}")
            results.append(await http_pass(f"tipg {tipg_version} 1w: {label}", url, tiles, {},
                                           note=f"TIPG_MAX_FEATURES_PER_TILE={cap}"))
    return results


def print_table(rows: list[dict]) -> None:
    head = f"{'line':<42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean KB':>8} {'max KB':>8}  statuses"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['name']:<42} {r['req_per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['mean_kb']:>8} "
              f"{r['max_kb']:>8}  {r['statuses']}")
    print()
    shown = [r for r in rows if r["name"].startswith("floor")] + [r for r in rows if "1w: cold" in r["name"]]
    print("p50 ms by zoom: " + "; ".join(f"{r['name']} {r['p50_ms_by_zoom']}" for r in shown))


def run(report: dict) -> dict:
    t0 = time.perf_counter()
    pid, load_s, cells_s = ensure_database()
    tiles = pick_tiles()
    token = make_token(pid)
    tipg_version = ensure_tipg()
    zooms = {z: sum(1 for t in tiles if t[0] == z) for z in ZOOMS}
    log(f"{len(tiles)} tiles {zooms}; {CLIENTS} concurrent clients; {os.cpu_count()} CPUs")
    load_before = os.getloadavg()[0]
    results = asyncio.run(measure(tiles, token, tipg_version))
    load_after = os.getloadavg()[0]
    rows = [r.row() for r in results]
    by = {r["name"]: r for r in rows}
    floor = rows[0]
    cold = by["SaferMap 1w: cold cache"]
    tipg = next(r for r in rows if r["name"].endswith("every point"))
    ratios = {
        "SaferMap 1w cold / tipg (req/s)": round(cold["req_per_s"] / tipg["req_per_s"], 2),
        "SaferMap 1w cold / floor (req/s)": round(cold["req_per_s"] / floor["req_per_s"], 2),
        "SaferMap 2w cold / tipg (req/s)": round(by["SaferMap 2w: cold cache"]["req_per_s"] / tipg["req_per_s"], 2),
        "SaferMap 1w cache hits / tipg (req/s)":
            round(by["SaferMap 1w: warm, cache hits"]["req_per_s"] / tipg["req_per_s"], 2),
        "SaferMap 1w 304 / tipg (req/s)":
            round(by["SaferMap 1w: warm, If-None-Match"]["req_per_s"] / tipg["req_per_s"], 2),
        "tipg p99 / SaferMap 1w cold p99": round(tipg["p99_ms"] / cold["p99_ms"], 2),
        f"floor ({CLIENTS} clients) p99 / SaferMap 1w cold p99":
            round(rows[1]["p99_ms"] / cold["p99_ms"], 2),
        "floor mean KB / SaferMap cold mean KB": round(floor["mean_kb"] / cold["mean_kb"], 2),
    }
    print_table(rows)
    print()
    for k, v in ratios.items():
        print(f"{k:<42} {v:>8}")
    report["tiles"] = {"tiles": len(tiles), "by_zoom": zooms, "clients": CLIENTS, "incidents": INCIDENTS,
                       "build_s": round(load_s, 1), "cells_build_s": round(cells_s, 1), "cpus": os.cpu_count(), "results": rows, "ratios": ratios,
                       "wall_s": round(time.perf_counter() - t0, 1)}
    report["tiles"]["load_avg_1m"] = [round(load_before, 2), round(load_after, 2)]
    print(f"\nwall time {report['tiles']['wall_s']} s; 1-minute load average before/after "
          f"{load_before:.2f}/{load_after:.2f} (others' work on this machine skews every line alike)")
    return report


if __name__ == "__main__":
    run({})
