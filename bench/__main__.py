"""`make bench`: the police.uk import beside a bare COPY, then tiles beside tipg and the bare
ST_AsMVT query, then the hot path (a cached tile, a 304, 200 clients) beside a bare FastAPI route, coverage,
hotspots, safe walking routes, exports and OGC API paging through GDAL (last: it points the tile
bench's builder at its own scratch database).
Prints each table, then every target of issue 13 beside its measured figure and reference
(bench/summary.py), and writes the whole report, the targets as report["ratios"], to
bench/out/report.json.

    python -m bench [import] [tiles] [hot] [coverage] [hotspots] [routes] [exports] [ogc]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench import (
    coverage_bench,
    exports_bench,
    hot_bench,
    hotspots_bench,
    import_bench,
    ogc_bench,
    routes_bench,
    summary,
    tiles_bench,
)

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    which = set(sys.argv[1:]) or {"import", "tiles", "hot", "coverage", "hotspots", "routes", "exports", "ogc"}
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if "import" in which:
        print("== police.uk import: 1,000,000 rows ==", flush=True)
        report["import"] = import_bench.run({}, import_bench.default_database_url())
        for key, value in report["import"].items():
            print(f"  {key:<28} {value}")
        imp = report["import"]
        print(f"  import {imp.get('import_s')} s beside a bare COPY of the same file {imp.get('bare_copy_s')} s: "
              f"{imp.get('import_vs_bare_copy')}x")
    if "tiles" in which:
        print("\n== tiles: 1,000,000 incidents, 500 tiles z12-16 ==", flush=True)
        tiles_bench.run(report)
    if "hot" in which:
        print("\n== the hot path: a cached tile and a 304 beside a bare FastAPI route; 200 clients ==", flush=True)
        hot_bench.run(report)
    if "coverage" in which:
        print("\n== line-of-sight coverage: 5,000 cameras among 100,000 buildings ==", flush=True)
        for key, value in coverage_bench.run(report).items():
            print(f"  {key:<32} {value}")
    if "hotspots" in which:
        print("\n== hotspot density surface and PNG tiles: 1,000,000 incidents ==", flush=True)
        hotspots_bench.run(report)
    if "routes" in which:
        print("\n== safe walking routes: Helsinki, and a grid city of 100,000 segments ==", flush=True)
        routes_bench.run(report)
    if "exports" in which:
        print("\n== exports: 1,000,000 incidents to GeoPackage, FlatGeobuf, CSV and GeoJSON ==", flush=True)
        for key, value in exports_bench.run(report).items():
            print(f"  {key:<28} {value}")
    if "ogc" in which:
        print("\n== OGC API - Features: 1,000,000 incidents through GDAL at 1,000 a page ==", flush=True)
        for key, value in ogc_bench.run(report).items():
            print(f"  {key:<28} {value}")
    print("\n== issue 13 targets: each figure beside its reference ==", flush=True)
    summary.print_summary(summary.summarise(report))
    OUT.mkdir(exist_ok=True)
    (OUT / "report.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"\nreport: {OUT / 'report.json'}")


if __name__ == "__main__":
    main()
