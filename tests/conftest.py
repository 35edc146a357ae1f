"""Every test run makes its own PostGIS database and drops it at the end; every test starts from
empty tables. The server is DATABASE_URL's when it is set, else the embedded cluster under var/."""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from app.settings import ROOT, Settings, to_libpq_url
from tests import factories
from tests.factories import Caller, chromium_path  # noqa: F401  (a fixture for every module)

DATA_TABLES = "partnership, incident, import_run, data_version, audit_event"


def _server_url() -> str:
    """A libpq URL to the server's maintenance database."""
    if os.environ.get("DATABASE_URL"):
        parts = urlsplit(to_libpq_url(os.environ["DATABASE_URL"]))
        return urlunsplit(parts._replace(path="/postgres"))
    from app.embedded import Cluster
    settings = Settings(database_url=None)
    cluster = Cluster(settings)
    cluster.up()
    return f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server = _server_url()
    name = f"safermap_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgrouting CASCADE")
    from app.cli import migrate
    migrate(Settings(database_url=url))
    yield url
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory) -> Settings:
    return Settings(database_url=database_url, secret_key="test-secret-" + secrets.token_hex(8),
                    var_dir=tmp_path_factory.mktemp("var"))


@pytest.fixture(autouse=True)
def clean_tables(database_url: str) -> Iterator[None]:
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '30s'")  # a leaked lock fails the run instead of hanging it
        conn.execute(f"TRUNCATE {DATA_TABLES} RESTART IDENTITY CASCADE")


@pytest.fixture(scope="session")
async def app(settings: Settings):
    from app.main import create_app
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def db(app):
    """An AsyncSession on the test database (commit what you write)."""
    async with app.state.sessionmaker() as session:
        yield session


@pytest.fixture
def make_caller(app):
    """make_caller(slug, role) -> a Caller with a fresh bearer token (the partnership is made once)."""

    async def make(slug: str = "test-csp", role: str = "admin", srid: int = 27700) -> Caller:
        async with app.state.sessionmaker() as s:
            pid = await factories.partnership(s, slug, srid)
            return await factories.person(s, pid, role, name=f"{role} of {slug}")

    return make


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(settings: Settings) -> Iterator[str]:
    """The real app under uvicorn on a loopback port, for browser tests."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": settings.database_url, "SAFERMAP_SECRET_KEY": settings.secret_key,
           "SAFERMAP_VAR_DIR": str(settings.var_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120  # a busy CI machine imports the app slowly
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited at start-up ({proc.returncode})") from None
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("the app did not start within 120 s")
    yield base
    proc.terminate()
    proc.wait(10)
