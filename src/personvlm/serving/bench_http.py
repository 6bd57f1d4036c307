"""HTTP benchmark: requests/s and latency percentiles of ``POST /v1/describe`` under N concurrent
clients, and what dynamic batching buys over ``max_batch=1`` -- measured in one run.

The server runs in its own process (``personvlm serve`` on a free loopback port), so the
load generator (httpx2 async clients, in this process) never competes with it for the GIL. Each
measurement sends a fixed number of requests after a warm-up, so every loop is bounded.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx2
import numpy as np
from PIL import Image, ImageDraw

from personvlm.serving.children import stop_processes

READY_TIMEOUT_S = 180.0
BENCH_TIMEOUT_MS = 300_000


class BenchError(RuntimeError):
    """The benchmark could not run (server did not start, every request failed, ...)."""


@dataclass(frozen=True)
class LoadResult:
    """One measurement: ``clients`` concurrent clients sending ``requests`` requests in total."""

    label: str
    max_batch: int | None
    clients: int
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    mean_batch: float | None  # from the server's /metrics; None when it cannot be read
    # Server process CPU per request (all its threads): what the server would sustain on an idle
    # core, unlike requests_per_s which a shared, oversubscribed machine drags down.
    cpu_ms_per_request: float | None = None
    rss_mb: float | None = None


def person_jpeg(seed: int = 0, size: tuple[int, int] = (128, 256)) -> bytes:
    """A deterministic person-shaped test crop (head, torso, legs on a noisy background)."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = Image.fromarray(rng.integers(60, 200, (h, w, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(img)
    draw.ellipse((w * 0.38, h * 0.04, w * 0.62, h * 0.16), fill=(224, 180, 150))
    draw.rectangle((w * 0.28, h * 0.17, w * 0.72, h * 0.52), fill=(200, 30, 30))
    draw.rectangle((w * 0.32, h * 0.52, w * 0.68, h * 0.92), fill=(30, 40, 120))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear interpolation; 0.0 for no values."""
    return float(np.percentile(np.asarray(values), q)) if values else 0.0


# Counters read from the server's /metrics before and after a measurement.
_SERVER_METRICS = (
    "personvlm_batch_size_sum", "personvlm_batch_size_count", "process_cpu_seconds_total",
    "process_resident_memory_bytes",
)


async def _server_metrics(client: httpx2.AsyncClient) -> dict[str, float]:
    """Batch-size totals, process CPU seconds and RSS from the server's Prometheus metrics
    (whichever it exports; empty when /metrics cannot be read)."""
    try:
        text = (await client.get("/metrics")).text
    except httpx2.HTTPError:
        return {}
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in _SERVER_METRICS:
            values[name] = float(value)
    return values


@dataclass
class Samples:
    """Raw timings of one or more measurement rounds against one server at one client count."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    batch_sum: float = 0.0
    batches: float = 0.0
    server_cpu_s: float | None = None  # CPU the server process used while measured (all threads)
    server_rss: float | None = None  # its largest resident set size seen, bytes

    def add_server_metrics(self, before: dict[str, float], after: dict[str, float]) -> None:
        def delta(name: str) -> float | None:
            return after[name] - before[name] if name in before and name in after else None

        if (batch_sum := delta("personvlm_batch_size_sum")) is not None:
            self.batch_sum += batch_sum
            self.batches += delta("personvlm_batch_size_count") or 0.0
        if (cpu := delta("process_cpu_seconds_total")) is not None:
            self.server_cpu_s = (self.server_cpu_s or 0.0) + cpu
        if "process_resident_memory_bytes" in after:
            self.server_rss = max(self.server_rss or 0.0, after["process_resident_memory_bytes"])

    def summary(self, label: str, clients: int, max_batch: int | None) -> LoadResult:
        if not self.latencies:
            raise BenchError(f"{label}: all {self.errors} requests failed; is the server healthy?")
        ms = [s * 1000.0 for s in self.latencies]
        requests = len(ms) + self.errors
        return LoadResult(
            label=label, max_batch=max_batch, clients=clients, requests=requests, errors=self.errors,
            seconds=round(self.seconds, 3), requests_per_s=round(len(ms) / self.seconds, 2),
            p50_ms=round(statistics.median(ms), 2), p99_ms=round(percentile(ms, 99), 2),
            mean_batch=round(self.batch_sum / self.batches, 2) if self.batches else None,
            cpu_ms_per_request=None if self.server_cpu_s is None else round(self.server_cpu_s * 1000.0 / requests, 2),
            rss_mb=None if self.server_rss is None else round(self.server_rss / 2**20, 1),
        )


async def measure(
    url: str, image: bytes, clients: int, requests: int, samples: Samples | None = None, style: str = "compact",
    api_key: str | None = None, warmup: int | None = None, timeout_s: float = BENCH_TIMEOUT_MS / 1000.0,
) -> Samples:
    """Send ``requests`` describe requests from ``clients`` concurrent clients, after a warm-up;
    add each request's time (and the server's batch sizes) to ``samples``."""
    samples = samples if samples is not None else Samples()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=timeout_s, limits=limits) as client:
        files = {"image": ("person.jpg", image, "image/jpeg")}

        async def post() -> tuple[float, bool]:
            start = time.perf_counter()
            try:
                ok = (await client.post("/v1/describe", files=files, data={"style": style})).status_code == 200
            except httpx2.HTTPError:
                ok = False
            return time.perf_counter() - start, ok

        await asyncio.gather(*(post() for _ in range(warmup if warmup is not None else max(clients, 4))))
        before = await _server_metrics(client)
        remaining = iter(range(requests))

        async def client_loop() -> None:
            for _ in remaining:  # shared iterator: the clients together send exactly `requests`
                seconds, ok = await post()
                if ok:
                    samples.latencies.append(seconds)
                else:
                    samples.errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(clients)))
        samples.seconds += time.perf_counter() - start
        samples.add_server_metrics(before, await _server_metrics(client))
    return samples


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_servers(
    model: str | Path | None, batching: Sequence[tuple[int, int]], queue_size: int, log_path: Path
) -> Iterator[list[str]]:
    """One ``personvlm serve`` child process per ``(max_batch, max_wait_ms)``, each on a free loopback
    port, without auth or store; started together (model loading overlaps), stopped with SIGTERM
    (then SIGKILL) on exit. Their logs go to ``log_path``.

    The request deadline is raised to ``BENCH_TIMEOUT_MS`` so an overloaded ``max_batch=1`` server
    is measured computing every request, not shedding load with fast 503s."""
    env = {k: v for k, v in os.environ.items() if k not in ("PERSONVLM_API_KEY", "PERSONVLM_CONFIG")}
    env["PERSONVLM_REQUEST_TIMEOUT_MS"] = str(BENCH_TIMEOUT_MS)
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    with log_path.open("ab") as log:
        try:
            for max_batch, max_wait_ms in batching:
                port = _free_port()
                cmd = [
                    sys.executable, "-m", "personvlm.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                    "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms), "--queue-size", str(queue_size),
                    "--store", "", "--log-level", "WARNING", *([] if model is None else ["--model", str(model)]),
                ]
                procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
                urls.append(f"http://127.0.0.1:{port}")
            for url, proc in zip(urls, procs, strict=True):
                _wait_ready(url, proc, log_path)
            yield urls
        finally:
            stop_processes(procs)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise BenchError(f"server exited with status {proc.returncode} before it was ready:\n{tail}")
        try:
            if httpx2.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.2)
    raise BenchError(f"server at {url} not ready after {READY_TIMEOUT_S:.0f} s (log: {log_path})")


def _pair(results: Sequence[LoadResult], clients: int) -> tuple[LoadResult, LoadResult] | None:
    batched = [r for r in results if r.clients == clients and r.max_batch != 1]
    single = [r for r in results if r.clients == clients and r.max_batch == 1]
    return (batched[-1], single[-1]) if batched and single else None


def speedup(results: Sequence[LoadResult], clients: int) -> float | None:
    """Throughput with batching over throughput with ``max_batch=1``, both at ``clients`` clients."""
    pair = _pair(results, clients)
    return None if pair is None else round(pair[0].requests_per_s / pair[1].requests_per_s, 2)


def cpu_speedup(results: Sequence[LoadResult], clients: int) -> float | None:
    """Server CPU per request with ``max_batch=1`` over that with batching: the throughput ratio a
    CPU-bound server would show on otherwise idle cores."""
    pair = _pair(results, clients)
    if pair is None or not pair[0].cpu_ms_per_request or pair[1].cpu_ms_per_request is None:
        return None
    return round(pair[1].cpu_ms_per_request / pair[0].cpu_ms_per_request, 2)


def run_local(
    model: str | Path | None, concurrency: Sequence[int], requests: int, max_batch: int, max_wait_ms: int,
    log_path: Path, style: str = "compact", rounds: int = 3, progress: Callable[[str], None] | None = None,
) -> list[LoadResult]:
    """Every client count against a batching server, then batching vs ``max_batch=1`` at the highest.

    Both servers run for the whole benchmark and the top-level comparison alternates between them in
    ``rounds`` rounds, so a change in background load hits both sides alike instead of the ratio.
    """
    image = person_jpeg()
    top = max(concurrency)
    queue_size = max(256, 2 * top)
    batched_label = f"max_batch {max_batch}, wait {max_wait_ms} ms"
    results: list[LoadResult] = []

    def run(url: str, clients: int, n: int, samples: Samples | None = None, label: str = "") -> Samples:
        if progress is not None:
            progress(f"{label}: {clients} clients, {n} requests")
        return asyncio.run(measure(url, image, clients, n, samples, style))

    with local_servers(model, [(max_batch, max_wait_ms), (1, 0)], queue_size, log_path) as (batched, single):
        for clients in concurrency:
            if clients != top:
                results.append(run(batched, clients, requests, label=batched_label).summary(batched_label, clients, max_batch))
        on, off = Samples(), Samples()
        per_round = max(1, requests // rounds)
        for _ in range(rounds):
            run(batched, top, per_round, on, batched_label)
            run(single, top, per_round, off, "max_batch 1")
    results.append(on.summary(batched_label, top, max_batch))
    results.append(off.summary("max_batch 1", top, 1))
    return results


def to_json(results: Sequence[LoadResult], clients: int) -> dict[str, object]:
    return {
        "results": [asdict(r) for r in results], "speedup_at": clients, "speedup": speedup(results, clients),
        "cpu_speedup": cpu_speedup(results, clients),
    }
