"""The queue worker in-process against the real Redis: flow, acks, poison and corrupt events,
own-pending recovery, claiming from a crashed peer, and no ack when the store write fails."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from PIL import Image

from crops import encoded
from personvlm.schema import PersonDescription
from personvlm.serving.events import Event
from personvlm.serving.store import DescriptionStore, StoredDescription, StoreError, open_store
from personvlm.serving.worker import QueueWorker, WorkerOptions

pytestmark = pytest.mark.services

POISON_SIZE = (13, 7)  # the fake describer raises for images of exactly this size
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def jpeg(size: tuple[int, int] = (16, 32), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    return encoded(size, colour)


def _blank_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 32), (0, 0, 0)).save(buf, "JPEG")  # a covered lens: refused as blank
    return buf.getvalue()


BLANK_JPEG = _blank_jpeg()


class FakeDescriber:
    """Fast stand-in for the model: writes the image size into the caption, fails on poison."""

    model_version = "fake-1"
    backend = "torch"
    caption_backend = "torch"

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def describe(self, images: Sequence[Image.Image], style: str = "compact") -> list[PersonDescription]:
        self.batch_sizes.append(len(images))
        if any(img.size == POISON_SIZE for img in images):
            raise RuntimeError("poison pill in batch")
        return [PersonDescription.from_values({"gender": "male"}, caption=f"{img.width}x{img.height}", style=style)
                for img in images]


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def names(client: redis.Redis, unique_name: str) -> Iterator[dict[str, str]]:
    n = {"stream": f"{unique_name}:in", "group": "workers", "dead_letter": f"{unique_name}:dead"}
    yield n
    client.delete(n["stream"], n["dead_letter"])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DescriptionStore]:
    with open_store(tmp_path / "store.db") as s:
        yield s


def publish(client: redis.Redis, stream: str, events: Sequence[Event] | Sequence[dict]) -> None:
    for e in events:
        client.xadd(stream, e.encode() if isinstance(e, Event) else e)


def good_events(n: int, prefix: str = "ev") -> list[Event]:
    return [Event(f"{prefix}-{i}", f"cam-{i % 3}", f"tr-{i}", T0 + timedelta(seconds=i), image=jpeg())
            for i in range(n)]


def run_until(worker: QueueWorker, done: Callable[[], bool], timeout: float = 30.0) -> None:
    """Run the worker in a thread until ``done()`` holds, then stop it gracefully."""
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not done():
            assert time.monotonic() < deadline, "worker did not finish in time"
            assert thread.is_alive(), "worker thread died"
            time.sleep(0.02)
    finally:
        worker.request_stop()
        thread.join(timeout=10)
    assert not thread.is_alive(), "worker did not stop after request_stop"


def pending(client: redis.Redis, names: dict[str, str]) -> int:
    return int(client.xpending(names["stream"], names["group"])["pending"])


def test_events_are_described_stored_and_acked(client: redis.Redis, names: dict[str, str],
                                               any_store: DescriptionStore) -> None:
    store = any_store
    publish(client, names["stream"], good_events(50))
    describer = FakeDescriber()
    w = QueueWorker(client, store, describer, WorkerOptions(**names, max_batch=8, max_wait_ms=20))
    run_until(w, lambda: store.count() == 50)
    assert pending(client, names) == 0
    assert max(describer.batch_sizes) <= 8 and sum(describer.batch_sizes) == 50
    rec = store.get("ev-7")
    assert (rec.camera_id, rec.track_id, rec.ts) == ("cam-1", "tr-7", T0 + timedelta(seconds=7))
    assert rec.model_version == "fake-1" and rec.description.caption == "16x32"
    assert client.xlen(names["dead_letter"]) == 0


def test_poison_corrupt_and_malformed_events_are_dead_lettered(
    client: redis.Redis, names: dict[str, str], store: DescriptionStore, tmp_path: Path
) -> None:
    root = tmp_path / "crops"
    root.mkdir()
    (root / "ok.jpg").write_bytes(jpeg())
    events: list[Event | dict] = [*good_events(20)]
    events.append(Event("poison", "cam", "t", T0, image=jpeg(POISON_SIZE)))
    events.append(Event("corrupt", "cam", "t", T0, image=jpeg()[:200]))
    events.append(Event("blank", "cam", "t", T0, image=BLANK_JPEG))
    events.append({"event_id": "no-ts", "camera_id": "cam", "image": jpeg()})
    events.append(Event("escape", "cam", "t", T0, path="../store.db"))
    events.append(Event("by-path", "cam", "t", T0, path="ok.jpg"))
    events.extend(good_events(20, prefix="late"))
    publish(client, names["stream"], events)
    opts = WorkerOptions(**names, max_batch=8, max_wait_ms=10, claim_idle_ms=100, max_deliveries=3, image_root=root)
    w = QueueWorker(client, store, FakeDescriber(), opts)
    run_until(w, lambda: store.count() == 41 and client.xlen(names["dead_letter"]) == 5)

    dead = {f[b"event_id"].decode(): f for _, f in client.xrange(names["dead_letter"])}
    assert set(dead) == {"poison", "corrupt", "blank", "no-ts", "escape"}
    assert b"image is blank" in dead["blank"][b"error"] and dead["blank"][b"image"] == BLANK_JPEG
    assert b"poison pill" in dead["poison"][b"error"] and dead["poison"][b"deliveries"] == b"3"
    assert b"corrupt or truncated" in dead["corrupt"][b"error"] and dead["corrupt"][b"deliveries"] == b"1"
    assert b"'ts' is missing" in dead["no-ts"][b"error"]
    assert b"escapes the image root" in dead["escape"][b"error"]
    assert dead["corrupt"][b"image"] == jpeg()[:200]  # the payload is kept for inspection / replay
    assert store.get("poison") is None and store.get("by-path") is not None
    assert store.get("late-19") is not None  # the rest flowed on
    assert pending(client, names) == 0


def test_own_pending_entries_are_recovered_first(client: redis.Redis, names: dict[str, str],
                                                 store: DescriptionStore) -> None:
    client.xgroup_create(names["stream"], names["group"], id="0", mkstream=True)
    publish(client, names["stream"], good_events(10))
    # A previous life of consumer "w1" read these and died before acknowledging.
    client.xreadgroup(names["group"], "w1", {names["stream"]: ">"}, count=10)
    opts = WorkerOptions(**names, consumer="w1", claim_idle_ms=600_000)  # claiming cannot be what saves them
    run_until(QueueWorker(client, store, FakeDescriber(), opts), lambda: store.count() == 10)
    assert pending(client, names) == 0


def test_entries_of_a_crashed_peer_are_claimed(client: redis.Redis, names: dict[str, str],
                                               store: DescriptionStore) -> None:
    client.xgroup_create(names["stream"], names["group"], id="0", mkstream=True)
    publish(client, names["stream"], good_events(10))
    client.xreadgroup(names["group"], "crashed-peer", {names["stream"]: ">"}, count=10)
    opts = WorkerOptions(**names, consumer="survivor", claim_idle_ms=100)
    run_until(QueueWorker(client, store, FakeDescriber(), opts), lambda: store.count() == 10)
    assert pending(client, names) == 0


class FlakyStore:
    """Fails the first ``failures`` upserts the way a database outage does."""

    def __init__(self, inner: DescriptionStore, failures: int) -> None:
        self.inner, self.failures, self.url = inner, failures, inner.url

    def upsert(self, records: Sequence[StoredDescription]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("simulated outage")
        self.inner.upsert(records)


def test_nothing_is_acked_when_the_store_write_fails(client: redis.Redis, names: dict[str, str],
                                                     store: DescriptionStore) -> None:
    publish(client, names["stream"], good_events(5))
    flaky = FlakyStore(store, failures=1)
    opts = WorkerOptions(**names, claim_idle_ms=100, max_wait_ms=200)
    w = QueueWorker(client, flaky, FakeDescriber(), opts)  # type: ignore[arg-type]
    run_until(w, lambda: store.count() == 5)
    assert flaky.failures == 0  # the outage happened, and the entries survived it
    assert pending(client, names) == 0
    assert client.xlen(names["dead_letter"]) == 0


def test_worker_recovers_when_the_stream_is_deleted(client: redis.Redis, names: dict[str, str],
                                                    store: DescriptionStore) -> None:
    publish(client, names["stream"], good_events(5))
    w = QueueWorker(client, store, FakeDescriber(), WorkerOptions(**names))
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while store.count() < 5:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        client.delete(names["stream"])  # an operator resets the queue: the group goes with it
        publish(client, names["stream"], good_events(5, prefix="after"))
        while store.count() < 10:
            assert time.monotonic() < deadline + 10, "worker did not recover from the deleted stream"
            time.sleep(0.02)
    finally:
        w.request_stop()
        thread.join(timeout=10)
