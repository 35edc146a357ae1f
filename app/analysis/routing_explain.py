"""Words and lines for a walk: its geometry, its directions by street name, and why the safe walk
was chosen over the shortest ("avoids 240 m of unlit path through Kaisaniemen puisto; 78 % under
working cameras instead of 31 %")."""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from app.analysis.routing_graph import Network
from app.analysis.routing_search import Piece, Walk

# How an unnamed segment is called, by its highway class.
UNNAMED = {
    "footway": "footpath", "path": "path", "pedestrian": "pedestrian street", "steps": "steps",
    "cycleway": "cycle path", "service": "service road", "track": "track", "bridleway": "bridleway",
    "living_street": "living street", "corridor": "passage",
}


def label(net: Network, k: int) -> str:
    """'Aleksanterinkatu', 'path through Kaisaniemen puisto', 'footpath'."""
    name = net.name[k]
    if name:
        return name
    kind = UNNAMED.get(net.highway[k] or "", "street")
    park = net.park[k]
    return f"{kind} through {park}" if park else kind


def _substring(xy: np.ndarray, cum: np.ndarray, a: float, b: float) -> np.ndarray:
    """The vertices of a line between a and b metres along it (reversed when b < a); `xy` may be
    the metric vertices or the same vertices in lon/lat (the cut is made at the same fraction of
    the same segment)."""
    lo, hi = min(a, b), max(a, b)

    def at(s: float) -> np.ndarray:
        i = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(cum) - 2))
        span = cum[i + 1] - cum[i]
        t = 0.0 if span <= 0 else (s - cum[i]) / span
        return xy[i] + t * (xy[i + 1] - xy[i])

    inner = np.flatnonzero((cum > lo + 1e-6) & (cum < hi - 1e-6))  # not the ends again (float noise)
    out = np.vstack([at(lo), xy[inner], at(hi)])
    return out[::-1] if b < a else out


def piece_coords(net: Network, p: Piece) -> tuple[np.ndarray, np.ndarray]:
    """A piece's vertices in the metric CRS and in lon/lat, in walking order."""
    full = float(net.lines_m[p.k].length)
    if min(p.a, p.b) <= 0.0 and max(p.a, p.b) >= full:  # the whole segment: no cut to make
        m, ll = net.coords_m[p.k], net.coords_ll[p.k]
        return (m[::-1], ll[::-1]) if p.b < p.a else (m, ll)
    cum = net.cumulative_m(p.k)
    return _substring(net.coords_m[p.k], cum, p.a, p.b), _substring(net.coords_ll[p.k], cum, p.a, p.b)


Coords = list[tuple[np.ndarray, np.ndarray]]


def coords(net: Network, walk: Walk) -> Coords:
    """Each piece's vertices (metric, lon/lat), computed once for the line and the directions."""
    return [piece_coords(net, p) for p in walk.pieces]


def line(net: Network, walk: Walk, pieces: Coords | None = None) -> tuple[list[list[float]], np.ndarray]:
    """The walk as [[lon, lat], ...] (7 decimals) and its metric vertices."""
    pieces = pieces if pieces is not None else coords(net, walk)
    if not pieces:
        return [], np.zeros((0, 2))
    # Each joint is the previous piece's last vertex.
    m_all = np.vstack([pieces[0][0], *(m[1:] for m, _ in pieces[1:])])
    ll_all = np.round(np.vstack([pieces[0][1], *(ll[1:] for _, ll in pieces[1:])]), 7)
    return ll_all.tolist(), m_all


def _heading(xy: np.ndarray, from_end: bool) -> float | None:
    """The walking bearing (degrees from grid north) over the first, or the last, 15 m of a polyline."""
    pts = xy[::-1] if from_end else xy
    far = np.flatnonzero(np.hypot(*(pts - pts[0]).T) >= 15)
    q = pts[far[0]] if len(far) else pts[-1]
    d = (pts[0] - q) if from_end else (q - pts[0])
    if np.hypot(*d) < 1e-6:
        return None
    return math.degrees(math.atan2(d[0], d[1])) % 360


def _turn(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "continue"
    delta = (after - before + 540) % 360 - 180
    if abs(delta) < 25:
        return "continue"
    side = "right" if delta > 0 else "left"
    if abs(delta) < 60:
        return f"bear {side}"
    if abs(delta) > 150:
        return "turn back"
    return f"turn {side}"


def directions(net: Network, walk: Walk, pieces: Coords | None = None) -> list[dict]:
    """Steps by street name: each with `street`, `length_m`, `turn` (start, continue, turn left, ...)
    and `text`."""
    pieces = pieces if pieces is not None else coords(net, walk)
    groups: list[tuple[str, list[int]]] = []
    for i, p in enumerate(walk.pieces):
        name = label(net, p.k)
        if groups and groups[-1][0] == name:
            groups[-1][1].append(i)
        else:
            groups.append((name, [i]))
    steps = []
    previous_end: float | None = None
    for i, (name, members) in enumerate(groups):
        xy = np.vstack([pieces[j][0] for j in members])
        metres = sum(walk.pieces[j].length for j in members)
        turn = "start" if i == 0 else _turn(previous_end, _heading(xy, from_end=False))
        previous_end = _heading(xy, from_end=True)
        rounded = int(round(metres / 10.0) * 10) if metres >= 20 else int(round(metres))
        verb = {"start": "Start along", "continue": "Continue along"}.get(turn, f"{turn.capitalize()} onto")
        steps.append({"street": name, "length_m": round(metres, 1), "turn": turn,
                      "text": f"{verb} {name} for {rounded} m"})
    return steps


def _unlit_by_label(net: Network, walk: Walk, lit: np.ndarray, skip: set[int]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for p in walk.pieces:
        if p.k not in skip:
            out[label(net, p.k)] += p.length * (1.0 - lit[p.k])
    return out


def _pct(x: float) -> int:
    return int(round(100 * x))


def explain_shortest(walk: Walk, incidents: int | None) -> str:
    near = "" if incidents is None else f", {incidents} incident{'s' if incidents != 1 else ''} within 25 m"
    return (f"The shortest walk: {int(round(walk.length))} m, {_pct(walk.share(walk.covered))} % under working "
            f"cameras, {_pct(walk.share(walk.lit))} % lit{near}.")


def explain(net: Network, walk: Walk, shortest: Walk, lit: np.ndarray,
            incidents: int | None, shortest_incidents: int | None) -> str:
    """Why this walk rather than the shortest, in one sentence."""
    if walk.key == shortest.key:
        return "The shortest walk is also the safest within the detour limit. " + explain_shortest(walk, incidents)
    parts = []
    avoided = _unlit_by_label(net, shortest, lit, {p.k for p in walk.pieces})
    if avoided:
        where, metres = max(avoided.items(), key=lambda kv: kv[1])
        if metres >= 20:
            parts.append(f"avoids {int(round(metres / 10.0) * 10)} m of unlit {where}")
    cam, cam0 = _pct(walk.share(walk.covered)), _pct(shortest.share(shortest.covered))
    if cam != cam0:
        parts.append(f"{cam} % under working cameras instead of {cam0} %")
    lit_pct, lit0 = _pct(walk.share(walk.lit)), _pct(shortest.share(shortest.lit))
    if lit_pct != lit0:
        parts.append(f"{lit_pct} % lit instead of {lit0} %")
    if incidents is not None and shortest_incidents is not None and incidents != shortest_incidents:
        parts.append(f"{incidents} incidents within 25 m instead of {shortest_incidents}")
    extra = walk.length - shortest.length
    parts.append(f"{int(round(extra))} m longer than the shortest ({walk.length / shortest.length:.2f}×)")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."
