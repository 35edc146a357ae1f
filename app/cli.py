"""The `safermap` command."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Optional

import typer
from alembic import command
from alembic.config import Config
from rich.console import Console
from sqlalchemy import text

from app.roles import Role
from app.settings import ROOT, Settings, get_settings, to_sync_url

app = typer.Typer(help="SaferMap: crime and CCTV mapping for community safety partnerships.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="The database: the embedded cluster under var/, or DATABASE_URL.", no_args_is_help=True)
partnership_app = typer.Typer(help="Partnerships.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
import_app = typer.Typer(help="Import data.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(partnership_app, name="partnership")
app.add_typer(token_app, name="token")
app.add_typer(import_app, name="import")

console = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", to_sync_url(settings.resolved_database_url()).replace("%", "%%"))
    return cfg


def migrate(settings: Settings) -> None:
    command.upgrade(alembic_config(settings), "head")


async def _session_do(settings: Settings, fn):
    from app.db import make_engine, make_sessionmaker
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            result = await fn(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


def run_in_session(fn):
    return asyncio.run(_session_do(get_settings(), fn))


async def partnership_id(session, slug: str) -> int:
    pid = (await session.execute(text("SELECT id FROM partnership WHERE slug = :s"), {"s": slug})).scalar()
    if pid is None:
        fail(f"No partnership '{slug}'. Create it with: safermap partnership add {slug} \"Name\"")
    return pid


# -- db -------------------------------------------------------------------------------------------
@db_app.command("up")
def db_up() -> None:
    """Start the embedded cluster (when DATABASE_URL is unset) and migrate to head. Idempotent."""
    settings = get_settings()
    if settings.embedded:
        from app.embedded import Cluster, EmbeddedError
        try:
            Cluster(settings).up()
        except EmbeddedError as e:
            fail(str(e))
        console.print(f"database: {Cluster(settings).status()}")
    migrate(settings)
    console.print("migrated to head")


@db_app.command("down")
def db_down() -> None:
    """Stop the embedded cluster."""
    settings = get_settings()
    if not settings.embedded:
        fail("DATABASE_URL is set: that server is not ours to stop.")
    from app.embedded import Cluster
    console.print("stopped" if Cluster(settings).stop() else "was not running")


@db_app.command("status")
def db_status() -> None:
    """Say which database the app uses and whether it is running."""
    settings = get_settings()
    if settings.embedded:
        from app.embedded import Cluster
        typer.echo(f"embedded cluster {Cluster(settings).status()}")
    else:
        typer.echo(f"external database from DATABASE_URL (host {settings.database_url.split('@')[-1]})")


@db_app.command("migrate")
def db_migrate() -> None:
    """Migrate the database to head (Alembic)."""
    migrate(get_settings())


# -- partnerships and tokens ------------------------------------------------------------------------
@partnership_app.command("add")
def partnership_add(slug: str, name: str,
                    srid: int = typer.Option(27700, help="Metric CRS for distances (27700 in Great Britain).")) -> None:
    """Create a partnership (idempotent by slug)."""
    async def go(session):
        row = (await session.execute(text(
            "INSERT INTO partnership (slug, name, srid) VALUES (:s, :n, :srid) "
            "ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name RETURNING id"),
            {"s": slug, "n": name, "srid": srid})).scalar_one()
        return row
    try:
        pid = run_in_session(go)
    except Exception as e:  # a CHECK violation: a bad slug or name
        fail(f"could not add the partnership: {str(e).splitlines()[0]}")
    typer.echo(f"partnership {slug} (id {pid})")


@token_app.command("create")
def token_create(partnership: str = typer.Option(..., help="Partnership slug."),
                 role: Role = typer.Option(..., help="Role of the token's principal."),
                 name: str = typer.Option("", help="Who or what the token is for."),
                 expires_days: Optional[int] = typer.Option(None, help="Days until the token expires.")) -> None:
    """Create a principal with a role and print its bearer token once."""
    from app.auth import create_token

    async def go(session):
        pid = await partnership_id(session, partnership)
        principal = (await session.execute(text(
            "INSERT INTO principal (partnership_id, name, role) VALUES (:p, :n, :r) RETURNING id"),
            {"p": pid, "n": name or f"{role.value} token", "r": role.value})).scalar_one()
        return await create_token(session, principal, name, expires_days)
    typer.echo(run_in_session(go))


# -- imports ---------------------------------------------------------------------------------------
@import_app.command("police-uk")
def import_police_uk(paths: list[Path] = typer.Argument(..., help="police.uk street-level CSV files or folders."),
                     partnership: str = typer.Option(..., help="Partnership slug.")) -> None:
    """Load police.uk street-level crime CSVs; re-importing a force-month replaces it whole."""
    from app.ingest.police_uk import ImportRefused, import_paths
    try:
        ok = asyncio.run(import_paths(get_settings(), paths, partnership, console))
    except ImportRefused as e:
        fail(str(e), 2)
    if not ok:
        raise typer.Exit(1)


@import_app.command("cameras")
def import_cameras(path: Path = typer.Argument(..., help="A camera register: CSV or GeoJSON."),
                   partnership: str = typer.Option(..., help="Partnership slug.")) -> None:
    """Load a camera register; re-importing updates cameras by reference."""
    from app.ingest.camera_register import ImportRefused, import_register
    try:
        ok = asyncio.run(import_register(get_settings(), path, partnership, console))
    except ImportRefused as e:
        fail(str(e), 2)
    if not ok:
        raise typer.Exit(1)


# -- demo and serving ------------------------------------------------------------------------------
@app.command("demo")
def demo(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Load the demo partnership (idempotent) and print a one-time sign-in link."""
    from app.demo import load_demo
    link_code = asyncio.run(load_demo(get_settings(), console))
    typer.echo(f"\nSign in as the demo administrator (the link works once):\n"
               f"  http://{host}:{port}/auth/link/{link_code}\n")


@app.command("serve")
def serve(host: str = "127.0.0.1", port: int = 8000,
          workers: int = typer.Option(1, min=1, help="uvicorn worker processes."),
          reload: bool = False) -> None:
    """Serve the app with uvicorn."""
    import uvicorn
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers,
                reload=reload, proxy_headers=True, log_level="info")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
