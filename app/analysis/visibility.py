"""What a camera can really see: its wedge (or disc) minus everything that buildings hide.

Pure geometry in a metric CRS (metres), no database. The visible region is computed exactly, as a
polygon, not by casting rays: every wall that faces the camera casts a shadow — the wall itself, swept
away from the camera to beyond the camera's range — and the view is the wedge minus the union of the
shadows. Walls facing away from the camera are skipped: anything behind them is already behind a
wall that faces it (a ray into a building must enter through a facing wall), which halves the work.

A camera drawn inside a building or on its outline (registers and OpenStreetMap put wall-mounted
cameras there) sees out from the wall it looks through: the viewpoint is moved to just outside that
wall — along its bearing when it has one, else to the nearest wall — and the building still blocks
everything behind the camera.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon
from shapely.geometry.polygon import orient
from shapely.ops import nearest_points

ARC_STEP_DEG = 1.0       # the wedge's arc is drawn with a vertex every degree (area error < 0.01%)
WALL_TOLERANCE_M = 0.05  # a camera this close to a building's outline is on its wall
OFFSET_M = 0.02          # how far outside the wall a wall-mounted camera's viewpoint is put
MAX_STEP_OUT_M = 15.0    # a camera drawn further inside than this (past GPS error) leaves by the
                         # nearest wall instead: it is likely an indoor camera, and sees little
FAR_FACTOR = 1.1         # shadows reach 1.1 x range, drawn with 4 chords of at most 45 degrees
FAR_STEPS = 4            # (a chord of 45 deg at 1.1 r stays beyond r: 1.1 cos 22.5 deg = 1.016)
MIN_SPAN = 1e-9          # walls seen edge-on (radians) hide nothing and would give empty shadows


def sector(centre: tuple[float, float], bearing: float | None, fov: float, range_m: float) -> Polygon:
    """The wedge of `fov` degrees centred on `bearing` (clockwise from grid north), or a disc when
    fov is 360 or the bearing is unknown."""
    cx, cy = centre
    if bearing is None or fov >= 360:
        n = int(360 / ARC_STEP_DEG)
        t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
        return Polygon(np.column_stack([cx + range_m * np.sin(t), cy + range_m * np.cos(t)]))
    n = max(2, math.ceil(fov / ARC_STEP_DEG))
    t = np.radians(bearing - fov / 2 + fov * np.arange(n + 1) / n)
    arc = np.column_stack([cx + range_m * np.sin(t), cy + range_m * np.cos(t)])
    return Polygon(np.vstack([[centre], arc]))


def viewpoint(camera: tuple[float, float], bearing: float | None,
              obstacles: Sequence[Polygon]) -> tuple[float, float]:
    """Where the camera really looks from: its own position, or just outside the wall of the building
    it is drawn in or on."""
    pt = Point(camera)
    if not any(b.distance(pt) <= WALL_TOLERANCE_M for b in obstacles):
        return camera
    # Terraces and blocks are drawn as buildings sharing walls: stepping out of one must not step
    # into its neighbour, so the camera leaves the whole block it stands in.
    merged = shapely.union_all(obstacles)
    block = min(getattr(merged, "geoms", [merged]), key=lambda g: g.distance(pt))
    return _out_of(block, pt, bearing)


def _out_of(building: Polygon, pt: Point, bearing: float | None) -> tuple[float, float]:
    """A point just outside `building`, where a camera at `pt` looks out of it."""
    if bearing is not None:
        dx, dy = math.sin(math.radians(bearing)), math.cos(math.radians(bearing))
        ray = LineString([pt.coords[0], (pt.x + dx * MAX_STEP_OUT_M, pt.y + dy * MAX_STEP_OUT_M)])
        # The first point along the bearing outside the building: the wall the camera looks out of.
        outside = ray.difference(building.buffer(OFFSET_M / 2))
        if not outside.is_empty:
            first = min(getattr(outside, "geoms", [outside]), key=lambda p: Point(p.coords[0]).distance(pt))
            x, y = first.coords[0]
            return (x + dx * OFFSET_M, y + dy * OFFSET_M)
    # No bearing (a dome), or looking along the wall: the nearest point just outside the outline.
    grown = building.buffer(OFFSET_M, join_style="mitre")
    near = nearest_points(grown.exterior, pt)[0]
    for ring in grown.interiors:  # a courtyard wall may be nearer
        candidate = nearest_points(ring, pt)[0]
        if candidate.distance(pt) < near.distance(pt):
            near = candidate
    return (near.x, near.y)


def facing_walls(centre: tuple[float, float], obstacles: Sequence[Polygon], range_m: float) -> np.ndarray:
    """Wall segments (n, 2, 2) within range whose outside faces the camera."""
    segments = []
    for building in obstacles:
        building = orient(building, 1.0)  # exterior anticlockwise, holes clockwise: outside on the right
        for ring in (building.exterior, *building.interiors):
            xy = np.asarray(ring.coords)
            segments.append(np.stack([xy[:-1], xy[1:]], axis=1))
    if not segments:
        return np.empty((0, 2, 2))
    seg = np.concatenate(segments)
    a, b = seg[:, 0], seg[:, 1]
    c = np.asarray(centre)
    d = b - a
    # Outward normal of an edge a->b with the outside on its right is (dy, -dx).
    facing = (c[0] - a[:, 0]) * d[:, 1] - (c[1] - a[:, 1]) * d[:, 0] > 1e-12
    # Distance from the camera to each segment, to drop walls out of range.
    t = np.clip(((c - a) * d).sum(1) / np.maximum((d * d).sum(1), 1e-18), 0, 1)
    near = np.hypot(*(a + d * t[:, None] - c).T)
    return seg[facing & (near < range_m)]


def shadows(centre: tuple[float, float], walls: np.ndarray, range_m: float) -> np.ndarray:
    """One polygon per wall: the wall swept away from the camera to beyond its range."""
    if len(walls) == 0:
        return np.empty(0, dtype=object)
    c = np.asarray(centre)
    va, vb = walls[:, 0] - c, walls[:, 1] - c
    theta_a = np.arctan2(va[:, 0], va[:, 1])  # clockwise from north, like a bearing
    span = np.arctan2(va[:, 1] * vb[:, 0] - va[:, 0] * vb[:, 1], (va * vb).sum(1))  # a -> b, signed
    keep = np.abs(span) > MIN_SPAN
    walls, va, vb, theta_a, span = walls[keep], va[keep], vb[keep], theta_a[keep], span[keep]
    # Beyond the range and beyond both ends of the wall (a wall may run on past the range).
    far_r = FAR_FACTOR * np.maximum(range_m, np.maximum(np.hypot(*va.T), np.hypot(*vb.T)))[:, None]
    steps = np.linspace(1.0, 0.0, FAR_STEPS + 1)  # from b's side back round to a's
    angles = theta_a[:, None] + span[:, None] * steps[None, :]
    far = np.stack([c[0] + far_r * np.sin(angles), c[1] + far_r * np.cos(angles)], axis=-1)
    rings = np.concatenate([walls[:, :1], walls[:, 1:2], far, walls[:, :1]], axis=1)
    return shapely.polygons(rings)


def visible_area(viewpoint_xy: tuple[float, float], bearing: float | None, fov: float, range_m: float,
                 obstacles: Sequence[Polygon]) -> Polygon:
    """The part of the camera's wedge (or disc) it can see past the buildings, as one polygon
    (empty when it sees nothing). Coordinates in metres."""
    obstacles = [g for b in obstacles for g in getattr(b, "geoms", [b]) if not g.is_empty]
    eye = viewpoint(viewpoint_xy, bearing if fov < 360 else None, obstacles)
    view = sector(eye, bearing, fov, range_m)
    near = [b for b in obstacles if b.distance(Point(eye)) < range_m]
    walls = facing_walls(eye, near, range_m)
    if len(walls):
        hidden = shapely.union_all(shadows(eye, walls, range_m))
        view = view.difference(hidden)
    return _main_part(view)


def _main_part(geom) -> Polygon:
    """What a camera sees is star-shaped (every visible point joins the camera by a straight line in
    view), so it is one polygon; anything else is a numerical sliver from the overlay."""
    polygons = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, Polygon) and not g.is_empty]
    if not polygons:
        return Polygon()
    main = max(polygons, key=lambda g: g.area)
    return Polygon(main.exterior, [r for r in main.interiors if Polygon(r).area > 0.01])
