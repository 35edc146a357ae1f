"""What every camera write carries besides its body: the Idempotency-Key (app/idempotency.py) and
the device's position (X-Device-Position), and what it leaves behind: one audit event saying who,
when, where the device was and what changed, committed with the change and the key's answer."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header
from fastapi.responses import Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.auth import Principal
from app.errors import BadRequest
from app.idempotency import Idempotency, IdempotencyDep

# Read by the camera_revision_write trigger (app/sql/camera_revision.sql): who made this version.
SET_ACTOR = text("SELECT set_config('safermap.actor', CAST(:name AS text), true)")


def device_position(value: str | None) -> dict[str, float] | None:
    """'<lon>,<lat>[,<accuracy_m>]' -> {"lon", "lat", "accuracy_m"}; None when not sent."""
    if value is None or not value.strip():
        return None
    parts = value.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (2, 3) or not all(math.isfinite(n) for n in numbers):
        raise BadRequest("X-Device-Position must be '<longitude>,<latitude>,<accuracy in metres>'.")
    lon, lat = numbers[0], numbers[1]
    if not (-180 <= lon <= 180 and -90 <= lat <= 90) or (len(numbers) == 3 and numbers[2] < 0):
        raise BadRequest("X-Device-Position: longitude -180..180, latitude -90..90, accuracy >= 0 metres.")
    position = {"lon": lon, "lat": lat}
    if len(numbers) == 3:
        position["accuracy_m"] = numbers[2]
    return position


@dataclass
class CameraEdit:
    idempotency: Idempotency
    device: dict[str, float] | None

    async def begin(self, session: AsyncSession, principal: Principal, fingerprint: str) -> Response | None:
        """Start the change's transaction: name its author for the revision trigger, and claim the
        key. A stored answer to replay, or None to go on."""
        await session.execute(SET_ACTOR, {"name": principal.name})
        return await self.idempotency.begin(session, principal, fingerprint)

    async def record(self, session: AsyncSession, principal: Principal, action: str, target: str,
                     detail: dict[str, Any]) -> None:
        """The audit event of the change (who and when are the event's own columns)."""
        extra: dict[str, Any] = {}
        if self.device is not None:
            extra["device"] = self.device
        if self.idempotency.key is not None:
            extra["idempotency_key"] = str(self.idempotency.key)
        await audit.record(session, action, principal=principal, target=target, detail={**detail, **extra})

    async def finish(self, session: AsyncSession, principal: Principal, status: int, body: Any = None,
                     headers: dict[str, str] | None = None) -> None:
        """Keep the answer for the key and commit it with the change."""
        await self.idempotency.remember(session, principal, status, body, headers)
        await session.commit()


def camera_edit(idempotency: IdempotencyDep, x_device_position: Annotated[str | None, Header(
        description="Where the device was: '<lon>,<lat>,<accuracy_m>' (recorded in the audit trail)")] = None,
                ) -> CameraEdit:
    return CameraEdit(idempotency, device_position(x_device_position))


EditDep = Annotated[CameraEdit, Depends(camera_edit)]
