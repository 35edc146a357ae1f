"""The audit trail is append-only for the application's own database role."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app import audit


async def test_app_role_can_add_and_read_audit_events_but_never_change_them(db, make_caller):
    caller = await make_caller(role="admin")
    assert (await db.execute(text("SELECT current_user"))).scalar_one() == "safermap_app"
    await audit.record(db, "camera.update", partnership_id=caller.partnership_id, target="camera/1",
                       detail={"before": {"bearing": 10}, "after": {"bearing": 20}})
    await db.commit()
    row = (await db.execute(text("SELECT action, detail FROM audit_event"))).one()
    assert row.action == "camera.update" and row.detail["after"] == {"bearing": 20}
    for statement in ("UPDATE audit_event SET action = 'nothing'", "DELETE FROM audit_event",
                      "TRUNCATE audit_event"):
        with pytest.raises(DBAPIError, match="permission denied"):
            await db.execute(text(statement))
        await db.rollback()
    assert (await db.execute(text("SELECT count(*) FROM audit_event WHERE action = 'camera.update'"))).scalar_one() == 1


async def test_admins_filter_the_trail_read_it_on_a_page_and_download_it_as_csv(client, make_caller, db):
    import csv
    import io
    admin = await make_caller("wigan", role="admin")
    other = await make_caller("bolton", role="admin")
    viewer = await make_caller("wigan", role="viewer")
    for ref, who in (("W-1", admin), ("W-2", admin), ("B-1", other)):
        r = await client.post("/api/cameras", headers=who.headers, json={
            "type": "Feature", "geometry": {"type": "Point", "coordinates": [-2.63, 53.54]},
            "properties": {"reference": ref, "name": "<img src=x onerror=alert(1)>"}})
        assert r.status_code == 201
    events = (await client.get("/api/audit", headers=admin.headers, params={"action": "camera."})).json()["events"]
    assert [ev["detail"]["after"]["reference"] for ev in events] == ["W-2", "W-1"]  # newest first, own only
    assert (await client.get("/api/audit", headers=viewer.headers)).status_code == 403
    page = await client.get("/admin/audit", headers=admin.headers, params={"action": "camera.create"})
    assert page.status_code == 200 and "W-1" in page.text and "B-1" not in page.text
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text
    r = await client.get("/api/audit.csv", headers=admin.headers, params={"action": "camera.create"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["target"] for row in rows] == [ev["target"] for ev in events]
    exported = (await client.get("/api/audit", headers=admin.headers, params={"action": "audit.export"})).json()
    assert exported["events"][0]["detail"]["rows"] == 2, "downloading the trail is itself recorded"
    r = await client.get("/api/audit", headers=admin.headers, params={"from": "2024-13"})
    assert r.status_code == 400


async def test_the_trail_as_csv_never_runs_a_name_as_a_spreadsheet_formula(client, make_caller, db):
    import csv
    import io

    from tests.factories import person
    admin = await make_caller("leigh", role="admin")
    hostile = await person(db, admin.partnership_id, "admin", name="=cmd|' /C calc'!A0")
    r = await client.post("/api/cameras", headers=hostile.headers, json={
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [-2.63, 53.54]},
        "properties": {"reference": "L-1"}})
    assert r.status_code == 201, r.text
    r = await client.get("/api/audit.csv", headers=admin.headers, params={"action": "camera.create"})
    [row] = list(csv.DictReader(io.StringIO(r.text)))
    assert row["principal_name"] == "'=cmd|' /C calc'!A0"
    assert row["principal_id"] == str(hostile.principal_id)  # numbers as they are
