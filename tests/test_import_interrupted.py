"""An import stopped mid-way is never left 'running': killed (SIGKILL) it is reported 'interrupted',
stopped by Ctrl-C (SIGINT) it is 'cancelled'; either way the force-month loaded before is intact.

The real `safermap import police-uk` runs in a subprocess. To stop it at a known point without
depending on speed, the test holds the police.uk dataset rows locked: the import stages the whole
file (its heartbeat then shows every row reached) and waits on that lock, still 'running'.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from app.settings import ROOT

DATA = Path(__file__).parent / "data" / "police_uk"
JAN = DATA / "2024-01-test-constabulary-street.csv"
JAN_INCIDENTS = 9
HEADER = ("Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
          "Crime type,Last outcome category,Context")
BIG_ROWS = 120_000  # more than two COPY chunks, so the heartbeat is written more than once
# The CLI of the Python running the tests, wherever its environment lives (not only ./.venv).
SAFERMAP = [sys.executable, "-m", "app.cli"]
TIMEOUT_S = 120.0  # generous: only a hung import takes this long

JAN_COUNT = ("SELECT count(*) FROM incident i JOIN partnership p ON p.id = i.partnership_id "
             "WHERE p.slug = 'test-csp' AND i.month = '2024-01-01'")
# Blocks the import at its DATASET_LOCK (police_uk.py), after staging and before touching incidents.
HOLD_DATASETS = "SELECT id FROM dataset WHERE source_key LIKE 'police-uk:%' FOR UPDATE"
RUN_ROW = "SELECT status, rows_total FROM import_run WHERE file = %s ORDER BY id DESC LIMIT 1"
# Another backend still in a transaction: the killed import's data connection, until it notices.
OTHER_OPEN_TRANSACTIONS = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
"""


def wait_for(what: str, check: Callable[[], object]) -> object:
    """Poll until check() is truthy; fail after TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def cli_env(database_url, settings) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "SAFERMAP_SECRET_KEY": settings.secret_key,
            "SAFERMAP_VAR_DIR": str(settings.var_dir)}


def safermap(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SAFERMAP, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


@pytest.fixture
def big_csv(tmp_path) -> Path:
    """A republished January for Test Constabulary, BIG_ROWS rows."""
    path = tmp_path / "2024-01-test-constabulary-street-big.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(HEADER + "\n")
        for i in range(BIG_ROWS):
            f.write(f"{i:064x},2024-01,Test Constabulary,Test Constabulary,-2.{242600 + i % 1000},"
                    f"53.480800,On or near Market Street,E01005001,Manchester 001A,Burglary,,\n")
    return path


@pytest.fixture
def held(database_url) -> Iterator[psycopg.Connection]:
    """A connection holding the police.uk dataset rows locked until the test commits it."""
    conn = psycopg.connect(database_url)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


async def start_stuck_import(env, database_url, big_csv: Path, held: psycopg.Connection) -> subprocess.Popen:
    """Load January, lock its dataset, start re-importing it from big_csv; return once that import is
    'running' with the whole file staged (so blocked on the lock)."""
    done = safermap(env, "import", "police-uk", str(JAN), "--partnership", "test-csp")
    assert done.returncode == 0, done.stderr
    held.execute(HOLD_DATASETS)
    proc = subprocess.Popen([*SAFERMAP, "import", "police-uk", str(big_csv), "--partnership", "test-csp"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def staged():
        assert proc.poll() is None, proc.communicate()
        with psycopg.connect(database_url, autocommit=True) as c:
            return c.execute(RUN_ROW, (big_csv.name,)).fetchone() == ("running", BIG_ROWS)
    wait_for("the import to stage the whole file and wait", staged)
    return proc


def release_and_settle(held: psycopg.Connection, database_url: str) -> None:
    """Let go of the dataset lock and wait until the dead import's transaction is gone."""
    held.rollback()
    with psycopg.connect(database_url, autocommit=True) as c:
        wait_for("the import's transaction to end", lambda: c.execute(OTHER_OPEN_TRANSACTIONS).fetchone()[0] == 0)


async def imports(client, caller, file: str) -> list[dict]:
    r = await client.get("/api/imports", headers=caller.headers)
    assert r.status_code == 200, r.text
    return [run for run in r.json()["imports"] if run["file"] == file]


async def test_sigkill_leaves_the_month_intact_and_the_run_interrupted(
        client, make_caller, cli_env, database_url, big_csv, held):
    caller = await make_caller("test-csp", "analyst")
    proc = await start_stuck_import(cli_env, database_url, big_csv, held)
    [run] = await imports(client, caller, big_csv.name)
    assert run["status"] == "running" and run["finished_at"] is None  # held by a live process
    proc.kill()
    assert proc.wait(TIMEOUT_S) == -signal.SIGKILL

    # Reported interrupted at once, read-only (the row itself still says running)...
    [run] = await imports(client, caller, big_csv.name)
    assert run["status"] == "interrupted" and run["finished_at"] is not None
    assert run["rows_total"] == BIG_ROWS and run["rows_loaded"] == 0
    assert "interrupted" in run["message"] and f"{BIG_ROWS:,} rows" in run["message"]
    release_and_settle(held, database_url)
    with psycopg.connect(database_url, autocommit=True) as c:
        assert c.execute(JAN_COUNT).fetchone()[0] == JAN_INCIDENTS

    # ...and marked so by the next import, which does not mistake its own run for a dead one.
    done = safermap(cli_env, "import", "police-uk", str(JAN), "--partnership", "test-csp")
    assert done.returncode == 0, done.stderr
    with psycopg.connect(database_url, autocommit=True) as c:
        assert c.execute(RUN_ROW, (big_csv.name,)).fetchone() == ("interrupted", BIG_ROWS)
        statuses = [r[0] for r in c.execute("SELECT status FROM import_run ORDER BY id")]
        assert statuses == ["loaded", "interrupted", "loaded"]
        assert c.execute(JAN_COUNT).fetchone()[0] == JAN_INCIDENTS
    assert all(r["status"] != "running" for r in (await client.get(
        "/api/imports", headers=caller.headers)).json()["imports"])


async def test_sigint_rolls_back_and_marks_the_run_cancelled(
        client, make_caller, cli_env, database_url, big_csv, held):
    caller = await make_caller("test-csp", "analyst")
    proc = await start_stuck_import(cli_env, database_url, big_csv, held)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 130, (out, err)
    assert "cancelled by SIGINT" in " ".join(err.split())

    [run] = await imports(client, caller, big_csv.name)
    assert run["status"] == "cancelled" and run["finished_at"] is not None
    assert run["rows_total"] == BIG_ROWS and run["rows_loaded"] == 0
    assert run["message"] == f"cancelled by SIGINT after {BIG_ROWS:,} rows, nothing of this file was loaded"
    release_and_settle(held, database_url)
    with psycopg.connect(database_url, autocommit=True) as c:
        assert c.execute(RUN_ROW, (big_csv.name,)).fetchone() == ("cancelled", BIG_ROWS)
        assert c.execute(JAN_COUNT).fetchone()[0] == JAN_INCIDENTS


async def test_sigterm_is_cancelled_too(client, make_caller, cli_env, database_url, big_csv, held):
    caller = await make_caller("test-csp", "analyst")
    proc = await start_stuck_import(cli_env, database_url, big_csv, held)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 143, (out, err)
    [run] = await imports(client, caller, big_csv.name)
    assert run["status"] == "cancelled" and "SIGTERM" in run["message"]
    release_and_settle(held, database_url)
    with psycopg.connect(database_url, autocommit=True) as c:
        assert c.execute(JAN_COUNT).fetchone()[0] == JAN_INCIDENTS


# A deferred trigger makes the import's COMMIT wait on an advisory lock the test holds, so the
# signal lands during the COMMIT itself, whatever the machine's speed.
COMMIT_LOCK = 0x5AFE01
SLOW_COMMIT = f"""
    CREATE FUNCTION test_commit_waits() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_advisory_xact_lock({COMMIT_LOCK}); RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER test_commit_waits AFTER INSERT ON audit_event
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.action = 'import.police-uk')
        EXECUTE FUNCTION test_commit_waits();
"""  # (on the import's audit row, written in its transaction: incidents arrive by ATTACH, no INSERT)
FAST_COMMIT = "DROP TRIGGER IF EXISTS test_commit_waits ON audit_event; DROP FUNCTION IF EXISTS test_commit_waits()"
COMMIT_WAITING = f"""
    SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objid = {COMMIT_LOCK}
      AND a.datname = current_database() AND a.query ILIKE 'COMMIT%'
"""


async def test_a_signal_during_the_commit_records_the_load_that_happened(
        client, make_caller, cli_env, database_url, tmp_path):
    caller = await make_caller("test-csp", "analyst")
    feb = tmp_path / "2024-02-test-constabulary-street.csv"
    feb.write_text(JAN.read_text().replace("2024-01", "2024-02"))
    with psycopg.connect(database_url, autocommit=True) as owner:
        owner.execute(SLOW_COMMIT)
        try:
            owner.execute("SELECT pg_advisory_lock(%s)", (COMMIT_LOCK,))
            proc = subprocess.Popen([*SAFERMAP, "import", "police-uk", str(feb), str(JAN), "--partnership",
                                     "test-csp"], env=cli_env, cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            wait_for("the import's COMMIT to wait", lambda: owner.execute(COMMIT_WAITING).fetchone()[0] == 1)
            proc.send_signal(signal.SIGINT)
            # The signal is in; the COMMIT is still waiting. Let it go.
            owner.execute("SELECT pg_advisory_unlock(%s)", (COMMIT_LOCK,))
            out, err = proc.communicate(timeout=TIMEOUT_S)
        finally:
            owner.execute(FAST_COMMIT)
    assert proc.returncode == 130, (out, err)
    [run] = await imports(client, caller, feb.name)
    # February was committed, so the run says loaded (and why it stopped), not cancelled...
    assert run["status"] == "loaded" and run["rows_loaded"] == JAN_INCIDENTS, run
    assert "SIGINT came during the commit, which completed" in run["message"]
    # ...and the import stopped there: January, the next file, was never started.
    assert await imports(client, caller, JAN.name) == []
    with psycopg.connect(database_url, autocommit=True) as c:
        assert c.execute(JAN_COUNT.replace("2024-01-01", "2024-02-01")).fetchone()[0] == JAN_INCIDENTS
