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
