"""Importing a council camera register: CSV (the spreadsheet councils keep) or GeoJSON.

Every row is checked before anything is written; rows that fail are reported with their CSV line
(or GeoJSON feature index) and the rest load in one transaction. Re-importing a register updates
cameras by reference instead of adding them twice. Each run is recorded in import_run.
"""
from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from pyproj import Transformer
from rich.console import Console

from app import audit
from app.analysis.coverage import refresh_coverage
from app.db import raw_connection
from app.domain_errors import ImportRefused
from app.ingest.camera_values import parse_bool, parse_camera_type, parse_direction, parse_number, parse_status
from app.ingest.run_record import cancel_reason, commit_through_cancel, run_recorder
from app.settings import Settings

MAX_BYTES = 50 * 1024 * 1024
PURPOSES = ("detect", "observe", "recognise", "identify")  # EN 62676-4
AGENCY_KINDS = {"police", "council", "fire", "ambulance", "probation", "transport", "private", "other"}

# Header names people use, normalised (lower case, runs of other characters as '_'), per field.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "reference": ("reference", "ref", "id", "camera_id", "camera_ref", "camera_reference",
                  "camera_no", "camera_number", "asset_id"),
    "name": ("name", "location", "description", "camera_name", "site", "location_description"),
    "lat": ("lat", "latitude", "y_lat"),
    "lon": ("lon", "lng", "long", "longitude", "x_lon"),
    "easting": ("easting", "eastings", "x", "os_x", "grid_easting"),
    "northing": ("northing", "northings", "y", "os_y", "grid_northing"),
    "owner": ("owner", "owner_agency", "operator", "owned_by", "owner_name", "organisation"),
    "owner_kind": ("owner_kind", "owner_type", "agency_kind", "sector"),
    "camera_type": ("type", "camera_type", "kind"),
    "status": ("status", "state", "condition"),
    "monitored": ("monitored", "is_monitored", "live_monitored", "monitoring"),
    "retention_days": ("retention_days", "retention", "retention_period", "retention_period_days",
                       "days_retained"),
    "bearing": ("bearing", "direction", "heading", "bearing_deg", "bearing_degrees"),
    "fov": ("fov", "angle", "field_of_view", "fov_deg", "view_angle"),
    "range_m": ("range_m", "range", "range_metres", "range_meters", "reach", "reach_m"),
    "height_m": ("height_m", "height", "mounting_height", "height_metres", "height_meters"),
    "resolution_px": ("resolution_px", "resolution", "horizontal_resolution", "resolution_h",
                      "pixels", "h_pixels", "horizontal_pixels"),
    "purpose": ("purpose", "use", "en62676_purpose", "dori"),
    "contact": ("contact", "contact_details", "footage_contact", "email", "phone"),
    "notes": ("notes", "note", "comments", "comment", "remarks"),
}
# GeoJSON properties use the API's names.
GEOJSON_FIELDS = ("reference", "name", "owner_agency", "owner_kind", "camera_type", "status",
                  "bearing", "fov", "range_m", "height_m", "monitored", "retention_days",
                  "contact", "notes", "resolution_px", "purpose")
# Fields whose column, when the file lacks it, leaves the stored value alone on re-import.
KEEPABLE = ("name", "owner", "camera_type", "status", "monitored", "retention_days", "bearing",
            "fov", "range_m", "height_m", "contact", "notes", "resolution_px", "purpose")

PARTNERSHIP_BY_SLUG = "SELECT id FROM partnership WHERE slug = $1"

START_RUN = """
    INSERT INTO import_run (partnership_id, kind, file, checksum, status, message, finished_at)
    VALUES ($1, 'cameras', $2, $3, $4, $5, CASE WHEN $4 = 'running' THEN NULL ELSE now() END)
    RETURNING id
"""

FINISH_RUN = """
    UPDATE import_run SET status = $2, rows_total = $3, rows_loaded = $4, rows_rejected = $5,
        rejects = $6::jsonb, message = $7, finished_at = now()
    WHERE id = $1
"""

# An explicit owner_kind from the file wins over the kind an existing agency has.
UPSERT_AGENCY = """
    INSERT INTO agency (partnership_id, name, kind) VALUES ($1, $2, $3)
    ON CONFLICT (partnership_id, name)
    DO UPDATE SET kind = CASE WHEN $4 THEN EXCLUDED.kind ELSE agency.kind END
    RETURNING id
"""

# One statement for the whole register: the data-version trigger fires once, and a reference
# already known to the partnership is updated (version bumped), never duplicated. Columns the
# file did not have ($keep) keep what is stored, so a survey made in the app is not wiped.
UPSERT_CAMERAS = """
    INSERT INTO camera AS c (partnership_id, reference, name, geom, owner_agency_id, camera_type,
        status, monitored, retention_days, bearing, fov, range_m, height_m, contact, notes, source,
        resolution_px, purpose)
    SELECT $1, r.reference, r.name, ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326), r.owner_id,
           r.camera_type, r.status, r.monitored, r.retention_days, r.bearing, r.fov, r.range_m,
           r.height_m, r.contact, r.notes, 'register', r.resolution_px, r.purpose
    FROM unnest($2::text[], $3::text[], $4::float8[], $5::float8[], $6::int[], $7::text[],
                $8::text[], $9::bool[], $10::int[], $11::float8[], $12::float8[], $13::float8[],
                $14::float8[], $15::text[], $16::text[], $18::int[], $19::text[])
         AS r(reference, name, lon, lat, owner_id, camera_type, status, monitored, retention_days,
              bearing, fov, range_m, height_m, contact, notes, resolution_px, purpose)
    ON CONFLICT (partnership_id, reference) DO UPDATE SET
        geom = EXCLUDED.geom,
        name = CASE WHEN 'name' = ANY($17) THEN c.name ELSE EXCLUDED.name END,
        owner_agency_id = CASE WHEN 'owner' = ANY($17) THEN c.owner_agency_id ELSE EXCLUDED.owner_agency_id END,
        camera_type = CASE WHEN 'camera_type' = ANY($17) THEN c.camera_type ELSE EXCLUDED.camera_type END,
        status = CASE WHEN 'status' = ANY($17) THEN c.status ELSE EXCLUDED.status END,
        monitored = CASE WHEN 'monitored' = ANY($17) THEN c.monitored ELSE EXCLUDED.monitored END,
        retention_days = CASE WHEN 'retention_days' = ANY($17) THEN c.retention_days ELSE EXCLUDED.retention_days END,
        bearing = CASE WHEN 'bearing' = ANY($17) THEN c.bearing ELSE EXCLUDED.bearing END,
        fov = CASE WHEN 'fov' = ANY($17) THEN c.fov ELSE EXCLUDED.fov END,
        range_m = CASE WHEN 'range_m' = ANY($17) THEN c.range_m ELSE EXCLUDED.range_m END,
        height_m = CASE WHEN 'height_m' = ANY($17) THEN c.height_m ELSE EXCLUDED.height_m END,
        contact = CASE WHEN 'contact' = ANY($17) THEN c.contact ELSE EXCLUDED.contact END,
        notes = CASE WHEN 'notes' = ANY($17) THEN c.notes ELSE EXCLUDED.notes END,
        resolution_px = CASE WHEN 'resolution_px' = ANY($17) THEN c.resolution_px ELSE EXCLUDED.resolution_px END,
        purpose = CASE WHEN 'purpose' = ANY($17) THEN c.purpose ELSE EXCLUDED.purpose END,
        source = 'register',
        version = c.version + 1,
        updated_at = now()
    RETURNING c.id, (xmax = 0) AS inserted
"""

_BNG_TO_WGS84 = Transformer.from_crs(27700, 4326, always_xy=True)


@dataclass
class CameraRow:
    where: dict[str, int]  # {"line": n} or {"feature": i}
    reference: str
    lon: float
    lat: float
    name: str = ""
    owner: str | None = None
    owner_kind: str | None = None
    camera_type: str = "fixed"
    status: str = "operational"
    monitored: bool = False
    retention_days: int | None = None
    bearing: float | None = None
    fov: float | None = None
    range_m: float | None = None
    height_m: float | None = None
    contact: str = ""
    notes: str = ""
    resolution_px: int | None = None
    purpose: str | None = None


@dataclass
class Parsed:
    rows: list[CameraRow] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    absent: list[str] = field(default_factory=list)  # KEEPABLE fields the file has no column for


# -- checking one record ---------------------------------------------------------------------------
def _text(values: dict[str, str], key: str, limit: int) -> str:
    value = (values.get(key) or "").strip()
    if len(value) > limit:
        raise ValueError(f"{key} is longer than {limit} characters")
    return value


def _optional(values: dict[str, str], key: str, parse, lo: float, hi: float, units=(),
              lo_open: bool = False) -> float | None:
    raw = (values.get(key) or "").strip()
    if not raw:
        return None
    number = parse(raw) if parse else parse_number(raw, units)
    if number < lo or number > hi or (lo_open and number == lo):
        bound = "more than" if lo_open else "at least"
        raise ValueError(f"{key} {raw!r} must be {bound} {lo:g} and at most {hi:g}")
    return number


def _check_record(values: dict[str, str], where: dict[str, int], lonlat: tuple[float, float]) -> CameraRow:
    """A CameraRow from a record's text values; ValueError with a readable reason if it is wrong.
    The bounds mirror the camera table's CHECK constraints, so the load itself cannot fail."""
    reference = _text(values, "reference", 100)
    if not reference:
        raise ValueError("reference is empty")
    row = CameraRow(where=where, reference=reference, lon=lonlat[0], lat=lonlat[1])
    row.name = _text(values, "name", 200)
    row.owner = _text(values, "owner", 200) or None
    kind = _text(values, "owner_kind", 40).lower()
    if kind and kind not in AGENCY_KINDS:
        raise ValueError(f"owner_kind {kind!r} is not one of {', '.join(sorted(AGENCY_KINDS))}")
    row.owner_kind = kind or None
    if (values.get("camera_type") or "").strip():
        row.camera_type = parse_camera_type(values["camera_type"])
    if (values.get("status") or "").strip():
        row.status = parse_status(values["status"])
    if (values.get("monitored") or "").strip():
        row.monitored = parse_bool(values["monitored"])
    retention = _optional(values, "retention_days", None, 0, 3650, ("d", "day", "days"))
    if retention is not None and retention != int(retention):
        raise ValueError("retention_days must be whole days")
    row.retention_days = None if retention is None else int(retention)
    row.bearing = _optional(values, "bearing", parse_direction, 0, 360)
    row.fov = _optional(values, "fov", None, 0, 360, ("°", "deg", "degrees"), lo_open=True)
    row.range_m = _optional(values, "range_m", None, 0, 2000, ("m",), lo_open=True)
    row.height_m = _optional(values, "height_m", None, 0, 300, ("m",))
    resolution = _optional(values, "resolution_px", _resolution, 160, 20000)
    row.resolution_px = None if resolution is None else int(resolution)
    purpose = _text(values, "purpose", 20).lower()
    purpose = {"recognize": "recognise", "detection": "detect", "observation": "observe",
               "recognition": "recognise", "identification": "identify"}.get(purpose, purpose)
    if purpose and purpose not in PURPOSES:
        raise ValueError(f"purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
    row.purpose = purpose or None
    row.contact = _text(values, "contact", 500)
    row.notes = _text(values, "notes", 4000)
    return row


def _resolution(raw: str) -> float:
    """Horizontal pixels: '1920', '1920x1080', '1920 px'."""
    width = re.split(r"\s*[x×*]\s*", raw.strip().lower())[0]
    return parse_number(width, ("px", "pixels"))


def _lonlat(lon: str, lat: str) -> tuple[float, float]:
    x, y = parse_number(lon), parse_number(lat)
    if not (-180 <= x <= 180 and -90 <= y <= 90):
        raise ValueError(f"longitude/latitude {lon}, {lat} are not on the earth")
    return x, y


def _bng(easting: str, northing: str) -> tuple[float, float]:
    e, n = parse_number(easting, ("m",)), parse_number(northing, ("m",))
    if not (0 <= e <= 700_000 and 0 <= n <= 1_300_000):
        raise ValueError(f"easting/northing {easting}, {northing} are outside the British National Grid")
    if e < 1000 and n < 1000:
        raise ValueError(f"easting/northing {easting}, {northing} look like degrees: "
                         "name those columns longitude and latitude")
    return _BNG_TO_WGS84.transform(e, n)


def _add(parsed: Parsed, seen: dict[str, dict], values: dict[str, str], where: dict[str, int],
         locate) -> None:
    parsed.total += 1
    try:
        row = _check_record(values, where, locate())
    except ValueError as e:
        parsed.rejects.append({**where, "reason": str(e)})
        return
    if row.reference in seen:  # one statement cannot update the same camera twice
        first = ", ".join(f"{k} {v}" for k, v in seen[row.reference].items())
        parsed.rejects.append({**where, "reason": f"reference {row.reference!r} already given at {first}"})
        return
    seen[row.reference] = where
    parsed.rows.append(row)


# -- CSV ---------------------------------------------------------------------------------------------
def _normalise(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def _map_columns(headers: list[str]) -> dict[str, int]:
    """field -> column index, by the first header that is one of the field's synonyms."""
    names = [_normalise(h) for h in headers]
    # '(m)' and '(days)' suffixes: 'Height (m)' -> height_m already; 'Retention (days)' -> retention_days.
    columns: dict[str, int] = {}
    for fieldname, synonyms in SYNONYMS.items():
        for i, name in enumerate(names):
            if name in synonyms and i not in columns.values():
                columns[fieldname] = i
                break
    return columns


def parse_csv(text: str) -> Parsed:
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample.splitlines()[0] if sample else "", delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        headers = next(reader)
    except StopIteration:
        raise ImportRefused("The file is empty.") from None
    columns = _map_columns(headers)
    has_lonlat = {"lat", "lon"} <= columns.keys()
    has_bng = {"easting", "northing"} <= columns.keys()
    if "reference" not in columns or not (has_lonlat or has_bng):
        missing = ([] if "reference" in columns else ["reference column (reference, ref, id or camera_id)"]) + (
            [] if has_lonlat or has_bng else
            ["coordinate columns (latitude and longitude, or easting and northing)"])
        raise ImportRefused(
            "This does not look like a camera register: it has no " + " and no ".join(missing)
            + f". Its columns are: {', '.join(h for h in headers if h.strip()) or 'none'}.")

    parsed = Parsed(absent=[f for f in KEEPABLE if f not in columns])
    seen: dict[str, dict] = {}
    last_line = reader.line_num
    for record in reader:
        line, last_line = last_line + 1, reader.line_num  # the physical line the record starts on
        if not any(cell.strip() for cell in record):
            continue
        values = {f: record[i] if i < len(record) else "" for f, i in columns.items()}

        def locate(v=values) -> tuple[float, float]:
            if has_lonlat and v["lat"].strip() and v["lon"].strip():
                return _lonlat(v["lon"], v["lat"])
            if has_bng and v["easting"].strip() and v["northing"].strip():
                return _bng(v["easting"], v["northing"])
            raise ValueError("no coordinates")

        _add(parsed, seen, values, {"line": line}, locate)
    return parsed


# -- GeoJSON ----------------------------------------------------------------------------------------
def _declared_bng(doc: dict) -> bool:
    """Pre-RFC 7946 files may name their CRS; British National Grid ones are common in councils."""
    name = str(((doc.get("crs") or {}).get("properties") or {}).get("name", ""))
    return name.endswith(":27700") or name.endswith("::27700")


def parse_geojson(doc: Any) -> Parsed:
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(
            doc.get("features"), list):
        raise ImportRefused("This JSON is not a GeoJSON FeatureCollection of camera points.")
    bng = _declared_bng(doc)
    present: set[str] = set()
    parsed = Parsed()
    seen: dict[str, dict] = {}
    for index, feature in enumerate(doc["features"]):
        props = feature.get("properties") if isinstance(feature, dict) else None
        props = props if isinstance(props, dict) else {}
        present.update(props)
        values = {f: "" if props.get(f) is None else str(props[f]) for f in GEOJSON_FIELDS}
        values["owner"] = values.pop("owner_agency")
        if isinstance(props.get("monitored"), bool):
            values["monitored"] = "yes" if props["monitored"] else "no"

        def locate(f=feature) -> tuple[float, float]:
            geom = f.get("geometry") if isinstance(f, dict) else None
            if not isinstance(geom, dict) or geom.get("type") != "Point":
                raise ValueError("geometry is not a Point")
            coords = geom.get("coordinates")
            if not isinstance(coords, list) or len(coords) < 2:
                raise ValueError("the Point has no coordinates")
            if bng:
                return _bng(str(coords[0]), str(coords[1]))
            return _lonlat(str(coords[0]), str(coords[1]))

        _add(parsed, seen, values, {"feature": index}, locate)
    names = {"owner" if p == "owner_agency" else p for p in present}
    parsed.absent = [f for f in KEEPABLE if f not in names]
    return parsed


def parse_register(raw: bytes, filename: str) -> Parsed:
    """Parsed rows and rejects, or ImportRefused for a file that is no register at all."""
    if not raw.strip():
        raise ImportRefused("The file is empty.")
    if raw[:4] == b"PK\x03\x04":
        raise ImportRefused("This is a spreadsheet (xlsx) or another zip file: save the register as CSV.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")  # registers saved from Excel on Windows
    stripped = text.lstrip()
    if stripped[:1] in "{[" or filename.lower().endswith((".json", ".geojson")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise ImportRefused(f"This is not valid JSON ({e.msg} at line {e.lineno}).") from None
        return parse_geojson(doc)
    return parse_csv(text)


# -- the database -----------------------------------------------------------------------------------
def guess_agency_kind(name: str) -> str:
    lower = name.lower()
    if "police" in lower or "constabulary" in lower:
        return "police"
    if "council" in lower:
        return "council"
    return "private"


async def _owner_ids(conn: asyncpg.Connection, partnership_id: int, rows: list[CameraRow]) -> dict[str, int]:
    owners: dict[str, tuple[str, bool]] = {}
    for row in rows:
        if row.owner and (row.owner not in owners or row.owner_kind):
            owners[row.owner] = (row.owner_kind or guess_agency_kind(row.owner), bool(row.owner_kind))
    ids = {}
    for name, (kind, explicit) in owners.items():  # a register names a handful of owners
        ids[name] = await conn.fetchval(UPSERT_AGENCY, partnership_id, name, kind, explicit)
    return ids


async def _load(conn: asyncpg.Connection, partnership_id: int, parsed: Parsed) -> tuple[int, int]:
    rows = parsed.rows
    owners = await _owner_ids(conn, partnership_id, rows)
    def cols(attr: str) -> list:
        return [getattr(r, attr) for r in rows]

    result = await conn.fetch(
        UPSERT_CAMERAS, partnership_id, cols("reference"), cols("name"), cols("lon"), cols("lat"),
        [owners.get(r.owner) if r.owner else None for r in rows], cols("camera_type"), cols("status"),
        cols("monitored"), cols("retention_days"), cols("bearing"), cols("fov"), cols("range_m"),
        cols("height_m"), cols("contact"), cols("notes"), parsed.absent, cols("resolution_px"),
        cols("purpose"))
    inserted = sum(1 for r in result if r["inserted"])
    # Line of sight for what the register touched, in the same transaction as the load.
    await refresh_coverage(conn, partnership_id, [r["id"] for r in result])
    return inserted, len(result) - inserted


async def import_register(settings: Settings, path: Path, partnership_slug: str, console: Console) -> bool:
    """Load a register; True when every row loaded, False when some (or all) were rejected."""
    path = Path(path)
    # The run row lives on its own connection holding the run's lock (app.ingest.run_record).
    async with raw_connection(settings) as conn, run_recorder(settings) as runs:
        partnership_id = await conn.fetchval(PARTNERSHIP_BY_SLUG, partnership_slug)
        if partnership_id is None:
            raise ImportRefused(f"No partnership '{partnership_slug}'.")
        if not path.is_file():
            raise ImportRefused(f"{path} is not a file.")
        if path.stat().st_size > MAX_BYTES:
            raise ImportRefused(f"{path.name} is larger than {MAX_BYTES // 2**20} MB; is it really a register?")
        raw = path.read_bytes()
        checksum = hashlib.sha256(raw).hexdigest()
        try:
            parsed = parse_register(raw, path.name)
        except ImportRefused as e:
            await runs.conn.fetchval(START_RUN, partnership_id, path.name, checksum, "refused", str(e))
            raise
        run_id = await runs.start(START_RUN, partnership_id, path.name, checksum, "running", "")

        inserted = updated = 0
        status, message = "loaded", ""
        late: asyncio.CancelledError | None = None
        if parsed.rows:
            # By hand, not `async with`: a cancelled load is ended by closing its connection (it may
            # be mid-statement), and asyncpg's __aexit__ would then hide the CancelledError.
            tx = conn.transaction()
            try:
                await tx.start()
                try:
                    inserted, updated = await _load(conn, partnership_id, parsed)
                    await audit.record_raw(conn, "import.cameras", partnership_id=partnership_id,
                                           target=f"import_run/{run_id}", principal_name="safermap CLI",
                                           detail={"file": path.name, "checksum": checksum,
                                                   "inserted": inserted, "updated": updated,
                                                   "rejected": len(parsed.rejects)})
                except asyncio.CancelledError:
                    conn.terminate()  # the server rolls the transaction back
                    raise
                except BaseException:
                    await tx.rollback()
                    raise
                late = await commit_through_cancel(tx)
            except asyncpg.PostgresError as e:  # nothing was written: the transaction rolled back
                status, message = "failed", f"the database refused the load: {e}"
            except asyncio.CancelledError as e:
                await runs.cancelled(run_id, parsed.total, len(parsed.rejects),
                                     f"cancelled by {cancel_reason(e)}, nothing of this file was loaded")
                raise
            except BaseException:
                await runs.finish(run_id, FINISH_RUN, "failed", parsed.total, 0, len(parsed.rejects),
                                  json.dumps(parsed.rejects), "the import was interrupted")
                raise
        else:
            status, message = "failed", "no row could be loaded"
        loaded = inserted + updated
        if status == "loaded":
            message = f"{inserted} new, {updated} updated, {len(parsed.rejects)} rejected"
        if late is not None:
            message += f"; {cancel_reason(late)} came during the commit, which completed"
        await runs.finish(run_id, FINISH_RUN, status, parsed.total, loaded, len(parsed.rejects),
                          json.dumps(parsed.rejects), message)
        if late is not None:
            raise late

    _summary(console, path, parsed, status, message, inserted, updated)
    return status == "loaded" and not parsed.rejects


def _summary(console: Console, path: Path, parsed: Parsed, status: str, message: str,
             inserted: int, updated: int) -> None:
    colour = "green" if status == "loaded" and not parsed.rejects else "yellow" if status == "loaded" else "red"
    console.print(f"[bold {colour}]{path.name}[/]: {parsed.total} rows; {inserted} cameras added, "
                  f"{updated} updated, {len(parsed.rejects)} rejected"
                  + ("" if status == "loaded" else f" [red]({message})[/]"))
    for reject in parsed.rejects[:20]:
        where = f"line {reject['line']}" if "line" in reject else f"feature {reject['feature']}"
        console.print(f"  [red]{where}[/]: {reject['reason']}")
    if len(parsed.rejects) > 20:
        console.print(f"  … and {len(parsed.rejects) - 20} more (see the import run's rejects)")
