"""The private PostgreSQL cluster under var/, used whenever DATABASE_URL is not set.

PostgreSQL refuses to run as root; when we are root the cluster belongs to, and runs as, the
system user `postgres` that Debian's package creates.
"""
from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings

EXTENSIONS = ("postgis", "pgrouting")

CLUSTER_CONF = """
# Written by safermap: a private cluster for one app, reachable only from this machine.
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
max_connections = 200
shared_buffers = 256MB
work_mem = 32MB
maintenance_work_mem = 256MB
jit = off
"""


class EmbeddedError(RuntimeError):
    pass


DEFAULT_PORT = 54329
PORT_FILE = "embedded-port"  # under var/: the port this checkout moved to when the default was taken


def resolve_port(settings: Settings) -> int:
    """The embedded cluster's port: SAFERMAP_EMBEDDED_PORT when set, else the one this checkout
    recorded in var/embedded-port, else DEFAULT_PORT. Everything that builds the URL uses this."""
    if settings.embedded_port is not None:
        return settings.embedded_port
    recorded = settings.var_dir / PORT_FILE
    if recorded.exists():
        return int(recorded.read_text().strip())
    return DEFAULT_PORT


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be listened on. SO_REUSEADDR so sockets in TIME_WAIT do not
    count; Linux still refuses the bind while anything listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the OS says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_holder(port: int) -> str:
    """Best effort, for error messages: ' by NAME (pid N, data dir D)' from `ss -ltnp`, or ''."""
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    m = re.search(r'\("([^"]+)",pid=(\d+)', out)
    if not m:
        return ""
    name, pid = m.groups()
    where = ""
    if name.startswith("postgres"):
        try:  # a postmaster's working directory is its data dir
            where = f", data dir {os.readlink(f'/proc/{pid}/cwd')}"
        except OSError:
            pass
    return f" by {name} (pid {pid}{where})"


@dataclass
class Cluster:
    settings: Settings

    @property
    def root(self) -> Path:
        return self.settings.var_dir

    @property
    def home(self) -> Path:
        """Where the cluster lives: var/, unless the postgres user cannot reach it (a checkout
        inside a private directory, as root); then a directory of its own under
        /var/lib/postgresql/safermap, recorded in var/cluster-home so every command agrees."""
        marker = self.root / "cluster-home"
        return Path(marker.read_text().strip()) if marker.exists() else self.root

    @property
    def port(self) -> int:
        return resolve_port(self.settings)

    @property
    def port_explicit(self) -> bool:
        return self.settings.embedded_port is not None

    @property
    def data_dir(self) -> Path:
        return self.home / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.home / "pgsocket"

    @property
    def log_file(self) -> Path:
        return self.home / "log" / "postgres.log"

    def _choose_home(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 or (self.root / "cluster-home").exists():
            return
        reachable = subprocess.run(["test", "-x", str(self.root)],
                                   capture_output=True, **self._run_as()).returncode == 0
        if reachable:
            return
        key = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]
        home = Path("/var/lib/postgresql/safermap") / key
        home.mkdir(parents=True, exist_ok=True)
        self._own(home)
        (self.root / "cluster-home").write_text(str(home))

    # -- binaries and users -------------------------------------------------
    def bindir(self) -> Path:
        if self.settings.pg_bindir:
            return self.settings.pg_bindir
        candidates = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
        for c in candidates:
            if (c / "initdb").exists():
                return c
        found = shutil.which("initdb")
        if found:
            return Path(found).parent
        raise EmbeddedError(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install PostgreSQL with "
            "PostGIS (`make install` does it on Debian) or set SAFERMAP_PG_BINDIR."
        )

    def _run_as(self) -> dict:
        """subprocess kwargs that drop root to the postgres user."""
        if os.geteuid() != 0:
            return {}
        try:
            pwd.getpwnam("postgres")
        except KeyError as e:
            raise EmbeddedError("Running as root needs the system user 'postgres' to own the cluster.") from e
        return {"user": "postgres", "group": "postgres", "extra_groups": []}

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir() / tool), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.home, **self._run_as())
        if check and proc.returncode != 0:
            raise EmbeddedError(f"{tool} failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def _own(self, *paths: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in paths:
                os.chown(p, pw.pw_uid, pw.pw_gid)

    # -- lifecycle -----------------------------------------------------------
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialised():
            return False
        return self._pg("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def init(self) -> bool:
        """Create the cluster if it does not exist. Returns True when it was created."""
        self._choose_home()
        if self.initialised():
            return False
        for d in (self.root, self.data_dir, self.socket_dir, self.log_file.parent):
            d.mkdir(parents=True, exist_ok=True)
        self._own(self.data_dir, self.socket_dir, self.log_file.parent)
        self.data_dir.chmod(0o700)
        self._pg("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                 "-E", "UTF8", "--locale=C.UTF-8")
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as f:
            f.write(CLUSTER_CONF.format(port=self.port, socket_dir=self.socket_dir))
        return True

    def start(self) -> bool:
        """Start the cluster if it is not running. Returns True when it was started."""
        if self.running():
            self._adopt_running_port()
            return False
        for d in (self.socket_dir, self.log_file.parent):
            d.mkdir(parents=True, exist_ok=True)
        self._own(self.socket_dir, self.log_file.parent)
        port = self._claim_port()
        # A stale pid file after a machine restart would stop pg_ctl; pg_ctl handles it itself.
        # `-p` on the command line wins over postgresql.conf, so a moved port needs no conf edit.
        try:
            self._pg("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
                     "-o", f"-p {port}", "-w", "-t", "60", "start")
        except EmbeddedError as e:
            raise EmbeddedError(f"{e}\n--- last lines of {self.log_file} ---\n{self._log_tail()}") from None
        return True

    def _claim_port(self) -> int:
        """The port to start on. Our own cluster is not running (start checked), so anything
        listening on our port is someone else: fail if the user chose the port, else move."""
        port = self.port
        if port_free(port):
            return port
        if self.port_explicit:
            raise EmbeddedError(
                f"Port {port} (SAFERMAP_EMBEDDED_PORT) is already in use{port_holder(port)}. "
                "Stop that server or set SAFERMAP_EMBEDDED_PORT to a free port."
            )
        new = free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / PORT_FILE).write_text(f"{new}\n")  # so serve, tests and the next `db up` agree
        return new

    def _running_port(self) -> int | None:
        """The port our running postmaster listens on (line 4 of postmaster.pid)."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            return None

    def _adopt_running_port(self) -> None:
        """Our cluster already runs: make sure the URL everyone builds points at it."""
        actual = self._running_port()
        if actual is None or actual == self.port:
            return
        if self.port_explicit:
            raise EmbeddedError(
                f"The cluster is already running on port {actual}, not SAFERMAP_EMBEDDED_PORT="
                f"{self.port}; run `safermap db down` first."
            )
        (self.root / PORT_FILE).write_text(f"{actual}\n")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> bool:
        if not self.running():
            return False
        self._pg("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        return True

    def psql(self, sql: str, db: str = "postgres") -> str:
        proc = self._pg("psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                        "-h", str(self.socket_dir), "-p", str(self.port),
                        "-U", "postgres", "-d", db, "-c", sql)
        return proc.stdout.strip()

    def ensure_database(self, name: str | None = None) -> None:
        name = name or self.settings.embedded_db
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if not exists:
            self.psql(f'CREATE DATABASE "{name}"')
        for ext in EXTENSIONS:
            self.psql(f"CREATE EXTENSION IF NOT EXISTS {ext} CASCADE", db=name)

    def up(self) -> None:
        self.init()
        self.start()
        deadline = time.time() + 30
        while not self.running():
            if time.time() > deadline:
                raise EmbeddedError(f"The cluster did not start; see {self.log_file}")
            time.sleep(0.2)
        self.ensure_database()

    def status(self) -> str:
        if not self.initialised():
            return f"not initialised (would live in {self.data_dir})"
        state = "running" if self.running() else "stopped"
        return (f"{state}: data {self.data_dir}, "
                f"postgresql://postgres@127.0.0.1:{self.port}/{self.settings.embedded_db}")
