"""The embedded cluster's port (issue 10): when the default is taken by someone else it moves to a
free port kept in var/embedded-port; an explicit SAFERMAP_EMBEDDED_PORT that is taken fails clearly.
Each test initdb's a throwaway cluster in a temporary var dir and stops it afterwards."""
from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterator

import pytest

from app import embedded
from app.embedded import PORT_FILE, Cluster, EmbeddedError, free_port
from app.settings import Settings


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other program listens on: a plain socket on a port the OS picked."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture
def make_cluster(tmp_path, monkeypatch) -> Iterator[Callable[[], Cluster]]:
    """Clusters over one fresh var dir; every one started is stopped (and its home removed)."""
    monkeypatch.delenv("SAFERMAP_EMBEDDED_PORT", raising=False)
    var = tmp_path / "var"
    made: list[Cluster] = []

    def make() -> Cluster:
        made.append(Cluster(Settings(database_url=None, var_dir=var)))
        return made[-1]

    yield make
    for c in made:
        if c.initialised():
            c.stop()
    if made and made[0].home != var:  # as root the cluster may live under /var/lib/postgresql
        shutil.rmtree(made[0].home, ignore_errors=True)


def test_default_port_taken_moves_and_persists(make_cluster, busy_port, monkeypatch):
    monkeypatch.setattr(embedded, "DEFAULT_PORT", busy_port)
    first = make_cluster()
    first.up()

    assert first.port != busy_port
    assert (first.root / PORT_FILE).read_text().strip() == str(first.port)
    assert first.psql("SHOW port") == str(first.port)
    assert f":{first.port}/" in first.settings.resolved_database_url()

    # A fresh Cluster (the next `db up`, `serve`, the tests) reads the same port and reuses the
    # running cluster although its port is now "taken" - by itself.
    second = make_cluster()
    assert second.port == first.port
    assert second.start() is False
    assert second.port == first.port


def test_own_cluster_on_default_port_is_reused(make_cluster, monkeypatch):
    port = free_port()
    monkeypatch.setattr(embedded, "DEFAULT_PORT", port)
    first = make_cluster()
    first.up()
    assert first.psql("SHOW port") == str(port)

    second = make_cluster()
    second.up()  # our own postmaster holds the port: not treated as taken
    assert second.port == port
    assert not (second.root / PORT_FILE).exists()


def test_explicit_port_taken_fails_clearly(make_cluster, busy_port, monkeypatch):
    monkeypatch.setenv("SAFERMAP_EMBEDDED_PORT", str(busy_port))
    cluster = make_cluster()
    with pytest.raises(EmbeddedError) as err:
        cluster.up()
    message = str(err.value)
    assert str(busy_port) in message
    assert "SAFERMAP_EMBEDDED_PORT" in message
    if shutil.which("ss"):  # who holds it is best effort; here it is this very process
        assert f"pid {os.getpid()}" in message
    assert not cluster.running()
    assert not (cluster.root / PORT_FILE).exists()


def test_pg_ctl_failure_shows_the_server_log(make_cluster, monkeypatch):
    monkeypatch.setattr(embedded, "DEFAULT_PORT", free_port())
    cluster = make_cluster()
    cluster.init()
    with (cluster.data_dir / "postgresql.conf").open("a") as f:
        f.write("shared_buffers = 'not a size'\n")
    with pytest.raises(EmbeddedError) as err:
        cluster.start()
    assert "postgres.log" in str(err.value)
    assert "shared_buffers" in str(err.value)
