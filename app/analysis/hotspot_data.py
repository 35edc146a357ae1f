"""The incidents behind every hotspot analysis: filters, periods, the study extent and binned counts.

Everything here reads incidents through the sharing function (`safermap_visible_incidents`) and
keeps only the caller's own partnership. Incidents are grouped in SQL by their (snapped) position,
only the distinct positions are transformed to the partnership's metric CRS (in one call), and
those positions with their counts come to numpy as one WKB array to be binned into grid cells, so
a million rows never cross into Python one by one and thousands of incidents on one snapped point
are one large count. The study extent is kept in the database (table hotspot_extent) under the
data versions it was read at, so a new process does not scan for it again.

Periods are months (police.uk gives a month; `incident.month` is its first day): `from`/`to` take
YYYY-MM or YYYY-MM-DD, and a month as an upper bound means its last day.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Protocol

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.caches import Bounded
from app.domain_errors import InvalidPeriod, InvalidValue, TooLarge, UnknownItem
from app.params import Period, date_literal, parse_categories, parse_period, parse_values
from app.tiles.cache import fill_versions
from app.tiles.sql import VERSIONS

MAX_GRID_CELLS = 4_000_000  # 2000 x 2000: a finer grid over a county is refused, not computed
# The tables whose data versions change what the sharing function returns for a partnership
# (the same list as the incidents layer's `versioned_by`).
VERSIONED_BY = ("incident", "dataset", "sharing_rule", "sensitive_category", "anon_point")

VISIBLE = f"safermap_visible_incidents{sharing.FUNCTION_ARGS}"

# Optional filters, added to the WHERE clause only when given (so each shape gets its own plan).
# The period's dates are written into the statement as literals, not bound: asyncpg prepares each
# statement once per connection, and after five runs PostgreSQL may switch to a generic plan, which
# cannot know how many months `month >= $n` keeps (it guesses 0.5%). For a year or two of a million
# incidents that plan walked the (partnership_id, month) index to every row, twice the CPU of the
# sequential scan a plan for the real dates uses (1.1 s against 0.55 s). With the dates in the text
# every period gets a plan for its own dates. They are `date` values (typed, checked), never text
# (app.params.date_literal).
FILTER_SQL = {
    "date_from": "t.month >= {}",
    "date_to": "t.month <= {}",
    "categories": "t.category = ANY(:categories)",
    "datasets": "t.dataset = ANY(:datasets)",
}
LITERAL_FILTERS = ("date_from", "date_to")


# The partnership's metric CRS and the data versions of what the sharing function reads.
CONTEXT_SQL = f"SELECT pa.srid, ({VERSIONS}) AS versions FROM partnership pa WHERE pa.id = :p"

# The latest month with any incident the caller may count (with the category/data set filters).
# The partnership's months come newest first from the (partnership_id, month) index, one probe
# each (they are only candidates: no incident is read here); the sharing function then says, month
# by month, whether the caller may count anything in it, stopping at the first row it finds. A
# plain max(month) over the sharing function reads every row (~0.3 s a million; this, ~1 ms).
LATEST_MONTH_SQL = f"""
    WITH RECURSIVE months AS (
        SELECT max(month) AS month FROM incident WHERE partnership_id = :p
        UNION ALL
        SELECT (SELECT max(i.month) FROM incident i WHERE i.partnership_id = :p AND i.month < months.month)
        FROM months WHERE months.month IS NOT NULL
    )
    SELECT max(m.month) FROM months AS m
    CROSS JOIN LATERAL (  -- LIMIT keeps this a probe per month, not a semi-join over every row
        SELECT 1 FROM {VISIBLE} AS t WHERE t.partnership_id = :p AND t.month = m.month AND {{where}} LIMIT 1
    ) AS seen"""

# The level of each data set for the caller, from the same rules the sharing function applies.
# Levels are read per data set, not per row: each row's `level` evaluates the rules again, which
# over a million rows costs more than the rest of the query.
LEVELS = f"""
    SELECT l.dataset_id, l.level
    FROM safermap_dataset_levels{sharing.FUNCTION_ARGS} AS l WHERE l.level IN ('sanitised', 'exact')"""

# Metric bounds of every placed incident the caller sees, whatever the period or filters, so grids
# line up across periods and categories. The extent is taken in WGS84 (cheap), then its outline,
# densified, is transformed: a straight edge in lon/lat bows slightly in a projected CRS. The data
# versions come from the same statement (same snapshot): the extent is kept under them.
EXTENT_SQL = f"""
    WITH by_dataset AS (
        SELECT t.dataset_id, ST_Extent(t.geom) AS e
        FROM {VISIBLE} AS t WHERE t.partnership_id = :p AND t.geom IS NOT NULL
        GROUP BY t.dataset_id
    )
    SELECT ST_XMin(b) AS minx, ST_YMin(b) AS miny, ST_XMax(b) AS maxx, ST_YMax(b) AS maxy,
           ({VERSIONS}) AS versions FROM (
        SELECT ST_Transform(ST_Segmentize(ST_SetSRID(ST_Envelope(ST_Extent(e)::geometry), 4326), 0.01),
                            CAST(:srid AS integer)) AS b
        FROM by_dataset WHERE dataset_id IN (SELECT dataset_id FROM ({LEVELS}) AS placeable)
    ) AS e"""

# The extent kept for this caller, if it was read at the current data versions and in the current CRS.
KEPT_EXTENT_SQL = """
    SELECT minx, miny, maxx, maxy FROM hotspot_extent
    WHERE partnership_id = :p AND access = :access AND versions = :versions AND srid = :srid"""

# Keep an extent (the latest computation wins: each is right for the versions it names). Nothing is
# kept for a partnership deleted meanwhile.
KEEP_EXTENT_SQL = """
    INSERT INTO hotspot_extent (partnership_id, access, versions, srid, minx, miny, maxx, maxy)
    SELECT :p, :access, :versions, :srid, :minx, :miny, :maxx, :maxy
    WHERE EXISTS (SELECT 1 FROM partnership WHERE id = :p)
    ON CONFLICT (partnership_id, access) DO UPDATE
    SET versions = EXCLUDED.versions, srid = EXCLUDED.srid, minx = EXCLUDED.minx, miny = EXCLUDED.miny,
        maxx = EXCLUDED.maxx, maxy = EXCLUDED.maxy, computed_at = now()"""

# The placed positions with their counts, in one statement with the data versions it was read at
# (same snapshot). Rows are grouped by data set and position first (thousands of incidents share a
# snapped point); the key is the position's two coordinates, float8s that hash cheaply, rather than
# the geometry (hashing and comparing a million varlena points cost ~12% more of the statement).
# Sanitised rows are no extra work per row: the sharing function hands out the stored anonymous
# point (geom_anon) in place of the real one. Rows of a data set at aggregate level, and rows
# without a location, are counted but never placed. Everything after the grouping is one pass over
# the distinct positions. The distinct positions come back as ONE MultiPoint, transformed to the
# metric CRS in one ST_Transform call (PROJ over the whole array: bit-identical to transforming each
# point, a fraction of the cost) and sent as WKB, each point carrying its count as M (M is never
# transformed). Python reads it as a numpy array and bins it (cells_simple / cells_linear below):
# the binning, ~160k weighted corners for linear binning, costs more as SQL rows than as arrays.
# Of a cold 1M-incident surface (~0.5 s of database CPU) about half is reading the rows through the
# sharing function and most of the rest the grouping; the transform and WKB are ~25 ms.
BINS_SQL = f"""
    WITH by_point AS (
        SELECT t.dataset_id, ST_X(t.geom) AS x, ST_Y(t.geom) AS y, count(*) AS n
        FROM {VISIBLE} AS t
        WHERE t.partnership_id = :p AND {{where}}
        GROUP BY 1, 2, 3
    ), levelled AS (
        SELECT b.x, b.y, b.n, l.level IS NOT NULL AND b.x IS NOT NULL AS placed,
               coalesce(l.level = 'exact', false) AS ex
        FROM by_point b LEFT JOIN ({LEVELS}) AS l ON l.dataset_id = b.dataset_id
    )
    SELECT ST_AsBinary(ST_Transform(ST_SetSRID(
               ST_Collect(ST_MakePointM(x, y, n)) FILTER (WHERE placed), 4326),
               CAST(:srid AS integer)), 'NDR') AS points,
           coalesce(sum(n) FILTER (WHERE placed), 0)::bigint AS placed,
           coalesce(sum(n) FILTER (WHERE NOT placed), 0)::bigint AS unplaced,
           coalesce(bool_and(ex), true) AS all_exact,
           coalesce(bool_and(ex) FILTER (WHERE placed), true) AS placed_exact,
           ({VERSIONS}) AS versions
    FROM levelled"""

# A MultiPoint M in little-endian WKB: a 9-byte header (byte order, type, count), then per point its
# own byte order and type and x, y, m as float64.
WKB_HEADER = 9
WKB_POINT_M = np.dtype([("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8"), ("m", "<f8")])
WKB_POINT_M_TYPE = 2001  # ISO WKB: Point M


def positions(wkb: bytes | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, n) of the placed positions from BINS_SQL's MultiPoint M (numpy views, no loop)."""
    if not wkb:
        empty = np.zeros(0)
        return empty, empty, empty
    points = np.frombuffer(wkb, dtype=WKB_POINT_M, offset=WKB_HEADER)
    if (points["order"] != 1).any() or (points["type"] != WKB_POINT_M_TYPE).any():
        raise ValueError("BINS_SQL must return a little-endian MultiPoint M")
    return points["x"], points["y"], points["m"]


def cells_simple(x: np.ndarray, y: np.ndarray, n: np.ndarray, x0: float, y0: float,
                 cell: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each position counts in the cell it falls in: floor((x - x0) / cell), as SQL would (the
    same float64 operations, so top lists computed in SQL find the same cells)."""
    return np.floor((x - x0) / cell).astype(np.int64), np.floor((y - y0) / cell).astype(np.int64), n


def cells_linear(x: np.ndarray, y: np.ndarray, n: np.ndarray, x0: float, y0: float,
                 cell: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For density estimation each position is shared between the four cells whose centres
    surround it, in proportion to its nearness to each (linear binning: the binned KDE's error
    falls from first to second order in the cell size, and the weights still sum to the count)."""
    fx, fy = (x - x0) / cell - 0.5, (y - y0) / cell - 0.5
    i, j = np.floor(fx), np.floor(fy)
    wx, wy = fx - i, fy - j
    i, j = i.astype(np.int64), j.astype(np.int64)
    ix = np.concatenate([i, i + 1, i, i + 1])
    iy = np.concatenate([j, j, j + 1, j + 1])
    w = np.concatenate([n * (1 - wx) * (1 - wy), n * wx * (1 - wy), n * (1 - wx) * wy, n * wx * wy])
    return ix, iy, w


def with_filter(sql: str, flt: HotspotFilter) -> str:
    """The statement with the filter's conditions in place of {where} (not str.format: the SQL
    holds braces of its own)."""
    return sql.replace("{where}", flt.where())


class HotspotPrincipal(Protocol):
    """Anyone the sharing function can be asked about: app.auth.Principal, or SystemPrincipal."""
    @property
    def partnership_id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def agency_id(self) -> int | None: ...


@dataclass(frozen=True)
class SystemPrincipal:
    """The CLI and benchmarks: a partnership's administrator (sees its own data exactly)."""
    partnership_id: int
    role: str = "admin"
    agency_id: int | None = None


@dataclass(frozen=True)
class HotspotFilter:
    """Which incidents an analysis counts. Dates are inclusive; None means open-ended (until
    resolve_period fills in the default period)."""
    date_from: date | None
    date_to: date | None
    categories: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()

    def key(self) -> str:
        return (f"{self.date_from or ''}..{self.date_to or ''};c={','.join(self.categories)}"
                f";d={','.join(self.datasets)}")

    def where(self) -> str:
        """The SQL conditions for the filters that are set ('true' when none are)."""
        clauses = [FILTER_SQL[name].format(date_literal(value)) if name in LITERAL_FILTERS else FILTER_SQL[name]
                   for name, value in self._values().items() if value]
        return " AND ".join(clauses) or "true"

    def params(self) -> dict[str, Any]:
        """The bound parameters of where() (the dates are in its text)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._values().items()
                if v and k not in LITERAL_FILTERS}

    def _values(self) -> dict[str, Any]:
        return {"date_from": self.date_from, "date_to": self.date_to,
                "categories": self.categories, "datasets": self.datasets}

    @classmethod
    def of(cls, period: Period, categories: tuple[str, ...] = (), datasets: tuple[str, ...] = ()) -> HotspotFilter:
        return cls(period.start, period.end, categories, datasets)

    def without_period(self) -> HotspotFilter:
        return replace(self, date_from=None, date_to=None)


def hotspot_filter(from_: str | None, to: str | None, categories: list[str] | None,
                   datasets: list[str] | None) -> HotspotFilter:
    """The filter from request parameters (the CLI's; the API's come parsed from app/api/deps.py)."""
    return HotspotFilter.of(parse_period(from_, to), parse_categories(categories), parse_values(datasets, "dataset"))


# -- months ----------------------------------------------------------------------------------------
def month_end(d: date) -> date:
    nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def add_months(d: date, months: int) -> date:
    """The same day `months` later (or earlier), clamped to the end of a shorter month."""
    index = d.year * 12 + d.month - 1 + months
    first = date(index // 12, index % 12 + 1, 1)
    return first.replace(day=min(d.day, month_end(first).day))


def whole_months(start: date, end: date) -> int | None:
    """How many whole months start..end spans, or None if it does not start and end on month edges."""
    if start.day != 1 or end != month_end(end):
        return None
    return (end.year - start.year) * 12 + end.month - start.month + 1


def previous_period(flt: HotspotFilter, compare: str = "previous") -> HotspotFilter:
    """The period to compare with: the same length just before (`previous`), or the same dates a
    year earlier (`last_year`). Whole months stay whole months (February has no 31st)."""
    if flt.date_from is None or flt.date_to is None:
        raise InvalidPeriod("A comparison needs a period with both from and to (resolve it first).")
    start, end = flt.date_from, flt.date_to
    if compare == "last_year":
        new_start = add_months(start, -12)
        new_end = month_end(add_months(end, -12)) if end == month_end(end) else add_months(end, -12)
    elif compare == "previous":
        months = whole_months(start, end)
        if months is not None:
            new_start, new_end = add_months(start, -months), start - timedelta(days=1)
        else:
            days = (end - start).days + 1
            new_start, new_end = start - timedelta(days=days), start - timedelta(days=1)
    else:
        raise InvalidValue("compare must be 'previous' or 'last_year'.")
    return replace(flt, date_from=new_start, date_to=new_end)


# -- the caller's data context (srid, versions) and small caches keyed by it ------------------------
@dataclass(frozen=True)
class DataContext:
    srid: int
    version_key: str


async def data_context(session: AsyncSession, principal: HotspotPrincipal) -> DataContext:
    """The partnership's metric CRS and a key naming the data versions and the caller's access:
    one cheap lookup, so caches can be checked before any incident is read."""
    row = (await session.execute(text(CONTEXT_SQL), {"p": principal.partnership_id,
                                                     "tables": list(VERSIONED_BY)})).first()
    if row is None:
        raise UnknownItem("The caller's partnership does not exist.")
    return DataContext(row.srid, version_key(principal, row.versions))


def access_text(principal: HotspotPrincipal) -> str:
    return ":".join(str(v) for v in sharing.access_key(principal))


def versions_text(versions: list[str]) -> str:
    return ",".join(fill_versions(versions, VERSIONED_BY))


def version_key(principal: HotspotPrincipal, versions: list[str]) -> str:
    return access_text(principal) + "|" + versions_text(versions)


# Small caches keyed by data version (periods, extents, count grids, results): cachetools LRUs
# bounded by entries, and by bytes where arrays are kept (app.caches). gistar, hotspot_top and
# hotspot_change make theirs under this name.
SmallCache = Bounded

_PERIODS = Bounded(256)
_EXTENTS = Bounded(256)


async def resolve_period(session: AsyncSession, principal: HotspotPrincipal, flt: HotspotFilter,
                         context: DataContext | None = None) -> HotspotFilter:
    """Fill in a missing period: no dates -> the latest month with data for the caller; only
    `from` -> up to the end of that latest month; only `to` -> that month alone. With no data at
    all the filter is returned unchanged."""
    if flt.date_from is not None and flt.date_to is not None:
        return flt
    context = context or await data_context(session, principal)
    key = (context.version_key, flt.without_period().key())
    latest = _PERIODS.get(key)
    if latest is None:
        scope = flt.without_period()
        latest = (await session.execute(text(with_filter(LATEST_MONTH_SQL, scope)),
                                        {**sharing.access_params(principal), **scope.params()})).scalar()
        latest = latest or date.min
        _PERIODS.put(key, latest)
    if latest == date.min:
        return flt
    if flt.date_from is None and flt.date_to is None:
        start, end = latest.replace(day=1), month_end(latest)
    elif flt.date_from is None:
        assert flt.date_to is not None  # both-None is the branch above
        start, end = flt.date_to.replace(day=1), flt.date_to
    else:
        start, end = flt.date_from, max(month_end(latest), flt.date_from)
    return replace(flt, date_from=start, date_to=end)


async def study_extent(session: AsyncSession, principal: HotspotPrincipal, flt: HotspotFilter | None = None,
                       context: DataContext | None = None) -> tuple[float, float, float, float] | None:
    """(minx, miny, maxx, maxy) in the partnership's metric CRS of all the caller's placed
    incidents, regardless of period and filters (`flt` is accepted for symmetry and ignored), or
    None when there are none. Looked for in this process's memory, then among the kept extents
    (read at the current data versions), and only then computed (a scan of every incident).
    `context`: the caller's data_context, if it was just read (saves reading it again)."""
    context = context or await data_context(session, principal)
    cached = _EXTENTS.get(context.version_key)
    if cached is not None:
        return cached or None
    access, versions = context.version_key.split("|", 1)
    kept = (await session.execute(text(KEPT_EXTENT_SQL), {
        "p": principal.partnership_id, "access": access, "versions": versions, "srid": context.srid})).first()
    if kept is not None:
        extent = bounds(kept)
        _EXTENTS.put(context.version_key, extent or ())
        return extent
    row = (await session.execute(text(EXTENT_SQL), {**sharing.access_params(principal), "srid": context.srid,
                                                    "tables": list(VERSIONED_BY)})).one()
    extent = bounds(row)
    read_at = versions_text(row.versions)  # the data may have changed since data_context: file it as read
    if await autocommits(session):
        await session.execute(text(KEEP_EXTENT_SQL), {
            "p": principal.partnership_id, "access": access, "versions": read_at, "srid": context.srid,
            **dict(zip(("minx", "miny", "maxx", "maxy"), extent or (None, None, None, None)))})
    _EXTENTS.put(access + "|" + read_at, extent or ())
    return extent


def bounds(row: Any) -> tuple[float, float, float, float] | None:
    return None if row.minx is None else (row.minx, row.miny, row.maxx, row.maxy)


async def autocommits(session: AsyncSession) -> bool:
    """Whether each statement of the session commits by itself (the read sessions of GET requests,
    the CLI, benchmarks). Only those keep an extent: a row written inside a longer transaction
    would hold its lock until that transaction ends, and every other caller keeping the same
    extent would wait for it."""
    connection = (await session.connection()).sync_connection
    return connection is not None and connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


@dataclass
class Bins:
    """Incident counts on a square grid in the partnership's metric CRS."""
    srid: int
    cell_m: float
    x0: float                  # metric lower-left corner of cell [0, 0]
    y0: float
    counts: np.ndarray         # (ny, nx) float64, row 0 southernmost
    total: int                 # placed: sanitised + exact rows on the grid
    unplaced: int              # counted but not placed: aggregate-level rows, rows with no location
    all_exact: bool            # the caller sees every counted incident exactly
    version_key: str           # data versions + the caller's access: part of every cache key
    placed_exact: bool = True  # every placed incident is at its exact position (none sanitised)

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Metric x of each column's centre and y of each row's centre."""
        ny, nx = self.counts.shape
        return (self.x0 + (np.arange(nx) + 0.5) * self.cell_m, self.y0 + (np.arange(ny) + 0.5) * self.cell_m)


def grid_for(extent: tuple[float, float, float, float], cell_m: float) -> tuple[float, float, int, int]:
    """(x0, y0, nx, ny): the extent covered by whole cells whose corners are multiples of cell_m, so
    every grid with the same cell size lines up with every other."""
    if not (math.isfinite(cell_m) and cell_m > 0):
        raise InvalidValue("cell_m must be a positive number of metres.")
    minx, miny, maxx, maxy = extent
    x0, y0 = math.floor(minx / cell_m) * cell_m, math.floor(miny / cell_m) * cell_m
    nx, ny = math.floor((maxx - x0) / cell_m) + 1, math.floor((maxy - y0) / cell_m) + 1
    if nx * ny > MAX_GRID_CELLS:
        raise TooLarge(f"A {cell_m:g} m grid over this area would have {nx * ny:,} cells; at most "
                         f"{MAX_GRID_CELLS:,} are allowed. Choose a larger cell_m.")
    return x0, y0, nx, ny


async def load_bins(session: AsyncSession, principal: HotspotPrincipal, flt: HotspotFilter, cell_m: float,
                    extent: tuple[float, float, float, float], linear: bool = False,
                    context: DataContext | None = None) -> Bins:
    """Counts of the caller's incidents matching `flt` in cells of `cell_m` metres covering `extent`.
    `linear`: share each position between its four nearest cell centres (for density estimation;
    counts are then fractional, their sum still the number of incidents). `context`: the caller's
    data_context, if it was just read (only its srid is used: the versions come with the counts)."""
    x0, y0, nx, ny = grid_for(extent, cell_m)
    context = context or await data_context(session, principal)
    row = (await session.execute(text(with_filter(BINS_SQL, flt)), {
        **sharing.access_params(principal), **flt.params(), "tables": list(VERSIONED_BY),
        "srid": context.srid})).one()
    counts = np.zeros((ny, nx), dtype=np.float64)
    placed, unplaced = int(row.placed), int(row.unplaced)
    x, y, n = positions(row.points)
    if n.size:
        ix, iy, n = (cells_linear if linear else cells_simple)(x, y, n, x0, y0, float(cell_m))
        # Only data added since the extent was read can fall outside it (linear weights may reach
        # one cell beyond the edge, and are kept in the edge cell): outside, counted, not placed.
        reach = 1 if linear else 0
        inside = (ix >= -reach) & (ix < nx + reach) & (iy >= -reach) & (iy < ny + reach)
        outside = int(round(float(n[~inside].sum())))
        placed, unplaced = placed - outside, unplaced + outside
        flat = np.clip(iy[inside], 0, ny - 1) * nx + np.clip(ix[inside], 0, nx - 1)
        counts += np.bincount(flat, weights=n[inside], minlength=nx * ny).reshape(ny, nx)
    return Bins(srid=context.srid, cell_m=float(cell_m), x0=x0, y0=y0, counts=counts, total=placed,
                unplaced=unplaced, all_exact=bool(row.all_exact), version_key=version_key(principal, row.versions),
                placed_exact=bool(row.placed_exact))
