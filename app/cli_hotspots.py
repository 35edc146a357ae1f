"""`safermap hotspots ...`: evaluate hotspot methods on a partnership's own data."""
from __future__ import annotations

import asyncio
import json

import typer
from rich.console import Console
from sqlalchemy import text

from app.domain_errors import DomainError, InvalidValue
from app.settings import get_settings

app = typer.Typer(help="Hotspot maps: which method predicts best.", no_args_is_help=True)
console = Console(stderr=True)

PARTNERSHIP_SQL = "SELECT id FROM partnership WHERE slug = :s"


def _period(value: str, name: str, categories: list[str], datasets: list[str]):
    """'2024-01:2024-06' (inclusive months or dates) or one month '2024-07'."""
    from app.analysis.hotspot_data import hotspot_filter
    start, sep, end = value.partition(":")
    if not start or (sep and not end):
        raise InvalidValue(f"--{name} must be YYYY-MM, or YYYY-MM:YYYY-MM for a range (got '{value}').")
    try:
        return hotspot_filter(start, end or start, categories, datasets)
    except DomainError as e:
        raise InvalidValue(f"--{name}: {e.detail}") from e


async def _evaluate(slug: str, train: str, test: str, methods: list[str], area: str, cell_m: float | None,
                    bandwidth_m: float | None, categories: list[str], datasets: list[str]):
    from app.analysis.hotspot_data import SystemPrincipal
    from app.analysis.hotspot_evaluate import evaluate, parse_area
    from app.db import make_engine, make_read_sessionmaker

    train_flt = _period(train, "train", categories, datasets)
    test_flt = _period(test, "test", categories, datasets)
    if test_flt.date_from <= train_flt.date_to:
        raise InvalidValue("--test must come after --train: a method is judged on months it has not seen.")
    share = parse_area(area)
    engine = make_engine(get_settings())
    try:
        async with make_read_sessionmaker(engine)() as session:
            pid = (await session.execute(text(PARTNERSHIP_SQL), {"s": slug})).scalar()
            if pid is None:
                raise InvalidValue(f"No partnership '{slug}'.")
            return await evaluate(session, SystemPrincipal(pid), train_flt, test_flt, methods, share,
                                  cell_m, bandwidth_m)
    finally:
        await engine.dispose()


def _table(ev) -> str:
    lines = [f"{'method':<8} {'cells':>6} {'area':>7} {'hit rate':>9} {'PAI':>7} {'RRI':>6}"]
    for r in ev.results:
        rri = "-" if r.rri is None else f"{r.rri:.2f}"
        lines.append(f"{r.method:<8} {r.cells:>6} {r.area_share:>7.1%} {r.hit_rate:>9.1%} {r.pai:>7.2f} {rri:>6}")
    return "\n".join(lines)


def _as_json(ev) -> dict:
    return {"train": {"from": ev.train.date_from.isoformat(), "to": ev.train.date_to.isoformat(),
                      "incidents": ev.train_total},
            "test": {"from": ev.test.date_from.isoformat(), "to": ev.test.date_to.isoformat(),
                     "incidents": ev.test_total},
            "cell_m": ev.cell_m, "kde_cell_m": ev.kde_cell_m, "bandwidth_m": ev.bandwidth_m,
            "cells": ev.cells, "area": ev.area,
            "methods": [{"method": r.method, "cells": r.cells, "area_share": r.area_share, "hit_rate": r.hit_rate,
                         "pai": r.pai, "rri": r.rri} for r in ev.results]}


@app.command("evaluate")
def evaluate_command(
    partnership: str = typer.Option(..., help="Partnership slug."),
    train: str = typer.Option(..., help="Training months, e.g. 2024-01:2024-06."),
    test: str = typer.Option(..., help="Held-out months after them, e.g. 2024-07."),
    method: list[str] | None = typer.Option(None, help="kde, grid or gistar; repeat for several (default all)."),
    area: str = typer.Option("5%", help="Share of the study area flagged as hotspots, e.g. 5%."),
    cell_m: float | None = typer.Option(None, help="Evaluation cell in metres (default ~1/40 of the area's "
                                                       "shorter side)."),
    bandwidth_m: float | None = typer.Option(None, help="KDE bandwidth in metres (default: the usual one "
                                                            "for the study area)."),
    category: list[str] | None = typer.Option(None, help="Only these categories (repeat)."),
    dataset: list[str] | None = typer.Option(None, help="Only these data sets (repeat)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Hit rate, Prediction Accuracy Index (hit rate / area share) and Recapture Rate Index of each
    method, trained on --train and tested on --test."""
    try:
        ev = asyncio.run(_evaluate(partnership, train, test, method or [], area, cell_m, bandwidth_m,
                                   category or [], dataset or []))
    except DomainError as e:
        console.print(f"[bold red]error:[/] {e.detail}")
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(_as_json(ev), indent=2))
        return
    typer.echo(f"partnership {partnership}: trained on {ev.train.date_from:%Y-%m-%d}..{ev.train.date_to:%Y-%m-%d} "
               f"({ev.train_total:,} mapped incidents), tested on {ev.test.date_from:%Y-%m-%d}.."
               f"{ev.test.date_to:%Y-%m-%d} ({ev.test_total:,})")
    typer.echo(f"study area: {ev.cells:,} cells of {ev.cell_m:g} m; top {ev.area:.1%} flagged; KDE on "
               f"{ev.kde_cell_m:.3g} m cells, bandwidth {ev.bandwidth_m:.0f} m")
    typer.echo(_table(ev))
    best = max(ev.results, key=lambda r: r.pai)
    typer.echo(f"best by PAI: {best.method} ({best.pai:.2f}; 1.00 is no better than chance)")
