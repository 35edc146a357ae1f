"""The route search itself, on an in-memory network (routing_graph.Network): snapping the two ends
onto segments, the shortest walk, and the trade-off between length and safety. Pure computation,
no database.

Snapping (what pgr_withPoints does, done here): each end goes to the nearest point of the nearest
walkable segment, part-way along it, as a virtual vertex joined to the segment's two ends by the two
pieces of the segment. An end that falls on a junction (within 1 cm of a segment's end: fraction 0
or 1) IS that junction; no zero-length piece is made, which is what breaks naive snapping.

Pruning: a walk of length at most d·L from A to B never leaves the ellipse with foci A and B and
major axis d·L (every point p on it has |A-p| + |p-B| <= the walk's length). So each search reads
only the segments whose two ends lie in that ellipse; the result is exact, not a heuristic. The
shortest walk is found first in the ellipse of axis 1.5·|AB| (plus 200 m), grown until the walk found
fits its own ellipse (then no shorter walk can lie outside it).

Safety: each segment k has a penalty per metre pen_k = w_cam·(1 - camera_k) + w_lit·(1 - lit_k) +
w_risk·risk_k (each 0..1; routing.Weights). A walk's cost for a trade-off λ is Σ length·(1 + λ·pen).
The walks that are optimal for some λ are the lower convex hull of (length, safety penalty S): found
by the Noninferior Set Estimation method (each λ is where two hull neighbours tie), with at most
MAX_SEARCHES Dijkstra runs in the ellipse of max_detour × the shortest length. The safest answer is
the hull walk of least S that is no longer than max_detour × the shortest and no less camera-covered
than it; the others are its alternatives.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from app.analysis.routing_graph import Network

SNAP_MAX_M = 300.0     # an end farther than this from every walkable segment is refused
JUNCTION_M = 0.01      # an end this close to a segment's end is on the junction itself
ELLIPSE_SLACK_M = 0.02  # the ellipse test's tolerance: vertices are ends rounded to 1 cm (<= 7 mm off)
FIRST_AXIS = 1.5       # the first shortest-walk ellipse: 1.5 x the straight distance ...
FIRST_AXIS_PLUS_M = 200.0  # ... plus this
LAMBDA_MAX = 50.0      # the trade-off at which length hardly matters
MAX_SEARCHES = 6       # Dijkstra runs for the safest profile, the shortest walk's included


class RouteProblem(ValueError):
    """A request that cannot be answered; `reason` says why (outside_area, too_far, unreachable, same_place)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Snap:
    k: int                 # the segment
    s: float               # metres along it from its start
    node: int              # the junction (vertex index) it is at, or -1 part-way along
    distance_m: float      # from the point given
    x: float               # the snapped point, metric
    y: float


@dataclass(frozen=True)
class Piece:
    """Segment k walked from `a` to `b` metres along it (b < a: against its direction)."""
    k: int
    a: float
    b: float

    @property
    def length(self) -> float:
        return abs(self.b - self.a)


@dataclass
class Walk:
    pieces: list[Piece]
    lam: float                    # the trade-off it is optimal for (within its ellipse)
    length: float = 0.0
    penalty: float = 0.0          # S: Σ length·pen
    covered: float = 0.0          # metres under working cameras
    lit: float = 0.0              # metres lit
    cost: float = 0.0             # Σ length·(1 + lam·pen)
    key: tuple = field(default=())

    def share(self, metres: float) -> float:
        return metres / self.length if self.length > 0 else 0.0


@dataclass(frozen=True)
class _Ellipse:
    """One ellipse's pieces, sorted by the pair of vertices they join (routing_search.Search._ellipse)."""
    axis: float
    starts: np.ndarray      # where each pair's pieces start in the sorted order
    keys: np.ndarray        # the pairs, lo * n + hi, ascending
    seg: np.ndarray         # per sorted piece: its segment
    length: np.ndarray      # per sorted piece: metres
    ref: np.ndarray         # per sorted piece: segment (>= 0) or virtual piece (< 0)
    indices: np.ndarray     # the symmetric CSR layout over the pairs
    indptr: np.ndarray
    pair_of_slot: np.ndarray


@dataclass
class Attributes:
    """Per segment: penalty per metre for the request's weights, and the shares the figures use."""
    pen: np.ndarray
    camera: np.ndarray   # share under working cameras
    lit: np.ndarray      # share lit
    open: np.ndarray     # bool: may be walked at the request's time


def _on(net: Network, k: int, s: float, distance: float, x: float, y: float) -> Snap:
    line_len = float(net.lines_m[k].length)
    if s <= JUNCTION_M:
        return Snap(k, 0.0, int(net.u[k]), distance, float(net.vx[net.u[k]]), float(net.vy[net.u[k]]))
    if line_len - s <= JUNCTION_M:
        return Snap(k, line_len, int(net.v[k]), distance, float(net.vx[net.v[k]]), float(net.vy[net.v[k]]))
    return Snap(k, s, -1, distance, x, y)


def _candidates(net: Network, x: float, y: float, what: str) -> list[tuple[float, int]]:
    """(distance, segment) within SNAP_MAX_M of a metric point, nearest first."""
    x0, y0, x1, y1 = net.bbox_m
    if not (x0 - SNAP_MAX_M <= x <= x1 + SNAP_MAX_M and y0 - SNAP_MAX_M <= y <= y1 + SNAP_MAX_M):
        raise RouteProblem("outside_area", f"The {what} point is outside the partnership's area "
                                           "(beyond its street network).")
    pt = shapely.Point(x, y)
    near = net.tree.query(pt, predicate="dwithin", distance=SNAP_MAX_M)
    if len(near) == 0:
        raise RouteProblem("too_far", f"The {what} point is more than {SNAP_MAX_M:.0f} m from any "
                                      "walkable street.")
    d = shapely.distance(net.lines_m[near], pt)
    order = np.lexsort((near, d))
    return [(float(d[i]), int(near[i])) for i in order]


def snap_pair(net: Network, a: tuple[float, float], b: tuple[float, float]) -> tuple[Snap, Snap]:
    """Both ends on the network, on one connected piece: each on its nearest segment, unless the two
    nearest lie on pieces that do not meet (a courtyard path, an island of footways); then the pair
    of segments on a common piece with the least total distance."""
    ends = []
    for (x, y), what in ((a, "start"), (b, "end")):
        ends.append(_candidates(net, x, y, what))
    comp = net.component
    best: dict[int, tuple[float, int]] = {}
    for i, cands in enumerate(ends):
        for d, k in cands:
            c = int(comp[net.u[k]])
            best.setdefault(c * 2 + i, (d, k))
    first = ends[0][0][1], ends[1][0][1]
    if comp[net.u[first[0]]] == comp[net.u[first[1]]]:
        chosen = first
    else:
        common = [(best[c * 2][0] + best[c * 2 + 1][0], c) for c in {key // 2 for key in best}
                  if c * 2 in best and c * 2 + 1 in best]
        if not common:
            raise RouteProblem("unreachable", "No walkable route joins the two points: they lie on "
                                              "parts of the street network that do not meet.")
        _, c = min(common)
        chosen = best[c * 2][1], best[c * 2 + 1][1]
    out = []
    for (x, y), k in zip((a, b), chosen):
        pt = shapely.Point(x, y)
        line = net.lines_m[k]
        s = float(shapely.line_locate_point(line, pt))
        on = shapely.line_interpolate_point(line, s)
        out.append(_on(net, k, s, float(shapely.distance(line, pt)), float(on.x), float(on.y)))
    return out[0], out[1]


class Search:
    """One request's graph: the network plus the two snapped ends as virtual vertices."""

    def __init__(self, net: Network, start: Snap, end: Snap, attrs: Attributes, prune: bool = True) -> None:
        self.net, self.start, self.end, self.attrs = net, start, end, attrs
        self.prune = prune          # False: every segment, every run (the benchmark's baseline)
        self.edges_read = 0         # the most segments any run read
        n = net.n_vertices
        self.n = n + 2
        self.src = start.node if start.node >= 0 else n
        self.dst = end.node if end.node >= 0 else n + 1
        if self.src == self.dst or (start.node < 0 and end.node < 0 and start.k == end.k
                                    and abs(start.s - end.s) <= JUNCTION_M):
            raise RouteProblem("same_place", "The start and the end are the same place on the street network.")
        # Virtual pieces: (from node, to node, segment, from metres, to metres).
        virt: list[tuple[int, int, int, float, float]] = []
        for snap, node in ((start, n), (end, n + 1)):
            if snap.node < 0:
                virt.append((node, int(net.u[snap.k]), snap.k, snap.s, 0.0))
                virt.append((node, int(net.v[snap.k]), snap.k, snap.s, float(net.lines_m[snap.k].length)))
        if start.node < 0 and end.node < 0 and start.k == end.k:
            virt.append((n, n + 1, start.k, start.s, end.s))
        self.virt = virt
        self.ax, self.ay = start.x, start.y
        self.bx, self.by = end.x, end.y
        self.straight = float(np.hypot(self.bx - self.ax, self.by - self.ay))
        # A segment an end sits on part-way may be walked whatever its opening hours (you are there).
        self.walkable = attrs.open.copy()
        for snap in (start, end):
            if snap.node < 0:
                self.walkable[snap.k] = True
        xs = np.concatenate([net.vx, [self.ax, self.bx]])
        ys = np.concatenate([net.vy, [self.ay, self.by]])
        self.focal = np.hypot(xs - self.ax, ys - self.ay) + np.hypot(xs - self.bx, ys - self.by)
        self.runs = 0
        self._cached: _Ellipse | None = None

    # -- one Dijkstra run -----------------------------------------------------------------------------
    def inside(self, axis: float) -> np.ndarray:
        """Vertices inside the ellipse of major axis `axis` (the virtual ends always are)."""
        if not self.prune:
            return np.ones(len(self.focal), dtype=bool)
        return self.focal <= axis + ELLIPSE_SLACK_M

    def _ellipse(self, axis: float) -> _Ellipse:
        """The segments (and virtual pieces) inside the ellipse, grouped by the pair of vertices they
        join, with the layout of a symmetric CSR matrix over those pairs: built once per ellipse,
        so each trade-off's search only fills in costs."""
        if self._cached is not None and self._cached.axis == axis:
            return self._cached
        net, ok = self.net, self.inside(axis)
        # The network's segments already sorted by pair (no sort per request); the few virtual
        # pieces are put in their places.
        keep = ok[net.u] & ok[net.v] & self.walkable & (net.u != net.v)
        sel = net.pair_order[keep[net.pair_order]]
        self.edges_read = max(self.edges_read, len(sel))
        va = np.array([p[0] for p in self.virt], dtype=np.int64)
        vb = np.array([p[1] for p in self.virt], dtype=np.int64)
        vk = np.array([p[2] for p in self.virt], dtype=np.int64)
        vlen = np.array([abs(p[4] - p[3]) for p in self.virt], dtype=float)
        vin = np.flatnonzero(ok[va] & ok[vb]) if len(self.virt) else np.zeros(0, dtype=np.int64)
        lo = np.minimum(net.u[sel], net.v[sel]).astype(np.int64)
        key = lo * self.n + np.maximum(net.u[sel], net.v[sel])
        vkey = np.minimum(va[vin], vb[vin]) * self.n + np.maximum(va[vin], vb[vin])
        by_key = np.argsort(vkey, kind="stable")
        vin, vkey = vin[by_key], vkey[by_key]
        at = np.searchsorted(key, vkey)  # sorted inserts into a sorted array keep it sorted
        key = np.insert(key, at, vkey)
        seg = np.insert(sel, at, vk[vin])                        # the segment each piece is of
        length = np.insert(net.length[sel], at, vlen[vin])
        ref = np.insert(sel, at, -1 - vin)                       # >= 0 a segment, < 0 a virtual piece
        first = np.concatenate([[True], key[1:] != key[:-1]]) if len(key) else np.zeros(0, dtype=bool)
        starts = np.flatnonzero(first)
        keys = key[starts]
        pair_lo, pair_hi = keys // self.n, keys % self.n
        m = len(keys)
        # Both directions of each pair; data 1..m names the pair, so the CSR layout maps to pairs.
        layout = csr_matrix((np.concatenate([np.arange(1, m + 1), np.arange(1, m + 1)]).astype(float),
                            (np.concatenate([pair_lo, pair_hi]), np.concatenate([pair_hi, pair_lo]))),
                            shape=(self.n, self.n))
        pair_of_slot = layout.data.astype(np.int64) - 1
        self._cached = _Ellipse(axis, starts, keys, seg, length, ref, layout.indices, layout.indptr, pair_of_slot)
        return self._cached

    def run(self, lam: float, axis: float, limit: float = np.inf) -> tuple[float, Walk | None]:
        """The least-cost walk for trade-off `lam` among the segments inside the ellipse, if one
        costs at most `limit` (the search stops there: nothing beyond can beat a known walk)."""
        self.runs += 1
        e = self._ellipse(axis)
        cost = np.maximum(e.length * (1.0 + lam * self.attrs.pen[e.seg]), 1e-9)
        best = np.minimum.reduceat(cost, e.starts) if len(cost) else cost  # parallel pieces: the cheaper
        graph = csr_matrix((best[e.pair_of_slot], e.indices, e.indptr), shape=(self.n, self.n))
        dist, pred = dijkstra(graph, directed=True, indices=self.src, return_predecessors=True, limit=limit)
        total = float(dist[self.dst])
        if not np.isfinite(total):
            return total, None
        chain = [self.dst]
        while chain[-1] != self.src:
            chain.append(int(pred[chain[-1]]))
        chain.reverse()
        steps = np.array(chain, dtype=np.int64)
        frm, to = steps[:-1], steps[1:]
        groups = np.searchsorted(e.keys, np.minimum(frm, to) * self.n + np.maximum(frm, to))
        ends = np.append(e.starts[1:], len(cost))
        picked = e.starts[groups]
        for i in np.flatnonzero(ends[groups] - e.starts[groups] > 1):  # parallel pieces: the cheaper
            g = groups[i]
            picked[i] = e.starts[g] + int(np.argmin(cost[e.starts[g]:ends[g]]))
        net = self.net
        pieces: list[Piece] = []
        for prev, r in zip(frm.tolist(), e.ref[picked].tolist()):
            if r >= 0:
                full = float(net.lines_m[r].length)
                pieces.append(Piece(r, 0.0, full) if net.u[r] == prev else Piece(r, full, 0.0))
            else:
                f, t, k, s0, s1 = self.virt[-1 - r]
                pieces.append(Piece(k, s0, s1) if f == prev else Piece(k, s1, s0))
        return total, self.walk(pieces, lam)

    def walk(self, pieces: list[Piece], lam: float) -> Walk:
        net, at = self.net, self.attrs
        w = Walk(pieces, lam)
        for p in pieces:
            share = p.length / net.length[p.k] if net.length[p.k] > 0 else 0.0
            w.length += p.length
            w.penalty += p.length * at.pen[p.k]
            w.covered += share * net.covered[p.k]
            w.lit += p.length * at.lit[p.k]
        w.cost = w.length + lam * w.penalty
        w.key = tuple((p.k, round(p.a, 2), round(p.b, 2)) for p in pieces)
        return w

    # -- the profiles ---------------------------------------------------------------------------------
    def shortest(self) -> Walk:
        axis = max(FIRST_AXIS * self.straight, self.straight + FIRST_AXIS_PLUS_M)
        while True:
            total, walk = self.run(0.0, axis, limit=axis + ELLIPSE_SLACK_M)
            everything = bool(self.inside(axis).all())
            if walk is not None and total <= axis:
                return walk  # no walk shorter than this one can leave this ellipse
            if everything:
                if walk is not None:
                    return walk
                raise RouteProblem("unreachable", "No walkable route joins the two points at that time "
                                                  "(the only ways between them are closed then).")
            axis = max(2 * axis, total if np.isfinite(total) else 0.0)

    def trade_off(self, shortest: Walk, max_detour: float) -> list[Walk]:
        """The hull of (length, penalty) in the ellipse of max_detour × the shortest length, shortest
        first; each walk optimal for its own λ."""
        axis = max_detour * shortest.length
        found = {shortest.key: shortest}
        # No walk costs more than the shortest does at the same trade-off: the searches stop there.
        _, safest = self.run(LAMBDA_MAX, axis, limit=_above(shortest.length + LAMBDA_MAX * shortest.penalty))
        if safest is None or safest.key in found:
            return [shortest]
        found[safest.key] = safest
        todo = [(shortest, safest)]
        while todo and self.runs < MAX_SEARCHES + 1:
            w1, w2 = todo.pop(0)
            if w1.penalty - w2.penalty <= 1e-9 or w2.length - w1.length <= 1e-9:
                continue
            lam = (w2.length - w1.length) / (w1.penalty - w2.penalty)
            line = w1.length + lam * w1.penalty  # = w2's cost at this lam: the walk to beat
            _, w = self.run(lam, axis, limit=_above(line))
            if w is None or w.key in found:
                continue
            if w.cost < line - 1e-9 * max(line, 1.0):
                found[w.key] = w
                todo += [(w1, w), (w, w2)]
        return sorted(found.values(), key=lambda w: (w.length, w.penalty))


def _above(cost: float) -> float:
    """A search limit a little above a known walk's cost, so rounding never hides that walk."""
    return cost * (1 + 1e-9) + 1e-6


def choose(hull: list[Walk], shortest: Walk, max_detour: float, n: int = 3) -> list[Walk]:
    """The safest walk and its alternatives: hull walks within the detour limit and at least as
    camera-covered as the shortest, least penalty first (the shortest itself when none is safer;
    never the shortest as a mere alternative)."""
    limit = max_detour * shortest.length + 1e-6
    floor = shortest.share(shortest.covered) - 1e-9
    ok = [w for w in hull if w.length <= limit and w.share(w.covered) >= floor]
    ok.sort(key=lambda w: (w.penalty, w.length))
    if not ok:
        return [shortest]
    # The shortest walk is answered on its own: it is an alternative only as the safest.
    return [ok[0], *[w for w in ok[1:] if w.key != shortest.key]][:n]
