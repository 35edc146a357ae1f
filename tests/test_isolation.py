"""Ten partnerships on one server, all over the same few streets: nothing of one reaches another.

Each of the ten Greater Manchester boroughs gets cameras, an owning agency, a data set of
incidents, an import run and an embed, every text marked with its own tag (ISOLATION03TAG-CAM-SECRET,
ISOLATION03TAG-LOC-SECRET, ...), every coordinate distinct and every count different. Then an admin and a
viewer of each partnership GET every GET route in the OpenAPI document — lists with a bbox over
everything, TileJSON for each layer, every tile at zooms 12-16 over the data, the overview map,
error paths with the other partnerships' ids, the embed routes with the other partnerships' keys —
and no body or header may carry another partnership's tag, id, coordinate, count or bounds.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date

import mapbox_vector_tile
from sqlalchemy import text

from app.tiles.sql import lonlat_to_tile
from tests.factories import agency, camera, dataset, incidents

BOROUGHS = ["bolton", "bury", "manchester", "oldham", "rochdale", "salford", "stockport", "tameside",
            "trafford", "wigan"]
FRAMED = {"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "cross-site"}
TILE_FETCH = {"Sec-Fetch-Dest": "empty", "Sec-Fetch-Site": "same-origin"}
ZOOMS = range(12, 17)
MVT = "application/vnd.mapbox-vector-tile"


def tag(i: int) -> str:
    # Long enough that no random token (a CSRF cookie, an ETag) can hold another borough's tag by
    # chance: "P06-" alone turned up in a base64 cookie once in a few hundred runs.
    return f"ISOLATION{i:02d}TAG"


def lonlat(i: int, k: int) -> tuple[float, float]:
    """Point k of partnership i: all within ~1.5 km of Piccadilly, each 5-decimal string unique."""
    return -2.2300 - (i * 10 + k) * 0.00013, 53.4800 + (i * 10 + k) * 0.00011


def coordinate_strings(i: int) -> set[str]:
    return {f"{v:.5f}" for k in range(6) for v in lonlat(i, k)}


@dataclass
class Borough:
    index: int
    slug: str
    admin: object
    viewer: object
    camera_ids: set[int] = field(default_factory=set)
    incident_ids: set[int] = field(default_factory=set)
    incidents: int = 0
    embed_id: int = 0
    dataset_id: int = 0
    public_id: str = ""
    key: str = ""

    @property
    def extent(self) -> tuple[float, float, float, float]:
        pts = [lonlat(self.index, k) for k in range(6)]
        return (min(p[0] for p in pts), min(p[1] for p in pts), max(p[0] for p in pts), max(p[1] for p in pts))


async def build(db, client, make_caller) -> list[Borough]:
    boroughs = []
    for i, name in enumerate(BOROUGHS, start=1):
        slug = f"p{i:02d}-{name}"
        b = Borough(i, slug, await make_caller(slug, "admin"), await make_caller(slug, "viewer"))
        pid = b.admin.partnership_id
        t = tag(i)
        owner = await agency(db, pid, f"{t}-AGENCY-SECRET", "council")
        for k in range(3):
            b.camera_ids.add(await camera(db, pid, f"{t}-CAM-SECRET-{k}", lonlat(i, k), owner_agency_id=owner,
                                          name=f"{t}-NAME-SECRET", bearing=90, fov=60, range_m=20))
        b.dataset_id = await dataset(db, pid, f"{t.lower()}-dataset", agency_id=owner, name=f"{t}-DATASET-SECRET")
        run = (await db.execute(text(
            "INSERT INTO import_run (partnership_id, kind, file, status, rows_total, rows_loaded, rows_rejected, "
            "rejects, message) VALUES (:p, 'police_uk', :f, 'loaded', :n, :n, 1, CAST(:rej AS jsonb), :m) RETURNING id"),
            {"p": pid, "f": f"{t}-FILE-SECRET.csv", "n": 100 + i, "m": f"{t}-MESSAGE-SECRET",
             "rej": json.dumps([{"line": 7, "reason": f"{t}-REJECT-SECRET"}])})).scalar_one()
        # A different number of incidents in each partnership (so counts tell them apart), on
        # three points, some stacked.
        b.incidents = 6 * i + 1
        b.incident_ids.update(await incidents(
            db, pid, b.dataset_id,
            [(*lonlat(i, 3 + n % 3), f"{t}-CATEGORY-SECRET" if n == 0 else "Burglary", date(2024, i, 1))
             for n in range(b.incidents)],
            import_run_id=run, location_text=f"{t}-LOC-SECRET", external_ref=[f"{t}-REF-SECRET-{n}" for n in range(b.incidents)]))
        r = await client.post("/api/embeds", headers=b.admin.headers, json={
            "title": f"{t}-EMBED-SECRET", "layers": ["cameras", "coverage", "incidents"],
            "allowed_origins": [f"https://{t.lower()}-intranet.example"]})
        assert r.status_code == 201, r.text
        b.embed_id, b.public_id = r.json()["id"], r.json()["public_id"]
        b.key = r.json()["url"].split("key=", 1)[1]
        boroughs.append(b)
    return boroughs


def covering_tiles(boroughs: list[Borough]) -> list[tuple[int, int, int]]:
    west = min(b.extent[0] for b in boroughs) - 0.001
    south = min(b.extent[1] for b in boroughs) - 0.001
    east = max(b.extent[2] for b in boroughs) + 0.001
    north = max(b.extent[3] for b in boroughs) + 0.001
    tiles = []
    for z in ZOOMS:
        x0, y0 = lonlat_to_tile(west, north, z)
        x1, y1 = lonlat_to_tile(east, south, z)
        tiles += [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    return tiles


class Leak(AssertionError):
    pass


def check_text(body: str, me: Borough, others: list[Borough], where: str) -> None:
    low = body.lower()
    for o in others:
        t = tag(o.index).lower()
        for marker in (f"{t}-", o.slug, o.public_id.lower()):
            if marker in low:
                at = low.index(marker)
                raise Leak(f"{where}: {marker!r} of {o.slug} seen by {me.slug}: ...{body[max(0, at - 80):at + 80]}...")
        for c in coordinate_strings(o.index):
            if c in body:
                raise Leak(f"{where}: a coordinate of {o.slug} ({c}) seen by {me.slug}")


def check_json(data, me: Borough, where: str, slack: float = 0.001) -> None:
    """GeoJSON features are ours; counts are our counts; no bounds beyond our data."""
    if not isinstance(data, dict):
        return
    if data.get("type") == "FeatureCollection":
        ids = {f.get("id") for f in data["features"]}
        if "/api/cameras" in where:
            assert ids <= me.camera_ids, f"{where}: camera ids {ids - me.camera_ids} are not {me.slug}'s"
            assert data.get("numberMatched") in (None, len(me.camera_ids)), where
        if "/api/incidents" in where:
            assert ids <= me.incident_ids, f"{where}: incident ids {ids - me.incident_ids} are not {me.slug}'s"
            assert data.get("numberMatched") in (None, me.incidents), f"{where}: {data.get('numberMatched')}"
    if "categories" in data and "/api/categories" in where:
        assert sum(c["count"] for c in data["categories"]) == me.incidents, where
    if "bounds" in data and isinstance(data["bounds"], list) and len(data["bounds"]) == 4:
        west, south, east, north = data["bounds"]
        x0, y0, x1, y1 = me.extent
        if (west, south, east, north) != (-180.0, -85.0511, 180.0, 85.0511):
            assert west >= x0 - slack and south >= y0 - slack and east <= x1 + slack and north <= y1 + slack, \
                f"{where}: bounds {data['bounds']} reach beyond {me.slug}'s data {me.extent}"


def check_tile(body: bytes, me: Borough, others: list[Borough], where: str, counts: dict) -> None:
    for name, layer in mapbox_vector_tile.decode(body).items():
        for f in layer["features"]:
            props = f["properties"]
            check_text(json.dumps(props), me, others, where)
            if "count" in props:
                counts[name] = counts.get(name, 0) + int(props["count"])
            elif name in ("cameras", "coverage"):
                assert f.get("id") in me.camera_ids, f"{where}: feature {f.get('id')} is not {me.slug}'s camera"
            elif name == "incidents":
                assert f.get("id") in me.incident_ids, f"{where}: feature {f.get('id')} is not {me.slug}'s incident"
                counts.setdefault("incident_ids", set()).add(f["id"])  # tiles overlap by a buffer


def check_response(r, me: Borough, others: list[Borough], where: str, counts: dict | None = None,
                   slack: float = 0.001) -> None:
    assert r.status_code < 500 and r.status_code != 429, f"{where}: {r.status_code} {r.text[:200]}"
    check_text(json.dumps(dict(r.headers)), me, others, where + " (headers)")
    if r.headers.get("content-type", "").startswith(MVT):
        check_tile(r.content, me, others, where, counts if counts is not None else {})
        return
    check_text(r.text, me, others, where)
    if "json" in r.headers.get("content-type", ""):
        check_json(r.json(), me, where)
    for m in re.finditer(r'<script type="application/json" id="safermap-config">(.*?)</script>', r.text, re.S):
        config = json.loads(m.group(1))
        if config.get("bounds"):
            (south, west), (north, east) = config["bounds"]
            check_json({"bounds": [west, south, east, north]}, me, where + " (page bounds)", slack)


def urls_for(app, path: str, me: Borough, others: list[Borough], tiles, layers) -> list[tuple[str, dict]]:
    """Concrete URLs (and extra headers) for one OpenAPI GET path."""
    if path.startswith("/embed/"):
        return []  # walked separately, with keys
    if path == "/api/cameras/{camera_id}":
        return [(f"/api/cameras/{cid}", {}) for o in [me, *others] for cid in sorted(o.camera_ids)[:1]]
    if path == "/tiles/{layer_id}.json":
        return [(f"/tiles/{l}.json", {}) for l in layers]
    if path == "/tiles/{layer_id}/{z}/{x}/{y}.mvt":
        return [(f"/tiles/{l}/{z}/{x}/{y}.mvt", {}) for l in layers for z, x, y in tiles
                if l in ("cameras", "coverage", "incidents") or z == 14]
    if "{" in path:
        # Other routes with ids: the other partnerships' ids of that kind (and of cameras, for a
        # kind this suite does not know yet) in their place.
        param = re.search(r"\{([^}]+)\}", path)[1]
        if "dataset" in param:
            ids = [o.dataset_id for o in others]
        elif "embed" in param:
            ids = [o.embed_id for o in others]
        else:
            ids = sorted({i for o in others for i in o.camera_ids})[:5] + [1, 2]
        return [(re.sub(r"\{[^}]+\}", str(i), path), {}) for i in ids]
    query = "?bbox=-180,-85,180,85" if path in ("/api/cameras", "/api/incidents") else ""
    return [(path + query, {})]


async def test_nothing_of_one_partnership_reaches_another(app, client, db, make_caller):
    boroughs = await build(db, client, make_caller)
    tiles = covering_tiles(boroughs)
    layers = sorted(app.state.catalog.layers)
    paths = [p for p, ops in app.openapi()["paths"].items() if "get" in ops]
    assert {"/api/cameras", "/api/incidents", "/tiles/{layer_id}/{z}/{x}/{y}.mvt", "/maps/overview",
            "/embed/{public_id}"} <= set(paths)
    requests = 0
    for me in boroughs:
        others = [o for o in boroughs if o is not me]
        for caller in (me.admin, me.viewer):
            headers = {**caller.headers, "Accept": "application/json"}
            counts: dict[int, dict] = {}
            own_seen: set[str] = set()
            for path in paths:
                for url, extra in urls_for(app, path, me, others, tiles, layers):
                    client.cookies.clear()
                    r = await client.get(url, headers={**headers, **extra})
                    requests += 1
                    where = f"{caller.role} of {me.slug}: GET {url}"
                    z = int(url.split("/")[3]) if url.startswith("/tiles/") and url.endswith(".mvt") else None
                    check_response(r, me, others, where, counts.setdefault(z, {}) if z is not None else None)
                    if z is None:
                        own_seen.update(m for m in ("CAM-SECRET", "LOC-SECRET", "FILE-SECRET")
                                        if f"{tag(me.index)}-{m}" in r.text)
            # The markers are real: this partnership's own show up where they belong.
            expected = {"CAM-SECRET", "LOC-SECRET"} | ({"FILE-SECRET"} if caller.role == "admin" else set())
            assert own_seen >= expected, f"{caller.role} of {me.slug} saw only {own_seen}"
            # Every incident is in the tiles at every zoom (counted in cells, or each one), and
            # nobody else's are.
            for z in ZOOMS:
                got = counts.get(z, {})
                seen = got.get("incidents", 0) + len(got.get("incident_ids", ()))
                assert seen == me.incidents, f"{caller.role} of {me.slug}, zoom {z}: {seen} != {me.incidents}"
            # Another partnership's camera is not found, exactly as a camera that does not exist.
            missing = await client.get("/api/cameras/999999", headers=headers)
            for o in others:
                cid = min(o.camera_ids)
                r = await client.get(f"/api/cameras/{cid}", headers=headers)
                assert r.status_code == 404, f"{me.slug} asking for {o.slug}'s camera: {r.status_code}"
                assert r.json()["detail"] == missing.json()["detail"].replace("999999", str(cid))

        # The embed routes: own key works on own embed only; another's key opens nothing.
        x, y = lonlat_to_tile(*lonlat(me.index, 0), 14)
        own = await client.get(f"/embed/{me.public_id}?key={me.key}", headers=FRAMED)
        assert own.status_code == 200
        # (an embed's bounds are of anonymous points, rounded out to 0.01°: none is a coordinate)
        check_response(own, me, others, f"embed page of {me.slug}", slack=0.013)
        for layer in ("cameras", "coverage", "incidents"):
            r = await client.get(f"/embed/{me.public_id}/tiles/{layer}/14/{x}/{y}.mvt?key={me.key}", headers=TILE_FETCH)
            check_response(r, me, others, f"embed tile {layer} of {me.slug}")
        for o in others[:3]:
            for url, extra in ((f"/embed/{me.public_id}?key={o.key}", FRAMED),
                               (f"/embed/{o.public_id}?key={me.key}", FRAMED),
                               (f"/embed/{me.public_id}/tiles/cameras/14/{x}/{y}.mvt?key={o.key}", TILE_FETCH)):
                r = await client.get(url, headers=extra)
                assert r.status_code == 404, f"{url}: {r.status_code}"
                check_text(r.text, me, [b for b in others if b is not o], url)
                assert "SECRET" not in r.text
            # Revoking another partnership's embed by id is not possible either.
            r = await client.delete(f"/api/embeds/{o.embed_id}", headers=me.admin.headers)
            assert r.status_code == 404
    print(f"\nisolation: {len(boroughs)} partnerships, {requests} GETs over {len(paths)} routes")
    assert requests > 1000
