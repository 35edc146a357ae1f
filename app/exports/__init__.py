"""Exports of catalog layers as GeoPackage, GeoJSON, CSV or FlatGeobuf: `safermap export` and
`GET /api/exports/{layer}.{format}`.

One statement per export (query.py), read through a server-side cursor in chunks, so memory stays
flat however many rows there are; written by GDAL (via pyogrio's Arrow stream, one open dataset)
or as text (writers.py); described by a provenance note (provenance.py) that the GeoPackage keeps
as GDAL metadata. Incidents come through the sharing function at the caller's level: exact,
sanitised (anonymous points) or, where the caller may only count, counts on grid cells with small
counts held back. Every export is audited (app/exports/run.py).
"""
