"""Gap analysis: how much of a partnership's crime working cameras cover, and where the rest is.

Incidents are read through the sharing function and judged at the position the caller is given:
exact rows at their place, sanitised rows at their anonymous point; aggregate rows cannot be placed
and are counted as "unknown position". Coverage is the partnership's union of working cameras'
coverage (`coverage_union`, migration 0012); with `planned`, planned cameras count as working too.
Only the caller's own partnership's incidents and cameras are used, even for a hub agency that
may see other partnerships' incidents.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.auth import Principal
from app.params import date_literal

VISIBLE = f"safermap_visible_incidents{sharing.FUNCTION_ARGS}"

# Rebuild the union when it is not the one of the cameras as they are now (normally the commit
# trigger has done it; this covers a failed rebuild or a partnership whose CRS changed).
ENSURE_UNION = text("""
    SELECT CASE WHEN safermap_coverage_union_fresh(:p) THEN -1 ELSE safermap_refresh_coverage_union(:p) END
""")

# Counts in one pass, grouped three ways (all, by category, by area). Each distinct position is
# tested against the union once (police.uk positions are shared by many incidents); positions are
# matched by their bytes, which hash exactly.
GAP_COUNTS = f"""
    WITH v AS MATERIALIZED (
        SELECT i.geom, i.category, i.lsoa_code, i.lsoa_name, i.level, count(*) AS n
        FROM {VISIBLE} AS i
        WHERE i.partnership_id = :p {{filters}}
        GROUP BY 1, 2, 3, 4, 5
    ), pos AS MATERIALIZED (
        SELECT DISTINCT ST_AsEWKB(geom) AS k, geom FROM v
        WHERE geom IS NOT NULL AND level IN ('sanitised', 'exact')
    ), flags AS (
        SELECT pos.k,
               EXISTS (SELECT 1 FROM coverage_union u WHERE u.partnership_id = :p AND u.kind = 'working'
                       AND ST_Intersects(u.geom, pos.geom)) AS working,
               EXISTS (SELECT 1 FROM coverage_union u WHERE u.partnership_id = :p
                       AND ST_Intersects(u.geom, pos.geom)) AS with_planned
        FROM pos
    ), r AS (
        SELECT v.category, v.lsoa_code, v.lsoa_name, v.level, v.n, v.geom IS NULL AS no_location,
               v.geom IS NOT NULL AND v.level = 'aggregate' AS unknown,
               f.k IS NOT NULL AS placed, coalesce(f.working, false) AS working,
               coalesce(f.with_planned, false) AS with_planned
        FROM v LEFT JOIN flags f ON v.level <> 'aggregate' AND f.k = ST_AsEWKB(v.geom)
    )
    SELECT GROUPING(category) = 0 AS by_category, GROUPING(lsoa_code) = 0 AS by_area,
           category, lsoa_code, min(lsoa_name) AS lsoa_name,
           coalesce(sum(n), 0)::bigint AS incidents,
           coalesce(sum(n) FILTER (WHERE no_location), 0)::bigint AS no_location,
           coalesce(sum(n) FILTER (WHERE unknown), 0)::bigint AS unknown_position,
           coalesce(sum(n) FILTER (WHERE placed), 0)::bigint AS placed,
           coalesce(sum(n) FILTER (WHERE working), 0)::bigint AS covered,
           coalesce(sum(n) FILTER (WHERE with_planned), 0)::bigint AS covered_with_planned,
           coalesce(bool_and(level = 'exact'), true) AS all_exact
    FROM r
    GROUP BY GROUPING SETS ((), (category), (lsoa_code))
"""

# Street length inside coverage, in the partnership's metric CRS. Union pieces do not overlap, but
# they meet exactly at the union's grid lines (and at ST_Subdivide's cuts): a street running along
# such an edge lies in the pieces on both sides. So each street's covered parts are dissolved
# (ST_UnaryUnion keeps one of two coinciding lines) before they are measured.
STREET_LENGTHS = text("""
    WITH s AS MATERIALIZED (
        SELECT st.id, ST_Transform(st.geom, pa.srid) AS g
        FROM street st JOIN partnership pa ON pa.id = st.partnership_id
        WHERE st.partnership_id = :p
    ), parts AS (
        SELECT s.id, u.kind, ST_CollectionExtract(ST_Intersection(s.g, u.geom_m), 2) AS g
        FROM s JOIN coverage_union u ON u.partnership_id = :p AND ST_Intersects(u.geom_m, s.g)
    ), per_street AS (
        SELECT ST_Length(ST_UnaryUnion(ST_Collect(g) FILTER (WHERE kind = 'working'))) AS working_m,
               ST_Length(ST_UnaryUnion(ST_Collect(g))) AS with_planned_m
        FROM parts GROUP BY id
    )
    SELECT (SELECT coalesce(sum(ST_Length(g)), 0) FROM s) AS total_m,
           coalesce(sum(working_m), 0) AS working_m, coalesce(sum(with_planned_m), 0) AS with_planned_m
    FROM per_street
""")

COVERAGE_FACTS = text("""
    SELECT (SELECT count(*) FROM camera WHERE partnership_id = :p AND status = 'operational') AS operational,
           (SELECT count(*) FROM camera WHERE partnership_id = :p AND status = 'planned') AS planned,
           (SELECT count(*) FROM camera WHERE partnership_id = :p AND status = 'faulty') AS faulty,
           (SELECT coalesce(sum(ST_Area(geom_m)), 0) FROM coverage_union
            WHERE partnership_id = :p AND kind = 'working') AS working_m2,
           (SELECT coalesce(sum(ST_Area(geom_m)), 0) FROM coverage_union
            WHERE partnership_id = :p AND kind = 'planned') AS planned_m2
""")

# The densest groups of uncovered incidents: DBSCAN in metres over every placed incident outside
# the coverage kinds given. Coverage is tested once per distinct position, then each incident is a
# row again (duplicates count, so a shared police.uk point with enough incidents is a cluster).
CLUSTERS = f"""
    WITH v AS MATERIALIZED (
        SELECT i.geom, i.category, i.level, count(*) AS n
        FROM {VISIBLE} AS i
        WHERE i.partnership_id = :p AND i.geom IS NOT NULL AND i.level IN ('sanitised', 'exact') {{filters}}
        GROUP BY 1, 2, 3
    ), pos AS MATERIALIZED (
        SELECT DISTINCT ST_AsEWKB(geom) AS k, geom FROM v
    ), open AS (
        SELECT pos.k, ST_Transform(pos.geom, CAST(:srid AS integer)) AS g FROM pos
        WHERE NOT EXISTS (SELECT 1 FROM coverage_union c WHERE c.partnership_id = :p
                          AND c.kind = ANY(:kinds) AND ST_Intersects(c.geom, pos.geom))
    ), u AS (
        SELECT o.g, v.category, v.level
        FROM v JOIN open o ON o.k = ST_AsEWKB(v.geom) CROSS JOIN LATERAL generate_series(1, v.n)
    ), c AS (
        SELECT u.*, ST_ClusterDBSCAN(g, eps => :eps, minpoints => :minpoints) OVER () AS cid FROM u
    ), agg AS (
        SELECT count(*) AS n, ST_Collect(g) AS pts, mode() WITHIN GROUP (ORDER BY category) AS top_category,
               bool_and(level = 'exact') AS all_exact, bool_or(level = 'exact') AS any_exact
        FROM c WHERE cid IS NOT NULL GROUP BY cid
    )
    SELECT n, top_category, all_exact, any_exact,
           ST_X(ST_Transform(ST_Centroid(pts), 4326)) AS lon, ST_Y(ST_Transform(ST_Centroid(pts), 4326)) AS lat,
           ST_MaxDistance(ST_Centroid(pts), pts) AS radius_m
    FROM agg ORDER BY n DESC, lon, lat LIMIT :limit
"""


@dataclass(frozen=True)
class IncidentFilter:
    """Which incidents count: months overlapping from..to, and categories (none = all)."""
    date_from: date | None = None
    date_to: date | None = None
    categories: tuple[str, ...] = ()

    def sql(self, alias: str = "i") -> str:
        # Dates as literals: a plan for these dates, not a generic one (app.params.date_literal).
        clauses = []
        if self.date_from:  # a month matches when it overlaps
            clauses.append(f"{alias}.month >= {date_literal(self.date_from.replace(day=1))}")
        if self.date_to:
            clauses.append(f"{alias}.month <= {date_literal(self.date_to)}")
        if self.categories:
            clauses.append(f"{alias}.category = ANY(:categories)")
        return "".join(f" AND {c}" for c in clauses)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.categories:
            out["categories"] = list(self.categories)
        return out


@dataclass(frozen=True)
class GapOptions:
    include_planned: bool = False
    eps_m: float = 25.0
    min_points: int = 5
    max_clusters: int = 10
    max_areas: int = 100


async def ensure_union(session: AsyncSession, partnership_id: int) -> None:
    await session.execute(ENSURE_UNION, {"p": partnership_id})


def share(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return round(part / whole, 4)


def figures(row: Any, covered_col: str, k: int) -> dict[str, Any]:
    """One group's counts as shown to the caller. A count of 1..k-1 is held back unless the caller
    sees every incident in the group exactly; covered and uncovered are held back together (either
    follows from the other and the placed total), and the share with them."""
    def shown(n: int) -> int | None:
        return None if sharing.suppressed(n, row.all_exact, k) else n

    covered = getattr(row, covered_col)
    uncovered = row.placed - covered
    hide_split = shown(covered) is None or shown(uncovered) is None
    counts = {
        "incidents": shown(row.incidents),
        "no_location": shown(row.no_location),
        "unknown_position": shown(row.unknown_position),
        "placed": shown(row.placed),
        "covered": None if hide_split else covered,
        "uncovered": None if hide_split else uncovered,
    }
    return {**counts, "share_covered": share(counts["covered"], counts["placed"]),
            "suppressed": any(v is None for v in counts.values())}


def _split(rows: Sequence[Any]) -> tuple[Any | None, list[Any], list[Any]]:
    total = next((r for r in rows if not r.by_category and not r.by_area), None)
    cats = [r for r in rows if r.by_category]
    areas = [r for r in rows if r.by_area]
    return total, cats, areas


def _section(rows: Sequence[Any], covered_col: str, k: int, max_areas: int) -> dict[str, Any]:
    total, cats, areas = _split(rows)
    cats.sort(key=lambda r: (-(r.placed - getattr(r, covered_col)), r.category))
    # Most uncovered first; ties by code so the list is stable. Incidents of data sets that carry
    # no LSOA (partner data) fall in one group with code null.
    areas.sort(key=lambda r: (-(r.placed - getattr(r, covered_col)), r.lsoa_code or "~"))
    return {
        "totals": figures(total, covered_col, k) if total else None,
        "by_category": [{"category": r.category, **figures(r, covered_col, k)} for r in cats],
        "by_area": {
            "kind": "lsoa",
            "note": "Areas are the LSOAs the incidents carry (police.uk); no boundary table is loaded yet.",
            "total_areas": len(areas),
            "areas": [{"code": r.lsoa_code, "name": r.lsoa_name, **figures(r, covered_col, k)}
                      for r in areas[:max_areas]],
        },
    }


async def _clusters(session: AsyncSession, principal: Principal, flt: IncidentFilter, kinds: list[str],
                    opts: GapOptions, k: int) -> tuple[list[dict[str, Any]], bool]:
    """Top clusters of uncovered incidents, and whether any is made of exact positions."""
    rows = (await session.execute(text(CLUSTERS.format(filters=flt.sql())), {
        **sharing.access_params(principal), **flt.params(), "srid": principal.srid, "kinds": kinds,
        "eps": opts.eps_m, "minpoints": opts.min_points, "limit": opts.max_clusters})).all()
    out, exact = [], False
    for r in rows:
        if sharing.suppressed(r.n, r.all_exact, k):
            continue  # a group this small is not shown at all to someone without exact access
        exact = exact or r.any_exact
        out.append({"count": r.n, "lon": round(r.lon, 7), "lat": round(r.lat, 7),
                    "radius_m": round(r.radius_m, 1), "top_category": r.top_category,
                    "level": "exact" if r.all_exact else ("mixed" if r.any_exact else "sanitised")})
    return out, exact


async def gap_report(session: AsyncSession, principal: Principal, flt: IncidentFilter,
                     opts: GapOptions) -> tuple[dict[str, Any], bool]:
    """The gap figures for the caller, and whether the answer holds exact positions (to audit)."""
    pid = principal.partnership_id
    k = sharing.suppress_below()
    await ensure_union(session, pid)
    rows = (await session.execute(text(GAP_COUNTS.format(filters=flt.sql())),
                                  {**sharing.access_params(principal), **flt.params()})).all()
    streets = (await session.execute(STREET_LENGTHS, {"p": pid})).one()
    facts = (await session.execute(COVERAGE_FACTS, {"p": pid})).one()

    current = _section(rows, "covered", k, opts.max_areas)
    current["streets"] = {"length_m": round(streets.total_m, 1), "covered_m": round(streets.working_m, 1),
                          "share_covered": share(streets.working_m, streets.total_m)}
    current["clusters"], exact = await _clusters(session, principal, flt, ["working"], opts, k)
    body: dict[str, Any] = {
        "coverage": {"operational_cameras": facts.operational, "planned_cameras": facts.planned,
                     "faulty_cameras": facts.faulty, "covered_area_m2": round(facts.working_m2, 1),
                     "planned_adds_m2": round(facts.planned_m2, 1)},
        "suppress_below": k,
        "current": current,
    }
    if opts.include_planned:
        planned = _section(rows, "covered_with_planned", k, opts.max_areas)
        both = streets.with_planned_m
        planned["streets"] = {"length_m": round(streets.total_m, 1), "covered_m": round(both, 1),
                              "share_covered": share(both, streets.total_m)}
        planned["clusters"], exact_p = await _clusters(session, principal, flt, ["working", "planned"], opts, k)
        exact = exact or exact_p
        body["with_planned"] = planned
    return body, exact
