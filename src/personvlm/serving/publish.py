"""Put events on the stream: a folder of crops or a JSONL file of events, pipelined ``XADD``s.

Event ids are derived from what is published (``camera:relative/path`` for a folder), so
publishing the same folder twice stores each crop once: the store upserts by event id.
A JSONL file is checked completely before the first event is sent, so a typo on line 900 does
not leave 899 events half-published.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from personvlm.serving.events import Event, EventError, parse_bbox, parse_ts

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
MAX_ERRORS_SHOWN = 20


class PublishError(ValueError):
    """Input that cannot be published; lists every bad line as ``file:line: what``."""


@dataclass(frozen=True)
class PendingEvent:
    """An event to send. Its image comes from ``image`` bytes, from the file ``source`` (read only
    when sent: a folder of crops need not fit in memory), or is a ``path`` for the workers."""

    event_id: str
    camera_id: str
    track_id: str
    ts: datetime
    bbox: tuple[int, int, int, int] | None = None
    image: bytes | None = None
    source: Path | None = None
    path: str | None = None

    def materialise(self) -> Event:
        image = self.source.read_bytes() if self.source is not None else self.image
        return Event(self.event_id, self.camera_id, self.track_id, self.ts, image=image, path=self.path,
                     bbox=self.bbox)


def folder_events(folder: Path, camera: str | None = None, by_path: bool = False) -> list[PendingEvent]:
    """One event per image file under ``folder`` (recursively, sorted). With ``by_path`` the event
    carries the path relative to ``folder`` (workers need ``--image-root`` = that folder) instead
    of the bytes."""
    if not folder.is_dir():
        raise PublishError(f"{folder}: not a folder")
    camera = camera if camera is not None else folder.resolve().name
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        rel = path.relative_to(folder).as_posix()
        ts = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        track = path.parent.relative_to(folder).as_posix()
        out.append(PendingEvent(f"{camera}:{rel}", camera, "" if track == "." else track, ts,
                                path=rel if by_path else None, source=None if by_path else path))
    if not out:
        raise PublishError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return out


def jsonl_events(path: Path, camera: str | None = None, by_path: bool = False) -> list[PendingEvent]:
    """Events from a JSONL file, one object per line: ``event_id`` (required), ``camera_id``,
    ``track_id``, ``ts`` (ISO 8601 or Unix seconds; default now), ``bbox``, and either
    ``image_b64`` or ``path`` (relative to the JSONL's folder; sent as bytes unless ``by_path``,
    then sent as written for the workers' ``--image-root``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PublishError(f"{path}: cannot read: {exc}") from None
    out: list[PendingEvent] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            pending = _jsonl_event(line, path.parent, camera, by_path)
        except (ValueError, EventError) as exc:
            errors.append(f"{path}:{n}: {exc}")
            continue
        first = seen.setdefault(pending.event_id, n)
        if first != n:
            errors.append(f"{path}:{n}: event_id {pending.event_id!r} already used on line {first}")
        out.append(pending)
    if errors:
        shown = "\n".join(errors[:MAX_ERRORS_SHOWN])
        more = f"\n... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise PublishError(f"{len(errors)} bad line(s), nothing was published:\n{shown}{more}")
    if not out:
        raise PublishError(f"{path}: no events")
    return out


def _jsonl_event(line: str, base: Path, camera: str | None, by_path: bool) -> PendingEvent:
    try:
        obj: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - {"event_id", "camera_id", "track_id", "ts", "bbox", "path", "image_b64"}
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}")
    event_id = obj.get("event_id")
    if not isinstance(event_id, str | int) or str(event_id) == "":
        raise ValueError("'event_id' must be a non-empty string")
    if ("path" in obj) == ("image_b64" in obj):
        raise ValueError("give exactly one of 'path' or 'image_b64'")
    ts_raw = obj.get("ts")
    ts = parse_ts(str(ts_raw)) if ts_raw is not None else datetime.now(UTC)
    bbox_raw = obj.get("bbox")
    bbox = None
    if bbox_raw is not None:
        bbox = parse_bbox(",".join(str(v) for v in bbox_raw) if isinstance(bbox_raw, list) else str(bbox_raw))
    head = (str(event_id), str(obj.get("camera_id", camera or "")), str(obj.get("track_id", "")), ts, bbox)
    if "image_b64" in obj:
        try:
            data = base64.b64decode(str(obj["image_b64"]), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("'image_b64' is not valid base64") from None
        return PendingEvent(*head, image=data)
    rel = str(obj["path"])
    if by_path:
        return PendingEvent(*head, path=rel)
    file = base / rel
    if not file.is_file():
        raise ValueError(f"path {rel!r}: no such file {file}")
    return PendingEvent(*head, source=file)


def publish_events(
    client: redis.Redis,
    stream: str,
    events: Iterable[PendingEvent],
    pipeline_size: int = 256,
    maxlen: int | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """``XADD`` every event, ``pipeline_size`` per round trip; returns how many were sent.
    ``maxlen`` caps the stream (approximately) so a backlog cannot exhaust Redis memory."""
    sent = 0
    for chunk in _chunks(events, pipeline_size):
        pipe = client.pipeline(transaction=False)
        for pending in chunk:
            pipe.xadd(stream, pending.materialise().encode(), maxlen=maxlen, approximate=True)
        pipe.execute()
        sent += len(chunk)
        if on_sent is not None:
            on_sent(len(chunk))
    return sent


def _chunks(items: Iterable[PendingEvent], size: int) -> Iterator[list[PendingEvent]]:
    chunk: list[PendingEvent] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
