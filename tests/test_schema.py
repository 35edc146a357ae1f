"""Schema behaviour every face relies on: deleting a partnership or data set takes its incidents."""
from __future__ import annotations

from sqlalchemy import text

ADD_INCIDENTS = text("""
    INSERT INTO incident (partnership_id, dataset_id, category, month, geom)
    SELECT :p, :d, 'Drugs', date '2024-01-01', ST_SetSRID(ST_MakePoint(-2.24, 53.48), 4326)
    FROM generate_series(1, 3)
""")


async def test_deleting_a_data_set_or_partnership_removes_its_incidents(make_caller, db):
    ours = await make_caller("oldham", role="admin")
    keep = await make_caller("bury", role="admin")
    datasets = {}
    for caller in (ours, keep):
        for key in ("police-uk:gmp", "council:asb"):
            datasets[caller.slug, key] = (await db.execute(text(
                "INSERT INTO dataset (partnership_id, source_key, name) VALUES (:p, :k, :k) RETURNING id"),
                {"p": caller.partnership_id, "k": key})).scalar_one()
            await db.execute(ADD_INCIDENTS, {"p": caller.partnership_id, "d": datasets[caller.slug, key]})
    await db.commit()
    await db.execute(text("DELETE FROM dataset WHERE id = :d"), {"d": datasets["oldham", "council:asb"]})
    await db.commit()
    count = text("SELECT count(*) FROM incident WHERE partnership_id = :p")
    assert (await db.execute(count, {"p": ours.partnership_id})).scalar_one() == 3
    await db.execute(text("DELETE FROM partnership WHERE id = :p"), {"p": ours.partnership_id})
    await db.commit()
    assert (await db.execute(count, {"p": ours.partnership_id})).scalar_one() == 0
    assert (await db.execute(count, {"p": keep.partnership_id})).scalar_one() == 6
