"""Issue 13's targets, each measured figure beside its reference, from one `make bench` report.

Every section's own module records its figures (report["hot"], ["tiles"], ["import"], ["hotspots"]);
this reads them back, never measures, and writes report["ratios"]: one entry per target with the
figure, its reference, the ratio, the target and whether it was met. A section that did not run (or
whose figure is missing) is listed as not measured, never as met.

    target                              measured / reference
    cached tile        >= 0.3x          cached req/s / bare FastAPI route req/s (the app floor)
    304                >= 0.5x          304 req/s / app floor req/s
    cold tiles         >= 3x tipg, >= 1x bare ST_AsMVT, p99 no worse than either (under the same
                       16 clients: the bare query's clients queue for its 2 connections)
    200 clients        0 timeouts, 0 errors, p99 < 500 ms
    import             <= 4x bare COPY  (report["import"]["import_vs_bare_copy"])
    hotspot surface    < 1 s cold for 1M incidents
    OGC through GDAL   < 60 s for 1M incidents at 1,000 a page (issue 14, item 7; with the CPU split
                       and load average beside it: on a busy machine the wall time alone says little)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _row(section: dict | None, pick: Callable[[str], bool]) -> dict | None:
    """The first result row of a section whose name `pick` accepts."""
    for row in (section or {}).get("results", []):
        if pick(row.get("name", "").lower()):
            return row
    return None


def entry(measured: float | None, reference: float | None, unit: str, target: str,
          met: Callable[[float, float | None], bool], ratio: bool = True) -> dict[str, Any]:
    """One target: the figure, its reference, their ratio (when a ratio is the target) and the verdict."""
    if measured is None or (ratio and not reference):
        return {"target": target, "unit": unit, "measured": measured, "reference": reference,
                "ratio": None, "met": None, "note": "not measured in this run"}
    value = round(measured / reference, 3) if ratio and reference else None
    return {"target": target, "unit": unit, "measured": measured, "reference": reference, "ratio": value,
            "met": bool(met(value if ratio else measured, reference))}


def hot_targets(hot: dict | None) -> dict[str, dict]:
    floor = _row(hot, lambda n: n.startswith("floor") and "clients" not in n)
    cached = _row(hot, lambda n: "cache" in n and "clients" not in n)
    not_modified = _row(hot, lambda n: "304" in n)
    crowd = _row(hot, lambda n: "clients" in n and not n.startswith("floor"))
    rps = lambda row: row.get("req_per_s") if row else None  # noqa: E731
    out = {
        "cached tile vs app floor": entry(rps(cached), rps(floor), "req/s", ">= 0.3x the bare FastAPI route",
                                          lambda r, _: r >= 0.3),
        "304 vs app floor": entry(rps(not_modified), rps(floor), "req/s", ">= 0.5x the bare FastAPI route",
                                  lambda r, _: r >= 0.5),
    }
    for key, label, target, ok in (("timeouts", "timeouts", "0 timeouts", lambda v, _: v == 0),
                                   ("errors", "errors", "0 errors", lambda v, _: v == 0),
                                   ("p99_ms", "p99", "p99 < 500 ms", lambda v, _: v < 500)):
        value = crowd.get(key) if crowd else None
        out[f"200 clients: {label}"] = entry(value, None, "ms" if key == "p99_ms" else "count", target, ok,
                                             ratio=False)
    return out


def tiles_targets(tiles: dict | None) -> dict[str, dict]:
    cold = _row(tiles, lambda n: "1w" in n and "cold" in n)
    # tipg serving every point, as the bare query does (its default 10k-feature cap drops points)
    tipg = _row(tiles, lambda n: "tipg" in n and "every point" in n) or _row(tiles, lambda n: "tipg" in n)
    bare = _row(tiles, lambda n: ("floor" in n or "st_asmvt" in n) and "clients" not in n)
    # Latency is compared under the same load: the bare query with as many clients as SaferMap's
    # line, queued for its 2 connections (the 2-client floor has no queue at all).
    bare_loaded = _row(tiles, lambda n: "floor" in n and "clients" in n)
    rps = lambda row: row.get("req_per_s") if row else None  # noqa: E731
    p99 = lambda row: row.get("p99_ms") if row else None  # noqa: E731
    return {
        "cold tiles vs tipg": entry(rps(cold), rps(tipg), "req/s", ">= 3x tipg", lambda r, _: r >= 3),
        "cold tiles vs bare ST_AsMVT": entry(rps(cold), rps(bare), "req/s", ">= 1x the bare ST_AsMVT query",
                                             lambda r, _: r >= 1),
        "cold tiles p99 vs tipg": entry(p99(cold), p99(tipg), "ms", "p99 no worse than tipg's",
                                        lambda r, _: r <= 1),
        "cold tiles p99 vs bare ST_AsMVT": entry(p99(cold), p99(bare_loaded), "ms",
                                                 "p99 no worse than the bare query's, same 16 clients",
                                                 lambda r, _: r <= 1),
        "cold tiles p99 vs bare, 2 clients": entry(p99(cold), p99(bare), "ms",
                                                   "(for reference: the bare query with no queue)",
                                                   lambda r, _: r <= 1),
    }


def import_targets(imp: dict | None) -> dict[str, dict]:
    imp = imp or {}
    return {"import vs bare COPY": entry(imp.get("import_s"), imp.get("bare_copy_s"), "s",
                                         "<= 4x a bare COPY of the same file", lambda r, _: r <= 4)}


def hotspot_targets(hot: dict | None) -> dict[str, dict]:
    hot = hot or {}
    return {"hotspot surface, 1M incidents, cold": entry(
        hot.get("surface_cold_ms"), None, "ms", "< 1000 ms (median, caches cleared)",
        lambda v, _: v < 1000, ratio=False)}


def ogc_targets(ogc: dict | None) -> dict[str, dict]:
    gdal = (ogc or {}).get("gdal_ogr2ogr") or {}
    out = entry(gdal.get("seconds"), None, "s", "< 60 s through GDAL, 1,000 a page", lambda v, _: v < 60,
                ratio=False)
    if gdal.get("seconds") is not None:
        out["cpu_s"] = {k: gdal.get(f"{k}_cpu_s") for k in ("server", "postgres", "client")}
        out["load_average_1min"] = gdal.get("load_average_1min")
    return {"OGC API: 1M incidents paged out": out}


def summarise(report: dict) -> dict[str, dict]:
    """report["ratios"]: every target of issues 13 and 14 beside its measured figure and reference."""
    ratios = {**hot_targets(report.get("hot")), **tiles_targets(report.get("tiles")),
              **import_targets(report.get("import")), **hotspot_targets(report.get("hotspots")),
              **ogc_targets(report.get("ogc"))}
    report["ratios"] = ratios
    return ratios


def print_summary(ratios: dict[str, dict]) -> None:
    head = f"{'target':<36} {'measured':>10} {'reference':>10} {'ratio':>7}  {'goal':<44} verdict"
    print(head)
    print("-" * len(head))
    for name, e in ratios.items():
        verdict = "not measured" if e["met"] is None else ("met" if e["met"] else "NOT met")
        ref = "" if e["reference"] is None else e["reference"]
        ratio = "" if e["ratio"] is None else e["ratio"]
        measured = "" if e["measured"] is None else e["measured"]
        print(f"{name:<36} {measured!s:>10} {ref!s:>10} {ratio!s:>7}  {e['target']:<44} {verdict}")
