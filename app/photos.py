"""Camera photos: checked by content, turned upright, re-encoded without metadata, thumbnailed, and
kept as files under settings.photo_dir (never in the web root; served only by the photo routes,
which check the caller's partnership).

Why re-encode: a phone photo carries EXIF with the GPS position of the person who took it (and the
device, the time, often a thumbnail of its own); copying the bytes would publish all of it. The
pixels are decoded, the EXIF orientation applied first (else the photo comes out sideways once its
orientation tag is gone), and the image written afresh with nothing but its colour profile.

Pure functions over files: the HTTP side (streaming, limits, 413/415) is app/api/camera_photos.py.
Measured on this machine: a 12-megapixel (4032 x 3024) JPEG of noise, the worst case for the
encoder, takes 0.3-0.4 s to decode, turn, re-encode and thumbnail on one core, so the route runs it
in a worker thread.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

THUMBNAIL_PX = 320
# Refused before decoding: a small file can hold a huge image (a decompression bomb). 50 MP covers
# the largest phone sensors' default output (8160 x 6120).
MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class Kind:
    format: str      # as stored in camera_photo.format
    suffix: str
    media_type: str


# Pillow's format name -> what we keep. MPO is a JPEG with extra frames (many phones write it).
KINDS = {
    "JPEG": Kind("jpeg", ".jpg", "image/jpeg"),
    "MPO": Kind("jpeg", ".jpg", "image/jpeg"),
    "PNG": Kind("png", ".png", "image/png"),
    "WEBP": Kind("webp", ".webp", "image/webp"),
}
BY_FORMAT = {k.format: k for k in KINDS.values()}
OPENERS = ["JPEG", "PNG", "WEBP"]  # Pillow's JPEG opener also reads MPO


class PhotoError(Exception):
    pass


class NotAnImage(PhotoError):
    """Not JPEG, PNG or WebP by its content (whatever its name or declared type)."""


class DamagedImage(PhotoError):
    """Says it is an image of an accepted kind, but cannot be decoded."""


class TooManyPixels(PhotoError):
    pass


@dataclass(frozen=True)
class Processed:
    kind: Kind
    image: bytes
    thumbnail: bytes
    width: int
    height: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.image).hexdigest()


def _for(img: Image.Image, fmt: str) -> Image.Image:
    """The image in a mode its format can write."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if fmt == "jpeg" and img.mode not in ("L", "RGB", "CMYK"):
        img = img.convert("RGB")
    if fmt == "webp" and img.mode not in ("RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    return img


def _encode(img: Image.Image, fmt: str, icc: bytes | None) -> bytes:
    """Write with only the options named here: no EXIF, XMP or text chunks are carried over."""
    out = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    if fmt == "jpeg":
        img.save(out, "JPEG", quality=88, **extra)
    elif fmt == "png":
        img.save(out, "PNG", **extra)
    else:
        img.save(out, "WEBP", quality=85, **extra)
    return out.getvalue()


def process(source: IO[bytes]) -> Processed:
    """Check, turn upright and re-encode an uploaded image (a seekable file)."""
    try:
        with Image.open(source, formats=OPENERS) as probe:
            pillow_format = probe.format or ""
            if probe.width * probe.height > MAX_PIXELS:
                raise TooManyPixels(f"{probe.width} x {probe.height} pixels is more than {MAX_PIXELS:,}")
            probe.verify()
        source.seek(0)
        with Image.open(source, formats=["JPEG" if pillow_format == "MPO" else pillow_format]) as img:
            img.load()
            icc = img.info.get("icc_profile")
            upright = ImageOps.exif_transpose(img)  # a new image, with the orientation applied
    except UnidentifiedImageError as e:
        raise NotAnImage(str(e)) from e
    except Image.DecompressionBombError as e:
        raise TooManyPixels(str(e)) from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # what Pillow raises for broken data
        raise DamagedImage(str(e)) from e
    kind = KINDS[pillow_format]
    clean = _for(upright, kind.format)
    clean.info = {}  # nothing of the original's metadata may reach the encoder
    thumb = clean.copy()
    thumb.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.LANCZOS)
    return Processed(kind, _encode(clean, kind.format, icc), _encode(thumb, kind.format, icc),
                     clean.width, clean.height)


# -- files ---------------------------------------------------------------------------------------------

def camera_dir(root: Path, partnership_id: int, camera_id: int) -> Path:
    return root / str(partnership_id) / str(camera_id)


def paths(root: Path, partnership_id: int, camera_id: int, photo_id: uuid.UUID, fmt: str) -> tuple[Path, Path]:
    """(image, thumbnail) of a photo: <root>/<partnership>/<camera>/<uuid>.jpg and <uuid>.thumb.jpg."""
    folder, suffix = camera_dir(root, partnership_id, camera_id), BY_FORMAT[fmt].suffix
    return folder / f"{photo_id}{suffix}", folder / f"{photo_id}.thumb{suffix}"


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def store(root: Path, partnership_id: int, camera_id: int, photo_id: uuid.UUID, photo: Processed) -> list[Path]:
    image, thumbnail = paths(root, partnership_id, camera_id, photo_id, photo.kind.format)
    image.parent.mkdir(parents=True, exist_ok=True)
    _write(image, photo.image)
    _write(thumbnail, photo.thumbnail)
    return [image, thumbnail]


def remove(*files: Path) -> None:
    for f in files:
        f.unlink(missing_ok=True)


def remove_camera(root: Path, partnership_id: int, camera_id: int) -> None:
    """Every photo file of a camera (after the camera's deletion has committed)."""
    shutil.rmtree(camera_dir(root, partnership_id, camera_id), ignore_errors=True)
