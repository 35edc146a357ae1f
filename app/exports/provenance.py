"""What an export is made of, said once and carried by every format that can hold it: the source,
the partnership, the layer, the data sets with the level the caller sees each at, the period, the
filters, the CRS, the licence, and the rules of suppression. The GeoPackage keeps it as GDAL
metadata (gpkg_metadata, shown by `ogrinfo`); GeoJSON as a `safermap` member of the collection;
FlatGeobuf as its layer metadata. CSV has nowhere to put it (the API's Link header is not for this)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from app.catalog import Layer
from app.exports.query import CELL_M, ExportFilter, positional
from app.sharing import datasets_query

LEVEL_WORDS = {"exact": "exact positions", "sanitised": "anonymous points (not the exact places)",
               "aggregate": f"counts on {CELL_M:g} m grid cells only"}


@dataclass(frozen=True)
class DatasetNote:
    key: str
    name: str
    partnership: str
    level: str
    first: date | None
    last: date | None


@dataclass(frozen=True)
class Provenance:
    partnership: str
    layer: Layer
    fmt: str
    crs: str
    flt: ExportFilter
    datasets: tuple[DatasetNote, ...]
    suppress_below: int
    generated_at: datetime

    @property
    def levels(self) -> set[str]:
        """The sharing levels of the data sets that hold rows for this export."""
        return {d.level for d in self.datasets}

    def period(self) -> str:
        """The period asked for (ISO dates), else the months the data holds (YYYY-MM)."""
        def month(d: date | None) -> str | None:
            return d.strftime("%Y-%m") if d else None
        start = (self.flt.period.start.isoformat() if self.flt.period.start
                 else month(min((d.first for d in self.datasets if d.first), default=None)))
        end = (self.flt.period.end.isoformat() if self.flt.period.end
               else month(max((d.last for d in self.datasets if d.last), default=None)))
        if start is None and end is None:
            return "all dates"
        return f"{start or 'the start'} to {end or 'now'}"

    def sharing(self) -> str:
        if not self.layer.shared:
            return "the partnership's own layer (no sharing rules apply)"
        if not self.datasets:
            return "no data sets you may see"
        words = "; ".join(f"{d.name} ({d.partnership}): {LEVEL_WORDS.get(d.level, d.level)}" for d in self.datasets)
        held = "" if self.levels <= {"exact", "sanitised"} else (
            f" Cells counting fewer than {self.suppress_below} incidents are held back.")
        return words + "." + held

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": f"SaferMap, partnership {self.partnership}",
            "layer": self.layer.id, "title": self.layer.title, "description": self.layer.description,
            "licence": self.layer.attribution or "Partnership data: share only as your sharing agreement allows.",
            "crs": self.crs, "period": self.period(), "sharing": self.sharing(),
            "datasets": [{"key": d.key, "name": d.name, "partnership": d.partnership, "level": d.level,
                          "first": d.first.isoformat() if d.first else None,
                          "last": d.last.isoformat() if d.last else None} for d in self.datasets],
            "filters": self.flt.detail(),
            "generated": self.generated_at.isoformat(timespec="seconds"),
        }

    def gdal_metadata(self) -> dict[str, str]:
        """Flat string items for GDAL (dataset and layer metadata)."""
        d = self.as_dict()
        return {"SOURCE": d["source"], "TITLE": d["title"], "LICENCE": d["licence"], "CRS": d["crs"],
                "PERIOD": d["period"], "SHARING": d["sharing"],
                "DATASETS": "; ".join(f"{x['name']} [{x['key']}] {x['level']}" for x in d["datasets"]) or "-",
                "FILTERS": json.dumps(d["filters"], default=str), "GENERATED": d["generated"]}


async def describe(conn: Any, caller: Any, partnership: str, layer: Layer, fmt: str, crs: str,
                   flt: ExportFilter, suppress_below: int) -> Provenance:
    """The provenance of an export, read on a plain asyncpg connection."""
    notes: list[DatasetNote] = []
    if layer.shared:
        sql, args = positional(*datasets_query(caller, "visible", flt.period.first_month, flt.period.end))
        for r in await conn.fetch(sql, *args):
            if r["first"] is None or (flt.datasets and r["key"] not in flt.datasets):
                continue  # holds nothing in this export
            notes.append(DatasetNote(r["key"], r["name"], r["partnership"], r["level"], r["first"], r["last"]))
    return Provenance(partnership, layer, fmt, crs, flt, tuple(notes), suppress_below, datetime.now(UTC))
