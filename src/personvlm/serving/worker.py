"""A stateless queue worker: Redis Streams consumer group in, described events into the store.

Delivery guarantees, and why each step is where it is:

- **At least once, stored once.** An entry is acknowledged only after the store transaction
  holding its description has committed; a worker killed at any point leaves its entries
  pending, another worker claims them (``XAUTOCLAIM`` after ``claim_idle_ms``) and the
  store's upsert by ``event_id`` makes the repeat harmless.
- **Own pending first.** On start a worker re-reads the entries still pending under its own
  consumer name (id ``0``): a restarted worker with a stable ``--consumer`` picks up its work
  at once instead of waiting for the idle timeout.
- **Poison isolation.** If the describer fails on a batch, each event is retried alone so one
  bad event cannot block its neighbours; the failing one stays pending, comes back via
  ``XAUTOCLAIM``, and after ``max_deliveries`` goes to the dead-letter stream with the error.
  Events that can never work (malformed fields, corrupt image, path outside the image root)
  go there at once with their reason.
- **Graceful stop.** ``request_stop()`` (SIGTERM/SIGINT in the CLI) lets the current batch
  finish, be stored and acknowledged, then ``run`` returns.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import redis
from PIL import Image

from personvlm.schema import PersonDescription
from personvlm.serving.events import Event, EventError, decode_event, event_image
from personvlm.serving.store import DescriptionStore, StoredDescription, StoreError

log = logging.getLogger(__name__)


class DescriberLike(Protocol):
    """What the worker needs from a model (``personvlm.describer.Describer`` fits)."""

    model_version: str

    def describe(self, images: Sequence[Image.Image], style: str = ...) -> list[PersonDescription]: ...


class WorkerError(RuntimeError):
    """The worker cannot start (queue unreachable, bad stream/group); the message says which."""


@dataclass(frozen=True)
class WorkerOptions:
    stream: str
    group: str
    dead_letter: str
    consumer: str = ""
    max_batch: int = 16
    max_wait_ms: int = 50
    claim_idle_ms: int = 30_000
    max_deliveries: int = 5
    image_root: Path | None = None
    style: str = "compact"

    def __post_init__(self) -> None:
        if not self.consumer:
            object.__setattr__(self, "consumer", f"{socket.gethostname()}-{os.getpid()}")
        if self.stream == self.dead_letter:
            raise WorkerError("the dead-letter stream must differ from the input stream")


@dataclass
class _Entry:
    entry_id: bytes
    fields: dict[bytes, bytes]
    deliveries: int
    event: Event | None = None
    image: Image.Image | None = None
    error: str = ""


@dataclass
class WorkerStats:
    stored: int = 0
    dead_lettered: int = 0
    retried: int = 0
    batches: int = 0


class QueueWorker:
    """Consume ``options.stream`` as ``options.consumer`` in ``options.group`` until stopped."""

    def __init__(self, client: redis.Redis, store: DescriptionStore, describer: DescriberLike,
                 options: WorkerOptions) -> None:
        self.redis = client
        self.store = store
        self.describer = describer
        self.options = options
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._claim_cursor = b"0-0"
        self._next_claim = 0.0

    # --- lifecycle -------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Finish the batch in hand, acknowledge it, then leave ``run`` (safe from signal handlers)."""
        self._stop.set()

    def ensure_group(self) -> None:
        """Create the stream and consumer group if needed (``WorkerError`` if Redis is unreachable)."""
        try:
            self.redis.ping()
            self.redis.xgroup_create(self.options.stream, self.options.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise WorkerError(f"cannot create group {self.options.group!r} on {self.options.stream!r}: {exc}") from None
        except redis.RedisError as exc:
            raise WorkerError(f"cannot reach Redis at {_redis_location(self.redis)}: {exc}") from None

    def run(self) -> WorkerStats:
        """Own pending entries first, then new and stale ones, until ``request_stop``."""
        self.ensure_group()
        log.info("worker started", extra={"fields": {
            "consumer": self.options.consumer, "stream": self.options.stream, "group": self.options.group,
            "store": self.store.url, "model_version": self.describer.model_version,
            "backend": self.describer.backend, "caption_backend": self.describer.caption_backend}})
        self._drain_own_pending()
        while not self._stop.is_set():
            try:
                batch = self._next_batch()
                if batch:
                    self.process(batch)
            except redis.RedisError as exc:
                log.error("redis error; retrying in 1 s", extra={"fields": {"error": str(exc)}})
                self._stop.wait(1.0)
                if "NOGROUP" in str(exc):  # the stream or group was deleted under us: start afresh
                    self._claim_cursor = b"0-0"
                    self.ensure_group()
        log.info("worker stopped", extra={"fields": {"consumer": self.options.consumer, **vars(self.stats)}})
        return self.stats

    # --- reading ---------------------------------------------------------------------------------
    def _drain_own_pending(self) -> None:
        cursor = b"0"
        while not self._stop.is_set():
            reply = self.redis.xreadgroup(self.options.group, self.options.consumer, {self.options.stream: cursor},
                                          count=self.options.max_batch)
            got = reply[0][1] if reply else []
            if not got:
                return
            cursor = got[-1][0]
            gone = [i for i, f in got if not f]  # deleted from the stream while pending: nothing to do
            if gone:
                self.redis.xack(self.options.stream, self.options.group, *gone)
            raw = [(i, f) for i, f in got if f]
            log.info("recovering own pending entries", extra={"fields": {"count": len(raw)}})
            self.process(self._with_deliveries(raw))

    def _claim_stale(self) -> list[_Entry]:
        """Entries idle longer than ``claim_idle_ms`` in any consumer (a crashed peer, or one of ours
        whose describe failed), checked at most every quarter of that interval."""
        now = time.monotonic()
        if now < self._next_claim:
            return []
        self._next_claim = now + max(self.options.claim_idle_ms / 4000.0, 0.05)
        reply = self.redis.xautoclaim(self.options.stream, self.options.group, self.options.consumer,
                                      min_idle_time=self.options.claim_idle_ms, start_id=self._claim_cursor,
                                      count=self.options.max_batch)
        self._claim_cursor = reply[0]
        raw = [(i, f) for i, f in reply[1] if f]
        if raw:
            log.info("claimed idle entries", extra={"fields": {"count": len(raw)}})
        return self._with_deliveries(raw)

    def _with_deliveries(self, raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[_Entry]:
        if not raw:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for entry_id, _ in raw:
            pipe.xpending_range(self.options.stream, self.options.group, min=entry_id, max=entry_id, count=1)
        counts = [p[0]["times_delivered"] if p else 1 for p in pipe.execute()]
        return [_Entry(i, f, n) for (i, f), n in zip(raw, counts, strict=True)]

    def _next_batch(self) -> list[_Entry]:
        """Stale entries plus new ones until ``max_batch`` or ``max_wait_ms`` after the first."""
        batch = self._claim_stale()
        deadline = time.monotonic() + self.options.max_wait_ms / 1000.0 if batch else None
        while len(batch) < self.options.max_batch and not self._stop.is_set():
            if deadline is None:
                block_ms = 500  # idle: wake up regularly to check for stop and stale entries
            else:
                block_ms = int((deadline - time.monotonic()) * 1000)
                if block_ms <= 0:
                    break
            reply = self.redis.xreadgroup(self.options.group, self.options.consumer, {self.options.stream: ">"},
                                          count=self.options.max_batch - len(batch), block=max(block_ms, 1))
            if not reply:
                if deadline is None:
                    return batch  # nothing arrived while idle: go round (stop flag, claims)
                continue
            if deadline is None:
                deadline = time.monotonic() + self.options.max_wait_ms / 1000.0
            batch.extend(_Entry(i, f, 1) for i, f in reply[0][1])
        return batch

    # --- processing ------------------------------------------------------------------------------
    def process(self, batch: list[_Entry]) -> None:
        """Describe, store, then dead-letter and acknowledge, in that order."""
        self.stats.batches += 1
        dead: list[_Entry] = []
        ready: list[_Entry] = []
        for e in batch:
            if e.deliveries > self.options.max_deliveries:
                e.error = (f"delivered {e.deliveries} times (max {self.options.max_deliveries}) without being "
                           "stored; the worker probably crashed or was killed on it")
                dead.append(e)
                continue
            try:
                e.event = decode_event(e.fields)
                e.image = event_image(e.event, self.options.image_root)
            except EventError as exc:
                e.error = str(exc)
                dead.append(e)
                continue
            ready.append(e)

        started = time.perf_counter()
        described, failed = self._describe(ready)
        batch_ms = (time.perf_counter() - started) * 1000.0
        retry = [e for e in failed if e.deliveries < self.options.max_deliveries]
        dead.extend(e for e in failed if e.deliveries >= self.options.max_deliveries)
        for e in retry:
            log.warning("describe failed; will retry", extra={"fields": {
                "entry_id": e.entry_id.decode(), "deliveries": e.deliveries, "error": e.error}})

        records = [
            StoredDescription(event.event_id, event.camera_id, event.track_id, event.ts, desc,
                              self.describer.model_version, batch_ms)
            for event, _, desc in described
        ]
        stored_ids = [entry_id for _, entry_id, _ in described]
        try:
            self.store.upsert(records)
        except StoreError as exc:
            # Nothing is acknowledged: every entry comes back via XAUTOCLAIM once the store is back.
            log.error("store write failed; entries stay pending", extra={"fields": {"error": str(exc)}})
            stored_ids = []
            self._stop.wait(1.0)
        self._dead_letter_and_ack(dead, stored_ids)
        self.stats.stored += len(stored_ids)
        self.stats.retried += len(retry)
        log.info("batch done", extra={"fields": {
            "size": len(batch), "stored": len(stored_ids), "dead_lettered": len(dead), "retry_later": len(retry),
            "describe_ms": round(batch_ms, 1)}})

    def _describe(self, entries: list[_Entry]) -> tuple[list[tuple[Event, bytes, PersonDescription]], list[_Entry]]:
        """The whole batch at once; if that fails, one at a time so only the culprits fail.
        Any exception from the model counts as that event's failure (it is retried, then
        dead-lettered with the message), so a model bug cannot crash the worker."""
        try:
            return [(e.event, e.entry_id, d) for e, d in zip(entries, self._call_describer(entries), strict=True)
                    if e.event is not None], []
        except Exception as exc:
            if len(entries) == 1:
                entries[0].error = f"describe failed: {type(exc).__name__}: {exc}"
                return [], entries
        done, failed = [], []
        for e in entries:
            try:
                done.extend((e.event, e.entry_id, d) for d in self._call_describer([e]) if e.event is not None)
            except Exception as exc:
                e.error = f"describe failed: {type(exc).__name__}: {exc}"
                failed.append(e)
        return done, failed

    def _call_describer(self, entries: list[_Entry]) -> list[PersonDescription]:
        if not entries:
            return []
        out = self.describer.describe([e.image for e in entries], style=self.options.style)
        if len(out) != len(entries):
            raise RuntimeError(f"describer returned {len(out)} descriptions for {len(entries)} images")
        return out

    def _dead_letter_and_ack(self, dead: list[_Entry], stored_ids: list[bytes]) -> None:
        """One MULTI/EXEC: a dead-lettered entry is never both lost and acknowledged."""
        if not dead and not stored_ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        for e in dead:
            pipe.xadd(self.options.dead_letter, {
                **e.fields, b"error": e.error, b"source_stream": self.options.stream,
                b"source_id": e.entry_id, b"deliveries": str(e.deliveries), b"consumer": self.options.consumer,
            })
            log.warning("dead-lettered", extra={"fields": {
                "entry_id": e.entry_id.decode(), "deliveries": e.deliveries, "error": e.error}})
        pipe.xack(self.options.stream, self.options.group, *stored_ids, *(e.entry_id for e in dead))
        pipe.execute()
        self.stats.dead_lettered += len(dead)


def _redis_location(client: redis.Redis) -> str:
    kw = client.connection_pool.connection_kwargs
    return f"{kw.get('host', '?')}:{kw.get('port', '?')}/{kw.get('db', 0)}"
