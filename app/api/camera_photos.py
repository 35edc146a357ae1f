"""Camera photos over HTTP: upload (multipart field `file`), list, the image and its thumbnail,
delete. The image work is app/photos.py; this module streams, limits and answers.

An upload is counted while it streams in and refused (413) as soon as it passes
settings.max_photo_bytes, before it is all read; the parser spools the file to a temporary file past
1 MB, so memory stays bounded whatever is sent. Its Idempotency-Key digest is the file's content
(a browser makes a new multipart boundary for every send, so the raw body differs on a retry).
Files are written before the transaction commits and removed again if it does not; deleting a
photo removes its files after the commit.
"""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from app import photos
from app.api.camera_edits import EditDep
from app.api.cameras import CameraId, camera_missing, fetch_row
from app.api.deps import Pcso, SessionDep, SettingsDep, Viewer
from app.errors import BadRequest, NotFound, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from app.idempotency import digest
from app.models import Camera, CameraPhoto
from app.settings import Settings

router = APIRouter(prefix="/api/cameras/{camera_id}/photos", tags=["cameras"])

PhotoId = Annotated[uuid.UUID, Path(description="The photo id")]
# Room for the multipart envelope (boundaries, part headers) around the file itself.
ENVELOPE_BYTES = 64 * 1024
CACHE_FOREVER = "private, max-age=31536000, immutable"  # a photo id never names other bytes

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary",
                            "description": "A JPEG, PNG or WebP photo (checked by content)"}}}}}}}


class Photo(BaseModel):
    id: uuid.UUID
    url: str = Field(description="The image (EXIF and its GPS position removed)")
    thumbnail_url: str = Field(description="At most 320 px on its longer side")
    width: int
    height: int
    bytes: int
    format: str = Field(description="jpeg, png or webp")
    created_at: datetime
    created_by: str | None


class Photos(BaseModel):
    photos: list[Photo]


def _photo(row: CameraPhoto) -> dict[str, Any]:
    url = f"/api/cameras/{row.camera_id}/photos/{row.id}"
    return {"id": row.id, "url": url, "thumbnail_url": f"{url}/thumbnail", "width": row.width,
            "height": row.height, "bytes": row.bytes, "format": row.format, "created_at": row.created_at,
            "created_by": row.created_by_name}


async def _counted(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLarge(f"The photo is larger than {limit - ENVELOPE_BYTES:,} bytes.")
        yield chunk


async def _upload(request: Request, max_bytes: int) -> UploadFile:
    """The `file` part, spooled to a temporary file; 413/415/400 as soon as it is clear."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMediaType("Send the photo as multipart/form-data, in the field 'file'.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + ENVELOPE_BYTES:
        raise PayloadTooLarge(f"The photo is larger than {max_bytes:,} bytes.")
    parser = MultiPartParser(request.headers, _counted(request, max_bytes + ENVELOPE_BYTES), max_files=1, max_fields=5)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise BadRequest(f"The multipart body could not be read: {e.message}") from e
    upload = form.get("file")
    for _, value in form.multi_items():
        if isinstance(value, UploadFile) and value is not upload:
            await value.close()
    if not isinstance(upload, UploadFile):
        raise Unprocessable("The photo must be in the multipart field 'file'.")
    if upload.size is not None and upload.size > max_bytes:
        await upload.close()
        raise PayloadTooLarge(f"The photo is larger than {max_bytes:,} bytes.")
    return upload


def _sha256(upload: UploadFile) -> str:
    h = hashlib.sha256()
    upload.file.seek(0)
    for block in iter(lambda: upload.file.read(1 << 20), b""):
        h.update(block)
    upload.file.seek(0)
    return h.hexdigest()


@router.post("", status_code=201, response_model=Photo, openapi_extra=UPLOAD_BODY,
             summary="Add a photo (multipart field `file`: JPEG, PNG or WebP); EXIF and GPS are removed")
async def add_photo(camera_id: CameraId, request: Request, session: SessionDep, principal: Pcso, edit: EditDep,
                    settings: SettingsDep, response: Response) -> Any:
    upload = await _upload(request, settings.max_photo_bytes)
    try:
        replay = await edit.begin(session, principal, digest(await run_in_threadpool(_sha256, upload)))
        if replay is not None:
            return replay
        await fetch_row(session, principal.partnership_id, camera_id, writing=True)  # 404, 410
        try:
            processed = await run_in_threadpool(photos.process, upload.file)
        except photos.NotAnImage as e:
            raise UnsupportedMediaType("The file is not a JPEG, PNG or WebP image (checked by its content, "
                                       "not its name).") from e
        except photos.TooManyPixels as e:
            raise PayloadTooLarge(f"The image has too many pixels: {e}.") from e
        except photos.DamagedImage as e:
            raise Unprocessable("The image is damaged or cut short and cannot be read.") from e
    finally:
        await upload.close()
    photo_id = uuid.uuid4()
    files = await run_in_threadpool(photos.store, settings.photos_path, principal.partnership_id, camera_id,
                                    photo_id, processed)
    try:
        row = CameraPhoto(id=photo_id, camera_id=camera_id, partnership_id=principal.partnership_id,
                          format=processed.kind.format, width=processed.width, height=processed.height,
                          bytes=len(processed.image), thumbnail_bytes=len(processed.thumbnail),
                          sha256=processed.sha256, created_by=principal.id, created_by_name=principal.name)
        session.add(row)
        await session.flush()
        await session.refresh(row, ["created_at"])
        body = Photo.model_validate(_photo(row)).model_dump(mode="json")
        await edit.record(session, principal, "camera.photo.add", f"camera/{camera_id}",
                          {"photo": str(photo_id), "format": row.format, "width": row.width, "height": row.height,
                           "bytes": row.bytes, "uploaded_bytes": upload.size})
        await edit.finish(session, principal, 201, body, {"Location": body["url"]})
    except BaseException:
        photos.remove(*files)  # nothing committed: no file without its row
        raise
    response.headers["Location"] = body["url"]
    return body


@router.get("", response_model=Photos, summary="A camera's photos, oldest first")
async def list_photos(camera_id: CameraId, session: SessionDep, principal: Viewer) -> dict:
    await fetch_row(session, principal.partnership_id, camera_id)  # 404 when not ours
    rows = (await session.execute(select(CameraPhoto).where(CameraPhoto.camera_id == camera_id)
                                  .order_by(CameraPhoto.created_at, CameraPhoto.id))).scalars().all()
    return {"photos": [_photo(r) for r in rows]}


async def _row(session: AsyncSession, partnership_id: int, camera_id: int, photo_id: uuid.UUID) -> CameraPhoto:
    row = (await session.execute(select(CameraPhoto).where(
        CameraPhoto.id == photo_id, CameraPhoto.camera_id == camera_id,
        CameraPhoto.partnership_id == partnership_id))).scalar_one_or_none()
    if row is None:
        raise NotFound(f"No photo {photo_id} of camera {camera_id} in your partnership.")
    return row


async def _file(session: AsyncSession, settings: Settings, partnership_id: int, camera_id: int, photo_id: uuid.UUID,
                thumbnail: bool) -> FileResponse:
    row = await _row(session, partnership_id, camera_id, photo_id)
    image, thumb = photos.paths(settings.photos_path, partnership_id, camera_id, photo_id, row.format)
    path = thumb if thumbnail else image
    if not path.is_file():
        raise NotFound(f"The file of photo {photo_id} is missing on the server.")
    return FileResponse(path, media_type=photos.BY_FORMAT[row.format].media_type,
                        headers={"Cache-Control": CACHE_FOREVER})


@router.get("/{photo_id}", summary="The photo (re-encoded: no EXIF, no GPS)",
            response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}})
async def get_photo(camera_id: CameraId, photo_id: PhotoId, session: SessionDep, principal: Viewer,
                    settings: SettingsDep) -> FileResponse:
    return await _file(session, settings, principal.partnership_id, camera_id, photo_id, thumbnail=False)


@router.get("/{photo_id}/thumbnail", summary="The photo's thumbnail (at most 320 px)",
            response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}})
async def get_thumbnail(camera_id: CameraId, photo_id: PhotoId, session: SessionDep, principal: Viewer,
                        settings: SettingsDep) -> FileResponse:
    return await _file(session, settings, principal.partnership_id, camera_id, photo_id, thumbnail=True)


@router.delete("/{photo_id}", status_code=204, summary="Remove a photo")
async def delete_photo(camera_id: CameraId, photo_id: PhotoId, session: SessionDep, principal: Pcso, edit: EditDep,
                       settings: SettingsDep) -> Response:
    replay = await edit.begin(session, principal, digest(None))
    if replay is not None:
        return replay
    camera = (await session.execute(select(Camera.id).where(
        Camera.id == camera_id, Camera.partnership_id == principal.partnership_id))).scalar_one_or_none()
    if camera is None:
        raise await camera_missing(session, principal.partnership_id, camera_id)
    row = await _row(session, principal.partnership_id, camera_id, photo_id)
    await session.execute(delete(CameraPhoto).where(CameraPhoto.id == photo_id))
    await edit.record(session, principal, "camera.photo.delete", f"camera/{camera_id}",
                      {"photo": str(photo_id), "format": row.format, "bytes": row.bytes,
                       "created_by": row.created_by_name, "created_at": row.created_at.isoformat()})
    await edit.finish(session, principal, 204)
    photos.remove(*photos.paths(settings.photos_path, principal.partnership_id, camera_id, photo_id, row.format))
    return Response(status_code=204)
