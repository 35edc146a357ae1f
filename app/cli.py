"""The `safermap` command."""
from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import typer
from alembic import command
from alembic.config import Config
from rich.console import Console
from sqlalchemy import text

from app.cli_exports import export_command
from app.cli_hotspots import app as hotspots_app
from app.cli_routes import app as routes_app
from app.roles import PrincipalRole
from app.settings import ROOT, Settings, SettingsError, get_settings, to_sync_url

app = typer.Typer(help="SaferMap: crime and CCTV mapping for community safety partnerships.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="The database: the embedded cluster under var/, or DATABASE_URL.", no_args_is_help=True)
partnership_app = typer.Typer(help="Partnerships.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
user_app = typer.Typer(help="Users: people who sign in with email and password.", no_args_is_help=True)
import_app = typer.Typer(help="Import data.", no_args_is_help=True)
coverage_app = typer.Typer(help="Camera coverage: line of sight past the buildings.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(partnership_app, name="partnership")
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
app.add_typer(import_app, name="import")
app.add_typer(coverage_app, name="coverage")
app.add_typer(hotspots_app, name="hotspots")
app.add_typer(routes_app, name="routes")
app.command("export")(export_command)

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
        host = (settings.database_url or "").split("@")[-1]
        typer.echo(f"external database from DATABASE_URL (host {host})")


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


def _user_table(rows, columns: list[str]) -> None:
    """Tab-separated with a header line: readable, and easy to cut or grep."""
    typer.echo("\t".join(columns))
    for r in rows:
        typer.echo("\t".join("" if r[c] is None else str(r[c]) for c in columns))


def _ask_password(prompt: bool) -> str:
    """A typed password (twice, hidden) or a generated one."""
    from app import passwords
    if not prompt:
        return passwords.generate()
    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if (why := passwords.check_policy(password)):
        fail(why)
    return password


async def _user(session, email: str):
    from app import users
    row = await users.user_by_email(session, email)
    if row is None:
        fail(f"No user with the email '{email}'.")
    return row


@user_app.command("add")
def user_add(partnership: str = typer.Option(..., help="Partnership slug."),
             email: str = typer.Option(..., help="The email they sign in with."),
             name: str = typer.Option(..., help="Their name, as others see it."),
             role: PrincipalRole = typer.Option(..., help="Their role."),
             agency: str | None = typer.Option(None, help="Their agency (added to the partnership if new)."),
             prompt: bool = typer.Option(False, "--prompt", help="Type the password instead of generating one.")) -> None:
    """Add a user who signs in with email and password; a generated password is printed once."""
    from app import audit, users
    from app.errors import AppError
    password = _ask_password(prompt)

    async def go(session):
        pid = await partnership_id(session, partnership)
        uid = await users.add_user(session, pid, name=name, email=email, role=role.value, agency=agency,
                                   password=password)
        await audit.record(session, "user.add", partnership_id=pid, target=f"principal:{uid}",
                           detail={"name": name, "email": email, "role": role.value, "agency": agency, "via": "cli"})
        return uid
    try:
        uid = run_in_session(go)
    except AppError as e:
        fail(e.detail)
    typer.echo(f"user {email} (id {uid}) added to {partnership} as {role.value}")
    if not prompt:
        typer.echo(f"password (shown once): {password}")


@user_app.command("list")
def user_list(partnership: str = typer.Option(..., help="Partnership slug.")) -> None:
    """List the users of a partnership."""
    from app import users

    async def go(session):
        return list(await users.list_users(session, await partnership_id(session, partnership)))
    rows = [{**r, "status": "disabled" if r["disabled_at"] else ("locked" if r["locked"] else "active")}
            for r in run_in_session(go)]
    _user_table(rows, ["id", "name", "email", "role", "agency", "status", "last_sign_in_at"])


@user_app.command("disable")
def user_disable(email: str = typer.Argument(..., help="The user's email.")) -> None:
    """Disable a user: they cannot sign in, and their sessions and tokens stop working at once."""
    from app import audit, users

    async def go(session):
        row = await _user(session, email)
        await users.set_disabled(session, row.id, True)
        await audit.record(session, "user.disable", partnership_id=row.partnership_id,
                           target=f"principal:{row.id}", detail={"via": "cli"})
    run_in_session(go)
    typer.echo(f"disabled {email}")


@user_app.command("reset-password")
def user_reset_password(email: str = typer.Argument(..., help="The user's email."),
                        prompt: bool = typer.Option(False, "--prompt", help="Type the password instead of generating one.")) -> None:
    """Give a user a new password (printed once when generated); ends their sessions and lock-out."""
    from app import audit, users
    password = _ask_password(prompt)

    async def go(session):
        row = await _user(session, email)
        await users.set_password(session, row.id, password)
        await audit.record(session, "user.update", partnership_id=row.partnership_id,
                           target=f"principal:{row.id}", detail={"password": "reset", "via": "cli"})
    run_in_session(go)
    typer.echo(f"password of {email} reset")
    if not prompt:
        typer.echo(f"password (shown once): {password}")


@token_app.command("create")
def token_create(user: str | None = typer.Option(None, help="Email of the user the token belongs to."),
                 partnership: str | None = typer.Option(None, help="Partnership slug (for a service token)."),
                 role: PrincipalRole | None = typer.Option(None, help="Role of a new service principal."),
                 name: str = typer.Option("", help="Who or what the token is for."),
                 expires_days: int | None = typer.Option(
                     None, min=1, help="Days until the token expires (default for users: SAFERMAP_USER_TOKEN_DAYS, 90).")) -> None:
    """Print a new bearer token once: for a user (--user), or for a new service principal
    (--partnership and --role, e.g. a script)."""
    from app import audit
    from app.auth import issue_token
    if bool(user) == bool(partnership and role):
        fail("Give either --user EMAIL, or --partnership SLUG and --role ROLE.")

    async def go(session):
        if user:
            row = await _user(session, user)
            if row.disabled_at:
                fail(f"{user} is disabled.")
            pid, principal, days = row.partnership_id, row.id, expires_days or get_settings().user_token_days
        else:
            pid = await partnership_id(session, partnership)
            principal = (await session.execute(text(
                "INSERT INTO principal (partnership_id, name, role) VALUES (:p, :n, :r) RETURNING id"),
                {"p": pid, "n": name or f"{role.value} token", "r": role.value})).scalar_one()
            days = expires_days
        token_id, secret = await issue_token(session, principal, name, days)
        await audit.record(session, "token.create", partnership_id=pid, target=f"token:{token_id}",
                           detail={"principal": principal, "name": name, "expires_days": days, "via": "cli"})
        return secret
    typer.echo(run_in_session(go))


@token_app.command("revoke")
def token_revoke(token_id: int = typer.Argument(..., help="The token's id (see `safermap token list`).")) -> None:
    """Revoke a token: it, and sessions made from it, stop working at once."""
    from app import audit

    async def go(session):
        row = (await session.execute(text(
            "UPDATE api_token t SET revoked_at = now() FROM principal p "
            "WHERE t.id = :id AND p.id = t.principal_id AND t.revoked_at IS NULL "
            "RETURNING p.partnership_id, p.id"), {"id": token_id})).first()
        if row is None:
            fail(f"No active token with id {token_id}.")
        await audit.record(session, "token.revoke", partnership_id=row.partnership_id,
                           target=f"token:{token_id}", detail={"principal": row.id, "via": "cli"})
    run_in_session(go)
    typer.echo(f"revoked token {token_id}")


@token_app.command("list")
def token_list(partnership: str | None = typer.Option(None, help="Partnership slug."),
               user: str | None = typer.Option(None, help="Only this user's tokens (email).")) -> None:
    """List tokens: name, owner, created, last used, expires, revoked (never the secrets)."""
    from app import users
    if not (partnership or user):
        fail("Give --partnership SLUG or --user EMAIL.")

    async def go(session):
        if user:
            row = await _user(session, user)
            return list(await users.list_tokens(session, row.partnership_id, row.id))
        return list(await users.list_tokens(session, await partnership_id(session, partnership)))
    _user_table(run_in_session(go),
                ["id", "name", "owner", "created_at", "last_used_at", "expires_at", "revoked_at"])


# -- imports ---------------------------------------------------------------------------------------
# Exit codes of an import stopped by a signal: 128 + the signal's number, as shells report them.
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


class ImportCancelled(Exception):
    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig.name)
        self.sig = sig


async def _cancellable(coro):
    """Await `coro`, turning the first SIGINT or SIGTERM into its cancellation (so the import rolls
    back and marks its run 'cancelled' instead of dying with it 'running'); ImportCancelled then."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    caught: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if not caught:  # a second signal must not cancel the clean-up itself
            caught.append(sig)
            task.cancel(sig.name)  # the message reaches the import's CancelledError

    for sig in SIGNAL_EXIT:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await coro
    except BaseException:
        if caught:  # whatever the cancellation surfaced as (a rollback on a cancelled COPY may fail too)
            raise ImportCancelled(caught[0]) from None
        raise
    finally:
        for sig in SIGNAL_EXIT:
            loop.remove_signal_handler(sig)


def run_import(coro):
    """asyncio.run for the import commands: a caught SIGINT/SIGTERM exits 130/143 with a message."""
    try:
        return asyncio.run(_cancellable(coro))
    except ImportCancelled as e:
        fail(f"import cancelled by {e.sig.name}: what was being loaded was rolled back (files finished "
             "before it stay loaded)", SIGNAL_EXIT[e.sig])


@import_app.command("police-uk")
def import_police_uk(paths: list[Path] = typer.Argument(..., help="police.uk street-level CSV files or folders."),
                     partnership: str = typer.Option(..., help="Partnership slug.")) -> None:
    """Load police.uk street-level crime CSVs; re-importing a force-month replaces it whole."""
    from app.ingest.police_uk import ImportRefused, import_paths
    try:
        ok = run_import(import_paths(get_settings(), paths, partnership, console))
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
        ok = run_import(import_register(get_settings(), path, partnership, console))
    except ImportRefused as e:
        fail(str(e), 2)
    if not ok:
        raise typer.Exit(1)


@import_app.command("osm")
def import_osm(path: Path = typer.Argument(..., exists=True, dir_okay=False, help="An OpenStreetMap extract (.osm.pbf)."),
               partnership: str = typer.Option(..., help="Partnership slug.")) -> None:
    """Load streets, buildings and surveillance cameras from OpenStreetMap and build the walkable
    routing network; re-importing replaces the OSM data, never a partner's own cameras."""
    from app.ingest.osm_import import ImportRefused
    from app.ingest.osm_import import import_osm as import_osm_extract
    try:
        run_import(import_osm_extract(get_settings(), path, partnership, console))
    except ImportRefused as e:
        fail(str(e), 2)


@coverage_app.command("refresh")
def coverage_refresh(partnership: str = typer.Option(..., help="Partnership slug.")) -> None:
    """Recompute every camera's line-of-sight coverage and quality bands (imports and the API do
    this themselves; use it after changing buildings by hand)."""
    from app.analysis.coverage import refresh_partnership
    try:
        result = asyncio.run(refresh_partnership(get_settings(), partnership))
    except LookupError as e:
        fail(str(e), 2)
    console.print(f"line of sight for {result.cameras:,} cameras among {result.buildings:,} buildings "
                  f"in {result.seconds:.1f} s")


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
          workers: int | None = typer.Option(None, min=1, help="uvicorn worker processes (default: one per core)."),
          loop: str = typer.Option("asyncio", help="Event loop: asyncio, or uvloop (~5% more requests/s, "
                                                   "but with 200 clients some waited over 2 s)."),
          reload: bool = False) -> None:
    """Serve the app with uvicorn: one worker process per core unless told otherwise. Each worker
    sizes its database pool to its share of the server's max_connections (SAFERMAP_WORKERS tells it
    how many share)."""
    import os

    import uvicorn
    count = 1 if reload else (workers or os.cpu_count() or 1)
    os.environ["SAFERMAP_WORKERS"] = str(count)  # read by every worker's settings
    get_settings.cache_clear()
    get_settings()  # a bad setting fails here, once, not in every worker
    if loop not in ("asyncio", "uvloop"):
        fail(f"--loop must be asyncio or uvloop, not {loop!r}")
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=count, loop=loop,
                reload=reload, proxy_headers=True, log_level="info")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except SettingsError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
