"""The queue event: what a tracker (or ``personvlm publish``) puts on the Redis stream and what a
worker takes off it.

Stream entry fields (all strings except ``image``)::

    event_id   unique id; the store upserts by it, so a redelivered event is stored once
    camera_id  track_id
    ts         capture time, ISO 8601 (``2026-11-23T14:00:00.120Z``) or Unix seconds
    image      encoded image bytes (JPEG/PNG...)          -- exactly one of image / path
    path       image file relative to the worker's --image-root (never outside it)
    bbox       optional crop of that image: "x,y,w,h" in pixels

Decoding is strict and each problem is one ``EventError`` with a reason a person can act on,
because it ends up in the dead-letter stream next to the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from personvlm.imageio import ImageError, load_image

FIELDS = ("event_id", "camera_id", "track_id", "ts", "image", "path", "bbox")


class EventError(ValueError):
    """An event that can never be processed (malformed, or its image is unusable)."""


@dataclass(frozen=True)
class Event:
    event_id: str
    camera_id: str
    track_id: str
    ts: datetime
    image: bytes | None = None
    path: str | None = None
    bbox: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if not self.event_id:
            raise EventError("event_id is missing or empty")
        if (self.image is None) == (self.path is None):
            raise EventError("an event needs exactly one of 'image' (bytes) or 'path'")
        if self.ts.tzinfo is None:
            object.__setattr__(self, "ts", self.ts.replace(tzinfo=UTC))

    def encode(self) -> dict[str, bytes | str]:
        """Fields for ``XADD``."""
        out: dict[str, bytes | str] = {
            "event_id": self.event_id, "camera_id": self.camera_id, "track_id": self.track_id,
            "ts": self.ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        }
        if self.image is not None:
            out["image"] = self.image
        if self.path is not None:
            out["path"] = self.path
        if self.bbox is not None:
            out["bbox"] = ",".join(str(v) for v in self.bbox)
        return out


def parse_ts(text: str) -> datetime:
    """ISO 8601 (``Z`` or an offset; naive means UTC) or Unix seconds, as an aware datetime."""
    text = text.strip()
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        pass
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise EventError(f"ts {text!r} is neither ISO 8601 nor Unix seconds") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def parse_bbox(text: str) -> tuple[int, int, int, int]:
    parts = text.replace("[", "").replace("]", "").split(",")
    try:
        x, y, w, h = (int(float(p)) for p in parts)
    except ValueError:
        raise EventError(f"bbox {text!r}: expected 'x,y,w,h' (4 numbers)") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise EventError(f"bbox {text!r}: x and y must be >= 0 and w, h > 0")
    return x, y, w, h


def decode_event(fields: Mapping[bytes | str, bytes | str]) -> Event:
    """Read stream entry fields into an ``Event`` or raise ``EventError`` saying what is wrong."""
    raw = {(k.decode("utf-8", "replace") if isinstance(k, bytes) else k): v for k, v in fields.items()}

    def text(name: str, default: str | None = None) -> str | None:
        value = raw.get(name)
        if value is None:
            return default
        try:
            return value.decode("utf-8") if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError:
            raise EventError(f"field {name!r} is not UTF-8 text") from None

    event_id = text("event_id")
    if not event_id:
        raise EventError("field 'event_id' is missing or empty")
    ts_text = text("ts")
    if ts_text is None:
        raise EventError("field 'ts' is missing")
    image = raw.get("image")
    if isinstance(image, str):
        image = image.encode("latin-1")
    bbox = text("bbox")
    return Event(
        event_id=event_id,
        camera_id=text("camera_id", "") or "",
        track_id=text("track_id", "") or "",
        ts=parse_ts(ts_text),
        image=image,
        path=text("path"),
        bbox=parse_bbox(bbox) if bbox else None,
    )


def resolve_under(root: Path | None, relative: str) -> Path:
    """The file ``relative`` names under ``root``; refuses absolute paths, ``..`` and symlinks that
    lead outside the root, because event producers must not make workers read arbitrary files."""
    if root is None:
        raise EventError(f"path {relative!r}: this worker has no --image-root, so it only accepts image bytes")
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise EventError(f"path {relative!r} escapes the image root")
    return target


def event_image(event: Event, image_root: Path | None) -> Image.Image:
    """The event's image, cropped to its bbox, as RGB; ``EventError`` with the reason otherwise."""
    try:
        if event.image is not None:
            img = load_image(event.image)
        else:
            img = load_image(resolve_under(image_root, event.path or ""))
    except ImageError as exc:
        raise EventError(f"image unusable: {exc.reason}") from None
    if event.bbox is not None:
        x, y, w, h = event.bbox
        if x + w > img.width or y + h > img.height:
            raise EventError(f"bbox {event.bbox} lies outside the {img.width}x{img.height} image")
        img = img.crop((x, y, x + w, y + h))
    return img
