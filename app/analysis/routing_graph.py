"""A partnership's walkable network in memory, for routing: numpy arrays of its segments and their
safety attributes, their lines in the metric CRS and in WGS84, and a spatial index for snapping.

Loaded once per worker and per network version (the data versions of route_edge, park and
street_lamp; every safety update bumps route_edge's) and kept in a small LRU: a query then reads
nothing of the graph from the database. Loading the whole graph on every query is what makes
pgRouting answers slow on large networks (a query of pgr_dijkstra builds its graph from its SQL each
time); here each query only masks the arrays with its ellipse (app/analysis/routing.py).

Measured on the 2-core machine (bench/routes_bench.py): the Helsinki network (4,174 segments) loads
in 0.14 s; a synthetic grid city of 100,000 segments in 2.2 s, and then holds about 200 MB.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.caches import Bounded

# The tables whose data versions name a loaded network.
NETWORK_SOURCES = ("route_edge", "park", "street_lamp")

EDGES = text("""
    SELECT e.id, e.source, e.target, e.length_m, e.covered_m, e.monitored_m, e.lamp_m, e.lit, e.highway,
           e.name, e.opening_hours, pk.name AS park, ST_AsBinary(e.geom) AS ll, ST_AsBinary(e.geom_m) AS m
    FROM route_edge e LEFT JOIN park pk ON pk.id = e.park_id
    WHERE e.partnership_id = :p AND e.geom_m IS NOT NULL
    ORDER BY e.id
""")
# Every data version of the partnership, and its metric CRS under the key '#srid' (one round trip).
VERSIONS = text("SELECT source, version FROM data_version WHERE partnership_id = :p "
                "UNION ALL SELECT '#srid', srid FROM partnership WHERE id = :p")


@dataclass
class Network:
    """Segment k runs from vertex u[k] to v[k] (compact indices) along lines_m[k]."""
    partnership_id: int
    srid: int
    key: tuple
    edge_id: np.ndarray        # int64 route_edge.id
    u: np.ndarray              # int32
    v: np.ndarray              # int32
    length: np.ndarray         # metres (ST_Length in the metric CRS)
    covered: np.ndarray        # metres inside working coverage
    monitored: np.ndarray      # metres inside live-monitored coverage
    lamp: np.ndarray           # metres within reach of a register lamp
    lit_tag: np.ndarray        # int8: 1 lit, 0 not lit, -1 untagged (OSM lit=*)
    name: list[str | None]
    highway: list[str | None]
    park: list[str | None]
    hours: list[str | None]
    hours_code: np.ndarray     # int32 per segment: index into hours_values, -1 none
    hours_values: list[str]    # the distinct opening_hours values
    lines_m: np.ndarray        # shapely LineStrings, metric CRS
    coords_ll: list[np.ndarray]  # each segment's lon/lat vertices, in the order of lines_m
    coords_m: list[np.ndarray]   # the same vertices in the metric CRS
    vx: np.ndarray             # vertex x, metric
    vy: np.ndarray
    pair_order: np.ndarray     # segments sorted by the pair of vertices they join (routing_search)
    component: np.ndarray      # connected piece of each vertex
    biggest: int               # the largest piece
    bbox_m: tuple[float, float, float, float]
    tree: shapely.STRtree = field(repr=False)
    to_m: Transformer = field(repr=False)
    to_ll: Transformer = field(repr=False)

    @property
    def n_vertices(self) -> int:
        return len(self.vx)

    @property
    def n_edges(self) -> int:
        return len(self.edge_id)

    def cumulative_m(self, k: int) -> np.ndarray:
        """Metres along segment k at each of its vertices."""
        xy = self.coords_m[k]
        return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])


# OSM lit=*: lit, not lit, or (anything else) untagged and left to the partnership's default.
LIT_YES = frozenset({"yes", "24/7", "automatic"})
LIT_NO = frozenset({"no", "limited", "disused"})


def lit_code(value: str | None) -> int:
    v = (value or "").strip().lower()
    return 1 if v in LIT_YES else 0 if v in LIT_NO else -1


def _codes(values: list[str | None]) -> tuple[np.ndarray, list[str]]:
    """Each segment's opening_hours as an index into the distinct values (-1: none)."""
    distinct = sorted({v for v in values if v})
    index = {v: i for i, v in enumerate(distinct)}
    return np.array([index.get(v, -1) if v else -1 for v in values], dtype=np.int32), distinct


def build(partnership_id: int, srid: int, key: tuple, rows: Sequence[Any]) -> Network:
    """The in-memory network from route_edge rows (EDGES)."""
    n = len(rows)
    edge_id = np.fromiter((r.id for r in rows), dtype=np.int64, count=n)
    src = np.fromiter((r.source for r in rows), dtype=np.int64, count=n)
    dst = np.fromiter((r.target for r in rows), dtype=np.int64, count=n)
    ids, inverse = np.unique(np.concatenate([src, dst]), return_inverse=True)
    u, v = inverse[:n].astype(np.int32), inverse[n:].astype(np.int32)
    lines_m = shapely.from_wkb([bytes(r.m) for r in rows]) if n else np.array([], dtype=object)
    lines_ll = shapely.from_wkb([bytes(r.ll) for r in rows]) if n else np.array([], dtype=object)
    length = np.fromiter((r.length_m for r in rows), dtype=float, count=n)
    vx, vy = np.zeros(len(ids)), np.zeros(len(ids))
    if n:
        starts = shapely.get_coordinates(shapely.get_point(lines_m, 0))
        ends = shapely.get_coordinates(shapely.get_point(lines_m, -1))
        # A vertex is where segment ends meet when rounded to 1 cm (safermap_build_route_network):
        # its coordinates are that rounded point, the same whichever segment names it.
        vx[u], vy[u] = np.round(starts[:, 0] * 100) / 100, np.round(starts[:, 1] * 100) / 100
        vx[v], vy[v] = np.round(ends[:, 0] * 100) / 100, np.round(ends[:, 1] * 100) / 100
    if len(ids):
        graph = coo_matrix((np.ones(n), (u, v)), shape=(len(ids), len(ids)))
        _, component = connected_components(graph, directed=False)
        biggest = int(np.bincount(component).argmax())
    else:
        component, biggest = np.zeros(0, dtype=np.int32), -1
    coords, index = (shapely.get_coordinates(lines_ll, return_index=True) if n
                     else (np.zeros((0, 2)), np.zeros(0, dtype=int)))
    splits = np.searchsorted(index, np.arange(1, n))
    coords_m, index_m = (shapely.get_coordinates(lines_m, return_index=True) if n
                         else (np.zeros((0, 2)), np.zeros(0, dtype=int)))
    splits_m = np.searchsorted(index_m, np.arange(1, n))
    b = shapely.total_bounds(lines_m) if n else (0.0, 0.0, 0.0, 0.0)
    bounds = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
    return Network(
        partnership_id, srid, key, edge_id, u, v, length,
        np.minimum(np.fromiter((r.covered_m for r in rows), dtype=float, count=n), length),
        np.minimum(np.fromiter((r.monitored_m for r in rows), dtype=float, count=n), length),
        np.minimum(np.fromiter((r.lamp_m for r in rows), dtype=float, count=n), length),
        np.fromiter((lit_code(r.lit) for r in rows), dtype=np.int8, count=n),
        [r.name for r in rows], [r.highway for r in rows], [r.park for r in rows],
        [r.opening_hours for r in rows], *_codes([r.opening_hours for r in rows]),
        lines_m, list(np.split(coords, splits)), list(np.split(coords_m, splits_m)), vx, vy,
        np.argsort(np.minimum(u, v).astype(np.int64) * (len(ids) + 2) + np.maximum(u, v), kind="stable"),
        component, biggest, bounds, shapely.STRtree(lines_m),
        Transformer.from_crs(4326, srid, always_xy=True), Transformer.from_crs(srid, 4326, always_xy=True))


_networks = Bounded(3)  # a worker holds ~200 MB for a network of 100,000 segments (measured)
_locks: dict[tuple[int, int], asyncio.Lock] = {}


async def versions(session: AsyncSession, partnership_id: int) -> dict[str, int]:
    """Every data version of the partnership and its metric CRS ('#srid'): one small query."""
    return dict((await session.execute(VERSIONS, {"p": partnership_id})).all())


async def network(session: AsyncSession, partnership_id: int,
                  current: dict[str, int] | None = None) -> Network:
    """The partnership's network as it is now: from this worker's cache when no version changed."""
    current = current if current is not None else await versions(session, partnership_id)
    srid = current["#srid"]
    key = (partnership_id, srid, *(current.get(s) for s in NETWORK_SOURCES))
    found: Network | None = _networks.get(key)
    if found is not None:
        return found
    # One load per partnership at a time: concurrent first queries wait for it.
    lock = _locks.setdefault((id(asyncio.get_running_loop()), partnership_id), asyncio.Lock())
    async with lock:
        found = _networks.get(key)
        if found is None:
            rows = (await session.execute(EDGES, {"p": partnership_id})).all()
            found = await asyncio.to_thread(build, partnership_id, srid, key, rows)
            _networks[key] = found
    assert found is not None
    return found


def clear() -> None:
    """Forget every loaded network (tests, benchmarks)."""
    _networks.clear()
