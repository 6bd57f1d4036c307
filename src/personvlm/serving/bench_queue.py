"""Queue benchmark: events/s through Redis Streams workers into the store, with 1, 2, ... workers.

Each worker is a real ``personvlm worker`` process (as deployed), started and *ready* (its model
loaded and its consumer registered in the group) before the clock starts; the clock runs from
the first ``XADD`` until the store holds every event. So the figure is sustained throughput of
publish + read + decode + describe + upsert + ack, not model start-up.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import redis
from PIL import Image

from personvlm.serving.children import stop_processes
from personvlm.serving.publish import PendingEvent, publish_events
from personvlm.serving.store import open_store

READY_TIMEOUT_S = 180.0


class QueueBenchError(RuntimeError):
    """The benchmark could not run; the message includes the failing worker's log tail."""


@dataclass(frozen=True)
class QueueBenchResult:
    workers: int
    events: int
    seconds: float
    events_per_s: float


def crop_jpegs(count: int, size: tuple[int, int], seed: int = 0) -> list[bytes]:
    """``count`` distinct small person-sized JPEGs (random colour blocks; the content is irrelevant
    to throughput, the byte size and pixel count are what matter)."""
    rng = np.random.default_rng(seed)
    w, h = size
    out = []
    for _ in range(count):
        arr = np.repeat(rng.integers(0, 256, (h // 8 or 1, 1, 3), dtype=np.uint8), 8, axis=0)[:h]
        arr = np.repeat(arr, w, axis=1)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


@contextmanager
def worker_processes(count: int, redis_url: str, stream: str, group: str, store: str, model: str,
                     max_batch: int, max_wait_ms: int, threads: int, log_dir: Path) -> Iterator[list[subprocess.Popen]]:
    """``count`` worker processes; on exit SIGTERM (graceful), then SIGKILL after 30 s."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.pop("PERSONVLM_CONFIG", None)
    procs: list[subprocess.Popen] = []
    try:
        for i in range(count):
            cmd = [sys.executable, "-m", "personvlm.cli", "worker", "--redis", redis_url, "--stream", stream,
                   "--group", group, "--store", store, "--model", model, "--consumer", f"bench-{i}",
                   "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms),
                   "--dead-letter", f"{stream}:dead", "--log-level", "WARNING"]
            with (log_dir / f"worker-{i}.log").open("ab") as log:
                procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
        yield procs
    finally:
        stop_processes(procs)


def wait_until_ready(client: redis.Redis, stream: str, group: str, procs: list[subprocess.Popen],
                     log_dir: Path) -> None:
    """Until every worker has registered as a consumer (it has loaded its model and started reading)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        _check_alive(procs, log_dir)
        try:
            if len(client.xinfo_consumers(stream, group)) >= len(procs):
                return
        except redis.ResponseError:
            pass  # group not created yet
        time.sleep(0.1)
    raise QueueBenchError(f"workers not ready after {READY_TIMEOUT_S:.0f} s (logs in {log_dir})")


def _check_alive(procs: list[subprocess.Popen], log_dir: Path) -> None:
    for i, p in enumerate(procs):
        if p.poll() is not None:
            tail = (log_dir / f"worker-{i}.log").read_text(errors="replace")[-2000:]
            raise QueueBenchError(f"worker {i} exited with status {p.returncode}:\n{tail}")


def measure(redis_url: str, workers: int, events: int, model: str, max_batch: int, max_wait_ms: int,
            threads: int, image_size: tuple[int, int], timeout_s: float) -> QueueBenchResult:
    """One run with ``workers`` workers on a fresh stream and a fresh SQLite store."""
    client = redis.Redis.from_url(redis_url)
    stream, group = f"personvlm-bench-{uuid.uuid4().hex[:8]}", "bench"
    images = crop_jpegs(16, image_size)
    now = datetime.now(UTC)
    pending = [PendingEvent(f"bench-{i}", "bench-cam", str(i // 10), now, image=images[i % len(images)])
               for i in range(events)]
    with tempfile.TemporaryDirectory(prefix="personvlm-bench-queue-") as tmp:
        tmp_dir = Path(tmp)
        store_path = tmp_dir / "store.db"
        with open_store(store_path) as store, worker_processes(
            workers, redis_url, stream, group, str(store_path), model, max_batch, max_wait_ms, threads, tmp_dir
        ) as procs:
            try:
                wait_until_ready(client, stream, group, procs, tmp_dir)
                start = time.perf_counter()
                publish_events(client, stream, pending)
                while store.count() < events:
                    _check_alive(procs, tmp_dir)
                    if time.perf_counter() - start > timeout_s:
                        raise QueueBenchError(f"only {store.count()}/{events} events stored after {timeout_s:.0f} s")
                    time.sleep(0.05)
                seconds = time.perf_counter() - start
            finally:
                client.delete(stream, f"{stream}:dead")
    return QueueBenchResult(workers, events, round(seconds, 3), round(events / seconds, 1))


def run(redis_url: str, worker_counts: Sequence[int], events: int, model: str, max_batch: int,
        max_wait_ms: int, threads: int, image_size: tuple[int, int], timeout_s: float, repeats: int = 1,
        progress: Callable[[str], None] | None = None) -> list[QueueBenchResult]:
    """Every worker count, ``repeats`` rounds, interleaved (1, 2, 1, 2, ...) so that load from other
    processes on the machine hits every setting alike instead of biasing one of them."""
    results = []
    for round_no in range(1, repeats + 1):
        for n in worker_counts:
            if progress is not None:
                progress(f"round {round_no}/{repeats}: {n} worker(s), {events} events ...")
            results.append(measure(redis_url, n, events, model, max_batch, max_wait_ms, threads, image_size,
                                   timeout_s))
    return results


def median_by_workers(results: Sequence[QueueBenchResult]) -> dict[int, float]:
    """Median events/s per worker count over the rounds."""
    counts = dict.fromkeys(r.workers for r in results)
    return {n: float(statistics.median(r.events_per_s for r in results if r.workers == n)) for n in counts}
