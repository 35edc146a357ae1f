"""Kept study extents (table hotspot_extent): a cold process reads the extent it was kept under the
current data versions instead of scanning every incident, and never one read at other versions:
new incidents and sharing changes (which bump data versions) make it be computed again."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from app.analysis import hotspot_data as hd
from app.analysis.hotspot_data import SystemPrincipal
from tests.factories import LAT, LON, dataset, incidents, partnership

KEPT = text("SELECT access, versions, minx, miny, maxx, maxy FROM hotspot_extent "
            "WHERE partnership_id = :p ORDER BY access")


@pytest.fixture
async def reads(app):
    """A read session, as a GET request has (each statement commits by itself)."""
    async with app.state.read_sessionmaker() as session:
        yield session


async def cold_extent(session, who):
    """The extent as a new process would find it: nothing in this process's memory."""
    hd._EXTENTS.clear()
    return await hd.study_extent(session, who)


async def test_a_kept_extent_serves_a_cold_process_until_the_data_changes(db, reads):
    pid = await partnership(db, "csp-kept")
    ds = await dataset(db, pid, "police-uk:test")
    await incidents(db, pid, ds, [(LON, LAT, "Burglary", "2024-01", 2), (LON + 0.01, LAT, "Drugs", "2024-01")])
    admin = SystemPrincipal(pid)
    first = await cold_extent(reads, admin)
    assert first is not None
    [kept] = (await reads.execute(KEPT, {"p": pid})).all()
    assert (kept.minx, kept.miny, kept.maxx, kept.maxy) == first
    assert kept.versions == (await hd.data_context(reads, admin)).version_key.split("|", 1)[1]

    # Read from the table, not scanned again: a change to the kept row (no data version moves) shows.
    await reads.execute(text("UPDATE hotspot_extent SET minx = minx - 5000 WHERE partnership_id = :p"), {"p": pid})
    assert await cold_extent(reads, admin) == (first[0] - 5000, *first[1:])

    # New incidents bump the incident data version: the kept extent is stale and computed again.
    await incidents(db, pid, ds, [(LON + 0.05, LAT, "Burglary", "2024-02")])
    wider = await cold_extent(reads, admin)
    assert wider[0] == first[0] and wider[2] > first[2] + 2000  # 0.04 degrees east: ~2.6 km
    [kept] = (await reads.execute(KEPT, {"p": pid})).all()
    assert (kept.minx, kept.maxx) == (wider[0], wider[2])
    assert kept.versions == (await hd.data_context(reads, admin)).version_key.split("|", 1)[1]

    # Deleting incidents bumps it too: the extent shrinks back.
    await db.execute(text("DELETE FROM incident WHERE partnership_id = :p AND month = '2024-02-01'"), {"p": pid})
    await db.commit()
    assert await cold_extent(reads, admin) == first


async def test_a_sharing_change_makes_each_caller_compute_their_extent_again(db, reads):
    pid = await partnership(db, "csp-kept-sharing")
    ds = await dataset(db, pid, "police-uk:test")
    await incidents(db, pid, ds, [(LON, LAT, "Burglary", "2024-01"), (LON + 0.05, LAT, "Drugs", "2024-01")])
    admin, viewer = SystemPrincipal(pid), SystemPrincipal(pid, "viewer")
    whole = await cold_extent(reads, admin)
    assert await cold_extent(reads, viewer) == whole
    assert len((await reads.execute(KEPT, {"p": pid})).all()) == 2  # one per access

    # Drugs become sensitive below analysts (the sensitive_category data version moves): the
    # viewer's kept extent no longer counts, the admin's is recomputed unchanged.
    await db.execute(text("INSERT INTO sensitive_category (partnership_id, category, least_role) "
                          "VALUES (:p, 'Drugs', 'analyst')"), {"p": pid})
    await db.commit()
    narrow = await cold_extent(reads, viewer)
    assert narrow is not None and narrow[2] < whole[2] - 3000
    assert await cold_extent(reads, admin) == whole
    kept = {row.access.split(":")[1]: row for row in (await reads.execute(KEPT, {"p": pid})).all()}
    assert kept["viewer"].maxx == narrow[2] and kept["admin"].maxx == whole[2]
    assert kept["viewer"].versions == kept["admin"].versions  # both read at the new versions


async def test_no_extent_is_kept_as_none_until_incidents_arrive(db, reads):
    pid = await partnership(db, "csp-kept-empty")
    admin = SystemPrincipal(pid)
    assert await cold_extent(reads, admin) is None
    [kept] = (await reads.execute(KEPT, {"p": pid})).all()
    assert kept.minx is None
    assert await cold_extent(reads, admin) is None  # the kept "none" is read back
    ds = await dataset(db, pid, "police-uk:test")
    await incidents(db, pid, ds, [(LON, LAT, "Burglary", "2024-01")])
    assert await cold_extent(reads, admin) is not None


async def test_a_session_inside_a_transaction_reads_kept_extents_but_keeps_none(db, reads):
    pid = await partnership(db, "csp-kept-tx")
    ds = await dataset(db, pid, "police-uk:test")
    await incidents(db, pid, ds, [(LON, LAT, "Burglary", "2024-01")])
    admin = SystemPrincipal(pid)
    assert await cold_extent(db, admin) is not None
    assert (await reads.execute(KEPT, {"p": pid})).all() == []  # no row lock held for the transaction
    await db.rollback()
    kept = await cold_extent(reads, admin)
    await reads.execute(text("UPDATE hotspot_extent SET maxx = maxx + 1 WHERE partnership_id = :p"), {"p": pid})
    assert await cold_extent(db, admin) == (*kept[:2], kept[2] + 1, kept[3])
