"""Replacing a force-month is one quick switch (incident partitioned by data set and month,
migration 0018; app/sql/incident_partitions.sql): readers of the month, and of other partnerships,
keep reading while it is replaced, see the old month or the new one and never part of either, and
never wait long for a lock.

The readers run in threads on connections of their own with `lock_timeout` set to READ_WAIT_MS: a
read that waits longer for a lock fails with LockNotAvailable, which the test counts. That measures
lock waits, not wall time, so a slow or busy machine (slow queries, a descheduled thread) does not
fail the test. The bound is the issue's 100 ms; the import's side of it: it asks for incident's
ACCESS EXCLUSIVE lock with a 50 ms lock_timeout and steps aside between tries, so a reader queued
behind that request waits at most 50 ms, and once granted the lock is held for a few catalog
changes and the COMMIT of a small transaction.
"""
from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from rich.console import Console
from sqlalchemy import text

from app.ingest.police_uk import import_paths
from tests.factories import dataset, incidents, partnership

DATA = Path(__file__).parent / "data" / "police_uk"
JAN = DATA / "2024-01-test-constabulary-street.csv"
JAN_INCIDENTS = 9
HEADER = ("Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
          "Crime type,Last outcome category,Context")
REVISED_ROWS = 3000
READ_WAIT_MS = 100
MONTH_COUNT = "SELECT count(*) FROM incident WHERE partnership_id = %s AND month = '2024-01-01'"
OTHER_COUNT = "SELECT count(*) FROM incident WHERE partnership_id = %s"
SWAP_RUNNING = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND query LIKE '%%safermap_incident_month_swap%%' AND pid <> pg_backend_pid()
"""


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def revised_january(tmp_path: Path, rows: int = REVISED_ROWS) -> Path:
    path = tmp_path / "2024-01-test-constabulary-street-big.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(HEADER + "\n")
        for i in range(rows):
            f.write(f"{i:064x},2024-01,Test Constabulary,Test Constabulary,-2.{242600 + i % 500},53.480800,"
                    "On or near Market Street,E01005001,Manchester 001A,Burglary,,\n")
    return path


@dataclass
class Reader:
    """A thread reading the month's count and another partnership's, as fast as it can."""
    url: str
    pid: int
    other_pid: int
    months: list[int] = field(default_factory=list)
    others: set[int] = field(default_factory=set)
    lock_waits: list[str] = field(default_factory=list)  # reads that waited over READ_WAIT_MS
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"SET lock_timeout = '{READ_WAIT_MS}ms'")
            while not self.stop.is_set():
                try:
                    self.months.append(conn.execute(MONTH_COUNT, (self.pid,)).fetchone()[0])
                    self.others.add(conn.execute(OTHER_COUNT, (self.other_pid,)).fetchone()[0])
                except psycopg.errors.LockNotAvailable as e:
                    self.lock_waits.append(str(e))

    def __enter__(self) -> Reader:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


async def other_partnership(db) -> int:
    """Another partnership with 5 incidents, written by a plain INSERT (into the default partition)."""
    pid = await partnership(db, "other-csp")
    await incidents(db, pid, await dataset(db, pid, "police-uk:other"), [(-2.24, 53.48, "Drugs", "2024-01", 5)])
    return pid


async def test_readers_see_the_old_month_or_the_new_never_part_and_never_wait_long(settings, db, database_url,
                                                                                   tmp_path):
    pid = await partnership(db)
    other = await other_partnership(db)
    assert await import_paths(settings, [JAN], "test-csp", quiet())
    big = revised_january(tmp_path)
    with Reader(database_url, pid, other) as reader:
        for path in (big, JAN, big, JAN, big):
            assert await import_paths(settings, [path], "test-csp", quiet())
            await asyncio.sleep(0.05)  # let the reader see each month
    assert reader.lock_waits == []
    assert set(reader.months) == {JAN_INCIDENTS, REVISED_ROWS}, "only the old month or the new, never part"
    assert reader.others == {5}
    assert (await db.execute(text("SELECT count(*) FROM incident"))).scalar_one() == REVISED_ROWS + 5


async def test_a_long_read_holds_the_switch_back_but_not_the_readers_behind_it(settings, db, database_url,
                                                                               tmp_path):
    """A transaction that has read incident (a slow tile, say) keeps the import from swapping until
    it ends; meanwhile the import's lock request must not queue the other readers behind it."""
    pid = await partnership(db)
    other = await other_partnership(db)
    assert await import_paths(settings, [JAN], "test-csp", quiet())
    big = revised_january(tmp_path)
    with psycopg.connect(database_url) as long_read, Reader(database_url, pid, other) as reader:
        long_read.execute("SELECT count(*) FROM incident").fetchone()  # its lock lasts until the commit
        load = asyncio.create_task(import_paths(settings, [big], "test-csp", quiet()))
        with psycopg.connect(database_url, autocommit=True) as watch:
            for _ in range(600):
                if watch.execute(SWAP_RUNNING).fetchone()[0]:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the import never reached its swap")
        reads_before = len(reader.months)
        await asyncio.sleep(1.0)  # the import keeps asking for the lock, about every 50-150 ms
        assert not load.done()
        assert len(reader.months) > reads_before, "readers kept reading while the import waited"
        assert set(reader.months) == {JAN_INCIDENTS}
        long_read.commit()
        assert await load
        await asyncio.sleep(0.05)
    assert reader.lock_waits == []
    assert set(reader.months) == {JAN_INCIDENTS, REVISED_ROWS}


async def test_plain_inserts_into_a_month_are_replaced_by_its_import(settings, db, tmp_path):
    """Rows of a data set-month no import has loaded go to the default partition; importing the
    month takes them over (deleted with the swap, counted as replaced)."""
    pid = await partnership(db)
    assert await import_paths(settings, [JAN], "test-csp", quiet())
    ds = (await db.execute(text("SELECT id FROM dataset WHERE source_key = 'police-uk:test-constabulary'"))).scalar_one()
    await incidents(db, pid, ds, [(-2.24, 53.48, "Drugs", "2024-03", 4), (-2.24, 53.48, "Drugs", "2024-01", 2)])
    where = text("SELECT tableoid::regclass::text AS part, count(*) AS n FROM incident GROUP BY 1 ORDER BY 1")
    assert [tuple(r) for r in (await db.execute(where)).all()] == [
        (f"incident_p_{ds}_202401", JAN_INCIDENTS + 2), ("incident_p_default", 4)]
    await db.commit()
    march = tmp_path / "2024-03-test-constabulary-street.csv"
    march.write_text(JAN.read_text().replace("2024-01", "2024-03"))
    assert await import_paths(settings, [march], "test-csp", quiet())
    assert [tuple(r) for r in (await db.execute(where)).all()] == [
        (f"incident_p_{ds}_202401", JAN_INCIDENTS + 2), (f"incident_p_{ds}_202403", JAN_INCIDENTS)]
    message = (await db.execute(text("SELECT message FROM import_run ORDER BY id DESC LIMIT 1"))).scalar_one()
    assert "replaced 4 earlier incidents" in message
    version = text("SELECT version FROM data_version WHERE partnership_id = :p AND source = 'incident'")
    before = (await db.execute(version, {"p": pid})).scalar_one()
    await db.commit()
    assert await import_paths(settings, [march], "test-csp", quiet())
    assert (await db.execute(version, {"p": pid})).scalar_one() > before, "a swapped month bumps the version"


async def test_a_load_table_left_behind_is_dropped_by_the_next_import(settings, db, database_url):
    pid = await partnership(db)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE incident_load_999999_1_202401 (id bigint)")
    assert await import_paths(settings, [JAN], "test-csp", quiet())
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('incident_load_999999_1_202401')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'incident\\_load\\_%'").fetchone()[0] == 0
    assert (await db.execute(text("SELECT count(*) FROM incident WHERE partnership_id = :p"), {"p": pid})
            ).scalar_one() == JAN_INCIDENTS
