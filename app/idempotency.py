"""Idempotency-Key (the IETF httpapi draft) for camera writes: a request sent again from a device's
outbox gets the first answer again, never a second camera.

How a key is kept, so that it can neither let a change happen twice nor block a retry forever:

- First thing in the transaction that makes the change, the request takes a transaction-scoped
  advisory lock on (partnership, key) with pg_try_advisory_xact_lock, which never waits. Not
  granted: another request with the key is in flight, on this or any other app process -> 409.
- Granted, it looks the key up. A stored answer is replayed (same status, body and Location) when
  the request is the same one (method, path and a digest of its body); another request under the
  key is a 422.
- The answer is stored in the same transaction as the change (`remember` before commit), so both
  commit or neither does. A request that dies (client gone, worker killed, server crash) rolls
  back: no change, no key, and its lock ends with its transaction or connection, so the retry simply
  runs again. Nothing is ever left "in flight".
- Only successful answers (2xx) are kept. An error changed nothing, so the same key may be sent
  again with a corrected body: after the duplicate guard's 409, the resend with confirm_new=true.
- Keys live at least settings.idempotency_days; each stored answer purges its partnership's older
  keys (one index range, idempotency_key_created_idx).
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import BadRequest, Conflict, Unprocessable
from app.models import IdempotencyKey

# First key of the two-int4 advisory lock (app.ingest.run_record uses 0x5AFE); the second is a hash
# of partnership and key. Two keys sharing a hash while both are in flight only cost one a 409.
LOCK_NAMESPACE = 0x1DE5
TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(CAST(:ns AS integer), hashtext(CAST(:lock AS text)))")
REPLAYED = "Idempotent-Replayed"


def digest(*parts: Any) -> str:
    """A digest of what makes a request this request: JSON values canonically (sorted keys, no
    spaces), bytes as they are."""
    h = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, separators=(",", ":"),
                                                                 default=str).encode()
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


@dataclass
class Idempotency:
    """One request's key (None when it sent none: then nothing is kept or replayed)."""
    key: uuid.UUID | None
    method: str
    path: str
    days: int
    fingerprint: str = ""
    claimed: bool = False

    async def begin(self, session: AsyncSession, principal: Principal, fingerprint: str) -> Response | None:
        """Claim the key in the change's transaction: the stored answer to replay, or None to go on.
        Raises 409 while another request holds the key, 422 when the key answered another request."""
        if self.key is None:
            return None
        self.fingerprint = fingerprint
        locked = (await session.execute(TRY_LOCK, {"ns": LOCK_NAMESPACE,
                                                   "lock": f"{principal.partnership_id}/{self.key}"})).scalar_one()
        if not locked:
            raise Conflict("A request with this Idempotency-Key is still being processed; send it again in a "
                           "moment to get its answer.", in_flight=True)
        self.claimed = True
        stored = (await session.execute(select(IdempotencyKey).where(
            IdempotencyKey.partnership_id == principal.partnership_id, IdempotencyKey.key == self.key))).scalar_one_or_none()
        if stored is None:
            return None
        if (stored.method, stored.path, stored.body_sha256) != (self.method, self.path, fingerprint):
            raise Unprocessable("This Idempotency-Key was already used for another request; make a new key "
                                "for a new change.", idempotency_key=str(self.key))
        headers = {**stored.headers, REPLAYED: "true"}
        if stored.response is None:
            return Response(status_code=stored.status, headers=headers)
        return JSONResponse(stored.response, status_code=stored.status, headers=headers)

    async def remember(self, session: AsyncSession, principal: Principal, status: int, body: Any = None,
                       headers: dict[str, str] | None = None) -> None:
        """Store the answer in the change's transaction (call it just before commit)."""
        if self.key is None:
            return
        if not self.claimed:
            raise RuntimeError("remember() without begin(): the key was never locked")
        await session.execute(delete(IdempotencyKey).where(
            IdempotencyKey.partnership_id == principal.partnership_id,
            IdempotencyKey.created_at < func.now() - func.make_interval(0, 0, 0, self.days)))
        await session.execute(insert(IdempotencyKey).values(
            partnership_id=principal.partnership_id, key=self.key, principal_id=principal.id, method=self.method,
            path=self.path, body_sha256=self.fingerprint, status=status, response=body, headers=headers or {}))


def idempotency(request: Request, idempotency_key: Annotated[str | None, Header(
        description="A UUID made on the device: the same key and body get the first answer again")] = None,
                ) -> Idempotency:
    key = None
    if idempotency_key is not None:
        try:
            key = uuid.UUID(idempotency_key.strip().strip('"'))
        except ValueError as e:
            raise BadRequest("Idempotency-Key must be a UUID, e.g. 0b7c1d5e-4a3f-4f7e-9c1a-2b3c4d5e6f70.") from e
    return Idempotency(key, request.method, request.url.path, request.app.state.settings.idempotency_days)


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]
