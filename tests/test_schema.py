"""Schema behaviour every face relies on: deleting a partnership or data set takes its incidents."""
from __future__ import annotations

from sqlalchemy import text

from tests.factories import dataset, incidents


async def test_deleting_a_data_set_or_partnership_removes_its_incidents(make_caller, db):
    ours = await make_caller("oldham", role="admin")
    keep = await make_caller("bury", role="admin")
    datasets = {}
    for caller in (ours, keep):
        for key in ("police-uk:gmp", "council:asb"):
            datasets[caller.slug, key] = await dataset(db, caller.partnership_id, key)
            await incidents(db, caller.partnership_id, datasets[caller.slug, key], [(-2.24, 53.48, "Drugs", "2024-01", 3)])
    await db.execute(text("DELETE FROM dataset WHERE id = :d"), {"d": datasets["oldham", "council:asb"]})
    await db.commit()
    count = text("SELECT count(*) FROM incident WHERE partnership_id = :p")
    assert (await db.execute(count, {"p": ours.partnership_id})).scalar_one() == 3
    await db.execute(text("DELETE FROM partnership WHERE id = :p"), {"p": ours.partnership_id})
    await db.commit()
    assert (await db.execute(count, {"p": ours.partnership_id})).scalar_one() == 0
    assert (await db.execute(count, {"p": keep.partnership_id})).scalar_one() == 6
