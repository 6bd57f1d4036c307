"""Prometheus metrics for the micro-batcher and the HTTP API.

Every metric lives in a ``CollectorRegistry`` owned by the app (not prometheus-client's global
one) so that several apps in one process -- tests, the benchmark's in-process server, a worker
and an API side by side -- never collide on "Duplicated timeseries" and each ``/metrics`` shows
only its own numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

# Batch sizes are small integers; powers of two show whether batches actually fill.
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
# Latencies from sub-millisecond (tiny test model) to seconds (an overloaded CPU).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class BatcherMetrics:
    """What an operator needs to tune ``max_batch`` / ``max_wait_ms`` and size the queue."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.batch_size = Histogram(
            "personvlm_batch_size", "Requests per model call", buckets=BATCH_SIZE_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("personvlm_queue_depth", "Requests waiting for a batch slot", registry=r)
        self.queue_wait = Histogram(
            "personvlm_queue_wait_seconds", "Time from submit to the start of its model call",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.batch_seconds = Histogram(
            "personvlm_batch_seconds", "Duration of one model call (whole batch)", buckets=LATENCY_BUCKETS, registry=r
        )
        self.request_seconds = Histogram(
            "personvlm_batcher_request_seconds", "Time from submit to result, per request",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.rejected = Counter(
            "personvlm_batcher_rejected", "Requests not computed, by reason (queue_full, deadline, closed)",
            ["reason"], registry=r,
        )
        self.failed = Counter("personvlm_batcher_failed", "Requests whose model call raised", registry=r)


@dataclass
class HttpMetrics:
    """Per-route request counts by status and latency, for the API's own ``/metrics``, plus the
    standard ``process_*`` metrics (CPU seconds, resident memory) of the serving process."""

    registry: CollectorRegistry

    def __post_init__(self) -> None:
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "personvlm_http_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.seconds = Histogram(
            "personvlm_http_request_seconds", "HTTP request duration by route", ["route"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry in Prometheus text format, and the content type to serve it with."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
