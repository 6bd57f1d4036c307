"""Publishing folders and JSONL files of events, and the event wire format workers decode."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from crops import encoded
from personvlm.cli import app
from personvlm.serving.events import Event, EventError, decode_event, event_image, parse_ts, resolve_under
from personvlm.serving.publish import PublishError, folder_events, jsonl_events, publish_events


def jpeg(size: tuple[int, int] = (20, 40)) -> bytes:
    return encoded(size, (10, 200, 10))


@pytest.fixture
def crops(tmp_path: Path) -> Path:
    root = tmp_path / "gate-3"
    (root / "track-1").mkdir(parents=True)
    (root / "a.jpg").write_bytes(jpeg())
    (root / "track-1" / "b.png").write_bytes(jpeg((10, 10)))
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def stream(redis_url: str, unique_name: str) -> Iterator[str]:
    yield unique_name
    redis.Redis.from_url(redis_url).delete(unique_name)


def test_folder_events_have_stable_ids_tracks_and_bytes(crops: Path) -> None:
    events = folder_events(crops)
    assert [e.event_id for e in events] == ["gate-3:a.jpg", "gate-3:track-1/b.png"]
    assert [e.track_id for e in events] == ["", "track-1"]
    first = events[0].materialise()
    assert first.image == (crops / "a.jpg").read_bytes() and first.camera_id == "gate-3"
    by_path = folder_events(crops, camera="cam-9", by_path=True)[1].materialise()
    assert (by_path.path, by_path.image, by_path.event_id) == ("track-1/b.png", None, "cam-9:track-1/b.png")


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(PublishError, match="no image files"):
        folder_events(tmp_path)
    with pytest.raises(PublishError, match="not a folder"):
        folder_events(tmp_path / "missing")


def test_jsonl_reports_every_bad_line_and_accepts_good_ones(tmp_path: Path) -> None:
    (tmp_path / "p.jpg").write_bytes(jpeg())
    good = [
        {"event_id": "a", "path": "p.jpg", "ts": "2026-11-23T10:00:00Z", "bbox": [0, 0, 10, 20]},
        {"event_id": "b", "image_b64": base64.b64encode(jpeg()).decode(), "camera_id": "c2", "ts": 1790000000},
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in good) + "\n\n")
    events = jsonl_events(path, camera="default-cam")
    assert [(e.event_id, e.camera_id) for e in events] == [("a", "default-cam"), ("b", "c2")]
    assert events[0].materialise().bbox == (0, 0, 10, 20)

    bad = path.with_name("bad.jsonl")
    bad.write_text("\n".join([
        json.dumps(good[0]),
        "{not json",
        json.dumps({"event_id": "c", "path": "missing.jpg"}),
        json.dumps({"event_id": "d", "image_b64": "***"}),
        json.dumps({"event_id": "a", "path": "p.jpg"}),
        json.dumps({"event_id": "e"}),
        json.dumps({"event_id": "f", "path": "p.jpg", "ts": "yesterday"}),
        json.dumps([1, 2]),
        json.dumps({"event_id": "g", "path": "p.jpg", "colour": "red"}),
    ]))
    with pytest.raises(PublishError) as err:
        jsonl_events(bad)
    msg = str(err.value)
    assert "8 bad line(s), nothing was published" in msg
    for line, what in [(2, "not valid JSON"), (3, "no such file"), (4, "not valid base64"),
                       (5, "already used on line 1"), (6, "exactly one of"), (7, "neither ISO 8601"),
                       (8, "expected a JSON object"), (9, "unknown field")]:
        assert f"{bad}:{line}: " in msg and what in msg, (line, what)


def test_event_round_trip_and_decode_errors() -> None:
    ev = Event("x", "cam", "t", datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC), image=jpeg(), bbox=(1, 2, 3, 4))
    fields = {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in ev.encode().items()}
    assert decode_event(fields) == ev
    with pytest.raises(EventError, match="event_id"):
        decode_event({b"ts": b"1"})
    with pytest.raises(EventError, match="exactly one of"):
        decode_event({b"event_id": b"x", b"ts": b"1"})
    with pytest.raises(EventError, match="bbox"):
        decode_event({b"event_id": b"x", b"ts": b"1", b"image": b"..", b"bbox": b"1,2,0,4"})
    assert parse_ts("2026-01-01T00:00:00") == datetime(2026, 1, 1, tzinfo=UTC)


def test_images_are_cropped_and_paths_confined(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "ok.jpg").write_bytes(jpeg((20, 40)))
    (tmp_path / "secret.jpg").write_bytes(jpeg())
    (root / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    assert event_image(Event("a", "c", "t", ts, path="ok.jpg", bbox=(5, 5, 10, 20)), root).size == (10, 20)
    for bad in ("../secret.jpg", str(tmp_path / "secret.jpg"), "link.jpg"):
        with pytest.raises(EventError, match="escapes the image root"):
            resolve_under(root, bad)
    with pytest.raises(EventError, match="no --image-root"):
        event_image(Event("a", "c", "t", ts, path="ok.jpg"), None)
    with pytest.raises(EventError, match="outside the 20x40 image"):
        event_image(Event("a", "c", "t", ts, image=jpeg((20, 40)), bbox=(15, 0, 10, 10)), None)
    with pytest.raises(EventError, match="file not found"):
        event_image(Event("a", "c", "t", ts, path="nope.jpg"), root)


@pytest.mark.services
def test_publish_pipelines_every_event(redis_url: str, stream: str, crops: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    batches: list[int] = []
    events = folder_events(crops) * 3
    assert publish_events(client, stream, events, pipeline_size=4, on_sent=batches.append) == 6
    assert batches == [4, 2]
    entries = client.xrange(stream)
    assert [decode_event(f).event_id for _, f in entries][:2] == ["gate-3:a.jpg", "gate-3:track-1/b.png"]


@pytest.mark.services
def test_publish_command(redis_url: str, stream: str, crops: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["publish", str(crops), "--redis", redis_url, "--stream", stream])
    assert result.exit_code == 0, result.output
    assert "published 2 events" in result.output
    assert redis.Redis.from_url(redis_url).xlen(stream) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"event_id": "x"}\n')
    result = CliRunner().invoke(app, ["publish", str(bad), "--redis", redis_url, "--stream", stream])
    assert result.exit_code == 2 and "bad.jsonl:1:" in " ".join(result.output.split())
    assert redis.Redis.from_url(redis_url).xlen(stream) == 2  # nothing more was sent
