"""Which collections a caller may see, what they read, and their extents.

A collection is a catalog layer the caller's role may see, or one partner data set of incidents
that the sharing rules let the caller see one by one (sanitised or exact). Shared collections read
through the catalog's sharing function, called with the caller (so the rules, sensitive categories
and level caps all apply); the others read the catalog's view, scoped to the caller's partnership.
Only rows that may be shown one by one are features: aggregate-level incidents are never listed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.auth import Principal
from app.catalog import Catalog, Layer
from app.ogc.cql import Queryable, layer_queryables
from app.tiles.cache import VersionSource, current_versions
from app.tiles.sql import from_sql, ident

DATASET_PREFIX = "dataset-"
CELLS_ID = "incident_cells"
CELLS_DESCRIPTION = (
    "How many incidents lie in each square of {size:g} m (in the partnership's metric CRS), counting "
    "every incident the sharing rules let you count, also those you may not see one by one (aggregate). "
    "A square with fewer than the suppression threshold is left out unless you see every incident in it "
    "exactly. bbox selects whole squares; datetime and filter (category, month, dataset) select the "
    "incidents counted.")
SHOWN = "t.geom IS NOT NULL AND t.level IN ('sanitised', 'exact')"
# Extents cost a pass over the collection: kept a minute per caller's access, collection and data versions.
EXTENT_TTL_S = 60.0
_extents: TTLCache[tuple, dict[str, Any]] = TTLCache(maxsize=2_000, ttl=EXTENT_TTL_S)
_groups: TTLCache[tuple, list[Any]] = TTLCache(maxsize=2_000, ttl=EXTENT_TTL_S)  # see _shared_extent

VISIBLE_DATASETS = """
    SELECT d.id, d.source_key, d.name, v.level
    FROM safermap_dataset_levels(:p, CAST(:role AS text), CAST(:agency AS integer), CAST(:level_cap AS text)) AS v
    JOIN dataset d ON d.id = v.dataset_id
    WHERE v.level IN ('sanitised', 'exact')
    ORDER BY d.id
"""


@dataclass(frozen=True)
class Collection:
    id: str
    title: str
    description: str
    layer: Layer
    dataset_id: int | None = None
    cells: bool = False          # counts on grid squares (app/ogc/cells.py), not one feature a row

    @property
    def shared(self) -> bool:
        return self.layer.shared

    @property
    def date_column(self) -> str | None:
        return self.layer.filters.date

    def from_where(self, principal: Principal) -> tuple[str, list[str], dict[str, Any]]:
        """The FROM item, the base conditions and their parameters, for this caller."""
        params: dict[str, Any]
        if self.cells:  # every level that may be counted (aggregate too); suppression comes later
            where, params = ["t.geom IS NOT NULL"], sharing.access_params(principal)
        elif self.shared:
            where, params = [SHOWN], sharing.access_params(principal)
        else:
            where, params = ["t.partnership_id = :p", "t.geom IS NOT NULL"], {"p": principal.partnership_id}
        if self.dataset_id is not None:
            where.append("t.dataset_id = :dataset_id")
            params["dataset_id"] = self.dataset_id
        return f"{from_sql(self.layer)} AS t", where, params

    @property
    def properties(self) -> list[str]:
        """The feature properties: the catalog's fields (and a shared row's level)."""
        if self.cells:
            return ["count"]
        names = list(self.layer.fields)
        if self.shared and "level" not in names:
            names.append("level")
        return names

    @property
    def queryables(self) -> dict[str, Queryable]:
        """What a CQL2 filter may name (app.ogc.cql.layer_queryables)."""
        return layer_queryables(self.layer)



async def visible_collections(session: AsyncSession, catalog: Catalog, principal: Principal,
                              data_sets: bool = True) -> list[Collection]:
    """The caller's collections: the catalog layers their role may see, then one per data set
    (unless `data_sets` is false: the catalog's alone need no query)."""
    layers = catalog.visible_to(principal.role)
    out = [Collection(layer.id, layer.title, layer.description, layer) for layer in layers]
    incidents = next((layer for layer in layers if layer.id == "incidents"), None)
    if incidents is not None:
        from app.ogc.cells import CELL_M
        out.append(Collection(CELLS_ID, "Incident counts by grid square", CELLS_DESCRIPTION.format(size=CELL_M),
                              incidents, cells=True))
        if not data_sets:
            return out
        rows = (await session.execute(text(VISIBLE_DATASETS), sharing.access_params(principal))).all()
        for r in rows:
            out.append(Collection(f"{DATASET_PREFIX}{r.id}", f"Incidents: {r.name}",
                                  f"The incidents of the data set {r.source_key} ({r.level} for you). "
                                  + incidents.description, incidents, r.id))
    return out


async def find_collection(session: AsyncSession, catalog: Catalog, principal: Principal,
                          collection_id: str) -> Collection | None:
    # Only a data set's collection needs the sharing rules read (one query a page saved on the others).
    data_sets = collection_id.startswith(DATASET_PREFIX)
    for c in await visible_collections(session, catalog, principal, data_sets):
        if c.id == collection_id:
            return c
    return None


async def extent(session: AsyncSession, collection: Collection, principal: Principal,
                 live: VersionSource | None = None) -> dict[str, Any]:
    """The collection's spatial (CRS84) and temporal extent over what this caller sees, kept under
    the layer's data versions (from memory when exact): a change shows at once, never a stale box."""
    versions = tuple(await current_versions(session, collection.layer, principal, live)) \
        if collection.layer.versioned_by else ()
    key = (sharing.access_key(principal), collection.id, versions)
    if (hit := _extents.get(key)) is not None:
        return hit
    row: Any
    if collection.shared and collection.date_column:
        row = await _shared_extent(session, collection, principal, versions)
    else:
        src, where, params = collection.from_where(principal)
        months = (f", min(t.{ident(collection.date_column)}) AS t0, max(t.{ident(collection.date_column)}) AS t1"
                  if collection.date_column else ", NULL AS t0, NULL AS t1")
        row = (await session.execute(text(
            f"SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1, t0, t1 FROM ("
            f"SELECT ST_Extent(t.geom) AS e{months} FROM {src} WHERE {' AND '.join(where)}) AS s"), params)).one()
    out: dict[str, Any] = {"spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]] if row.x0 is None else
                                       [[row.x0, row.y0, row.x1, row.y1]],
                                       "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}}
    if collection.date_column:
        end = None
        if row.t1 is not None:  # the last month runs to its last day
            nxt = row.t1.replace(year=row.t1.year + row.t1.month // 12, month=row.t1.month % 12 + 1)
            end = f"{nxt.isoformat()}T00:00:00Z"
        out["temporal"] = {"interval": [[f"{row.t0.isoformat()}T00:00:00Z" if row.t0 else None, end]],
                           "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    _extents[key] = out
    return out


@dataclass(frozen=True)
class _Box:
    x0: float | None
    y0: float | None
    x1: float | None
    y1: float | None
    t0: Any
    t1: Any


async def _shared_extent(session: AsyncSession, collection: Collection, principal: Principal,
                         versions: tuple[str, ...]) -> _Box:
    """Extents of the collections over shared incidents (all of them, incident_cells, one per data
    set) from one pass over the sharing function, grouped by data set and whether a row is shown
    one by one, kept for EXTENT_TTL_S: GDAL and QGIS list every collection's extent before reading
    one, and three passes over a million incidents took seconds."""
    key = (sharing.access_key(principal), collection.layer.id, versions)
    groups = _groups.get(key)
    if groups is None:
        src = f"{from_sql(collection.layer)} AS t"
        month = f"t.{ident(collection.date_column or '')}"
        groups = list((await session.execute(text(
            "SELECT g.dataset_id, g.shown, ST_XMin(g.e) AS x0, ST_YMin(g.e) AS y0, ST_XMax(g.e) AS x1, "
            "ST_YMax(g.e) AS y1, g.t0, g.t1 FROM ("
            f"SELECT t.dataset_id, ({SHOWN}) AS shown, ST_Extent(t.geom) AS e, min({month}) AS t0, "
            f"max({month}) AS t1 FROM {src} WHERE t.geom IS NOT NULL GROUP BY 1, 2) AS g"),
            sharing.access_params(principal))).all())
        _groups[key] = groups
    # incident_cells counts every level; the others list only rows shown one by one (SHOWN).
    rows = [g for g in groups if (collection.cells or g.shown)
            and (collection.dataset_id is None or g.dataset_id == collection.dataset_id)]
    if not rows:
        return _Box(None, None, None, None, None, None)
    months = [r.t0 for r in rows if r.t0 is not None], [r.t1 for r in rows if r.t1 is not None]
    return _Box(min(r.x0 for r in rows), min(r.y0 for r in rows), max(r.x1 for r in rows), max(r.y1 for r in rows),
                min(months[0], default=None), max(months[1], default=None))
