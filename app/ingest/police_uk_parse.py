"""Parsing police.uk street-level crime CSVs: a pure function over lines, no database.

Facts of the format that shape this code (design brief, section 3):
- anti-social behaviour rows have an empty Crime ID, and identical rows are distinct incidents,
  so nothing here deduplicates;
- rows with no location ("No location", empty coordinates) are kept with no coordinates;
- a bad row is rejected with its physical line number and the rest of the file still loads.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date

HEADER = ("Crime ID", "Month", "Reported by", "Falls within", "Longitude", "Latitude", "Location",
          "LSOA code", "LSOA name", "Crime type", "Last outcome category", "Context")
# Without these a file is not a street-level crime file at all (outcomes and stop-and-search files
# from the same archive lack "Crime type" or "Last outcome category").
REQUIRED = ("Crime ID", "Month", "Reported by", "Longitude", "Latitude", "Location", "Crime type",
            "Last outcome category")

CATEGORIES = ("Anti-social behaviour", "Bicycle theft", "Burglary", "Criminal damage and arson", "Drugs",
              "Other crime", "Other theft", "Possession of weapons", "Public order", "Robbery", "Shoplifting",
              "Theft from the person", "Vehicle crime", "Violence and sexual offences")

MAX_REJECTS_KEPT = 1000
_MONTH = re.compile(r"(\d{4})-(\d{2})")

# One staged row, in the column order of the staging table (see police_uk.STAGE_COLUMNS).
Record = tuple[str, str | None, str, date, float | None, float | None, str | None, str | None,
               str | None, str | None, str | None]


class NotPoliceUk(ValueError):
    """The header is not a police.uk street-level crime header."""


@dataclass
class ParseStats:
    """Counts and rejects, filled in while the records are consumed."""
    total: int = 0
    rejected: int = 0
    rejects: list[dict] = field(default_factory=list)  # at most MAX_REJECTS_KEPT of {"line", "reason"}
    force_months: set[tuple[str, date]] = field(default_factory=set)

    @property
    def loaded(self) -> int:
        return self.total - self.rejected

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejects) < MAX_REJECTS_KEPT:
            self.rejects.append({"line": line, "reason": reason})


def check_header(header: list[str]) -> dict[str, int]:
    """Column positions by name, or NotPoliceUk saying what is missing."""
    names = [h.strip() for h in header]
    if names:
        names[0] = names[0].lstrip("\ufeff")  # a BOM that reached us undecoded
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        raise NotPoliceUk(f"not a police.uk street-level crime CSV: missing column(s) {', '.join(missing)} "
                          f"(header was: {shown or 'empty'})")
    return {name: i for i, name in enumerate(names)}


def read_header(lines: Iterable[str]) -> dict[str, int]:
    """Check the first record of `lines` only (cheap: used to refuse files before loading anything)."""
    try:
        header = next(csv.reader(lines))
    except StopIteration:
        header = []
    except csv.Error as e:
        raise NotPoliceUk(f"not a readable CSV: {e}") from e
    return check_header(header)


def _month(text: str, cache: dict[str, date]) -> date:
    got = cache.get(text)
    if got is None:
        m = _MONTH.fullmatch(text.strip())
        if not m or not 1 <= int(m[2]) <= 12 or int(m[1]) < 1900:
            raise ValueError(f"unparseable month {text!r} (expected YYYY-MM)")
        got = cache[text] = date(int(m[1]), int(m[2]), 1)
    return got


def _coords(lon_text: str, lat_text: str) -> tuple[float | None, float | None]:
    if not lon_text and not lat_text:
        return None, None  # no location: kept, not mapped
    if not lon_text or not lat_text:
        raise ValueError("only one of Longitude and Latitude is given")
    try:
        lon, lat = float(lon_text), float(lat_text)
    except ValueError:
        raise ValueError(f"coordinates are not numbers ({lon_text!r}, {lat_text!r})") from None
    # Comparisons are false for NaN, so NaN is rejected here too.
    if not -180.0 <= lon <= 180.0:
        raise ValueError(f"longitude {lon_text} is out of range -180..180")
    if not -90.0 <= lat <= 90.0:
        raise ValueError(f"latitude {lat_text} is out of range -90..90")
    return lon, lat


def parse(lines: Iterable[str], stats: ParseStats) -> Iterator[Record]:
    """Yield one Record per good row of a police.uk CSV; count and reject the others in `stats`.

    `lines` is any iterable of text lines (a file opened with newline="" and encoding "utf-8-sig",
    or a list of strings). Raises NotPoliceUk when the header is not police.uk's.
    """
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        header = []
    except csv.Error as e:
        raise NotPoliceUk(f"not a readable CSV: {e}") from e
    cols = check_header(header)
    width = len(header)
    months: dict[str, date] = {}
    force_months = stats.force_months
    line = reader.line_num + 1  # physical line where the next record starts
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # e.g. an unterminated quote: the rest of the file is one field
            stats.total += 1
            stats.reject(line, f"malformed CSV: {e}")
            return
        start, line = line, reader.line_num + 1
        if not row:
            continue  # a blank line is not a record
        stats.total += 1
        if len(row) != width:
            stats.reject(start, f"expected {width} fields, found {len(row)}")
            continue
        try:
            rec = record(row, cols, months)
        except ValueError as e:
            stats.reject(start, str(e))
            continue
        force_months.add((rec[0], rec[3]))
        yield rec


def record(row: list[str], cols: dict[str, int], months: dict[str, date]) -> Record:
    """The Record of one row of the header's width, or ValueError saying why it is rejected."""
    i_within, i_code, i_name, i_ctx = cols.get("Falls within"), cols.get("LSOA code"), cols.get("LSOA name"), \
        cols.get("Context")
    month = _month(row[cols["Month"]], months)
    lon, lat = _coords(row[cols["Longitude"]].strip(), row[cols["Latitude"]].strip())
    category = row[cols["Crime type"]].strip()
    if not category:
        raise ValueError("missing Crime type")
    force = row[cols["Reported by"]].strip() or (row[i_within].strip() if i_within is not None else "")
    if not force:
        raise ValueError("missing Reported by (the force)")
    if "\x00" in "".join(row):  # PostgreSQL text cannot hold NUL: a corrupt row, not a failed file
        raise ValueError("contains a NUL byte")
    return (force, row[cols["Crime ID"]] or None, category, month, lon, lat, row[cols["Location"]] or None,
            (row[i_code] or None) if i_code is not None else None,
            (row[i_name] or None) if i_name is not None else None,
            row[cols["Last outcome category"]] or None, (row[i_ctx] or None) if i_ctx is not None else None)


def slugify(name: str) -> str:
    """'Greater Manchester Police' -> 'greater-manchester-police'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"
