"""`safermap routes ...`: the safety attributes of the walkable network and the published routes."""
from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console

from app.settings import get_settings

app = typer.Typer(help="Safe walking routes: segment safety attributes, lamps, published routes.",
                  no_args_is_help=True)
console = Console(stderr=True)


async def _in_session(fn):
    from app.db import make_engine, make_sessionmaker
    engine = make_engine(get_settings())
    try:
        async with make_sessionmaker(engine)() as session:
            result = await fn(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


@app.command("refresh")
def refresh(partnership: str = typer.Option(..., help="Partnership slug.")) -> None:
    """Recompute every street segment's camera coverage, live monitoring, lamps, park and opening
    hours, and search every published route again (changes of cameras, coverage, lamps and parks
    are followed by the database itself; use this after changing streets by hand)."""
    from app.analysis.routing_refresh import refresh as run
    try:
        r = asyncio.run(_in_session(lambda s: run(s, partnership, get_settings())))
    except LookupError as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    share = (lambda m: f"{100 * m / r.metres:.0f} %") if r.metres else (lambda m: "-")
    console.print(f"{r.edges:,} segments ({r.metres / 1000:,.1f} km): {share(r.covered)} under working cameras, "
                  f"{share(r.monitored)} live-monitored, {share(r.lamps)} by register lamps; {r.in_parks:,} in parks, "
                  f"{r.with_hours:,} with opening hours; {r.routes} published routes searched again"
                  f"{f' ({r.routes_failed} no longer walkable, kept)' if r.routes_failed else ''}; {r.seconds:.1f} s")


@app.command("lamps")
def lamps(path: Path = typer.Argument(..., exists=True, dir_okay=False, help="A street-lamp register (CSV)."),
          partnership: str = typer.Option(..., help="Partnership slug.")) -> None:
    """Replace the partnership's street-lamp register: a CSV with lon/lat (or easting/northing in the
    partnership's metric CRS) and optionally a reference. A segment counts as lit where lamps stand
    within 25 m along it."""
    from app.analysis.routing_refresh import load_lamps
    try:
        n = asyncio.run(_in_session(lambda s: load_lamps(s, partnership, path)))
    except (LookupError, ValueError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    console.print(f"{n:,} lamps loaded; the segments near them are lit")
