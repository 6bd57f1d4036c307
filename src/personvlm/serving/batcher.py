"""Async micro-batcher: many concurrent single requests become few batched model calls.

A CPU (or GPU) model answers a batch of 16 in far less than 16 times the cost of one, so the
HTTP API and the queue workers funnel every request through one ``MicroBatcher``:

* a batch is flushed when ``max_batch`` requests wait, or ``max_wait_ms`` after its *first*
  request was submitted (measured from that request's submit time, so a request that already
  waited behind a running batch is not made to wait again);
* the model runs in a worker thread, never on the event loop, so the server keeps accepting
  (and rejecting) requests while a batch computes;
* the queue is bounded: when ``max_queue`` requests wait, ``submit`` raises ``QueueFull`` with
  a ``retry_after`` estimate at once instead of letting latency grow without bound;
* every request has a deadline: one that expired while queued is rejected with
  ``DeadlineExceeded`` and never computed, and one whose caller went away (cancelled) is dropped;
* when a batch call raises, its items are retried one by one, so one poison input fails only
  its own request; the batch function may also return an exception in an item's place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from personvlm.serving.metrics import BatcherMetrics

In = TypeVar("In")
Out = TypeVar("Out")

# One call per batch: a list of inputs in, a list of the same length out (an item may be an
# exception instance: that request fails, the others succeed).
BatchFn = Callable[[list[In]], Sequence[Out | BaseException]]

log = logging.getLogger(__name__)


class BatcherError(RuntimeError):
    """A request the batcher did not compute; ``retry_after`` (seconds) says when to try again."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueueFull(BatcherError):
    """The bounded queue is full: the service is overloaded right now."""


class DeadlineExceeded(BatcherError):
    """The request waited in the queue past its deadline and was dropped without computing."""


class BatcherClosed(BatcherError):
    """The batcher is not running (not started yet, or shutting down)."""


@dataclass
class _Pending(Generic[In, Out]):
    payload: In
    future: asyncio.Future[Out]
    submitted: float
    deadline: float


@dataclass
class MicroBatcher(Generic[In, Out]):
    """Collects ``submit``-ted items into batches for ``fn``; see the module docstring.

    ``start()`` must run inside the event loop that will call ``submit``; ``stop()`` finishes the
    queued work (or fails it with ``BatcherClosed`` when ``drain=False``) and joins the thread.
    """

    fn: BatchFn
    max_batch: int = 16
    max_wait_ms: float = 50.0
    max_queue: int = 256
    timeout_s: float = 10.0
    metrics: BatcherMetrics = field(default_factory=BatcherMetrics)
    name: str = "batcher"

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {self.max_queue}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        self._queue: deque[_Pending[In, Out]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        # Exponential moving average of one batch call, for Retry-After estimates.
        self._batch_seconds = 0.05

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self.name} already started")
        self._wakeup = asyncio.Event()  # bound to the running loop
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, drain: bool = True) -> None:
        """Stop accepting; compute what is queued (``drain``) or fail it; wait for the thread."""
        if self._task is None:
            return
        self._closing = True
        if not drain:
            while self._queue:
                item = self._queue.popleft()
                self._fail(item, BatcherClosed(f"{self.name} is shutting down"), "closed")
        self._wakeup.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self.metrics.queue_depth.set(0)

    # --- submitting ------------------------------------------------------------------------
    def retry_after(self) -> float:
        """Seconds until the current queue has likely drained: queued batches x batch time."""
        batches = math.ceil((len(self._queue) + 1) / self.max_batch)
        return max(1.0, math.ceil(batches * self._batch_seconds))

    async def submit(self, payload: In, timeout_s: float | None = None) -> Out:
        """Queue ``payload`` and wait for its result.

        Raises ``QueueFull`` / ``BatcherClosed`` at once, ``DeadlineExceeded`` when it waited past
        ``timeout_s`` (default ``self.timeout_s``) before its batch started, or whatever the batch
        function raised or returned for this item.
        """
        if not self.running:
            raise BatcherClosed(f"{self.name} is not running", retry_after=1.0)
        if len(self._queue) >= self.max_queue:
            self.metrics.rejected.labels("queue_full").inc()
            raise QueueFull(
                f"queue full ({self.max_queue} requests waiting); retry later", retry_after=self.retry_after()
            )
        now = time.monotonic()
        item: _Pending[In, Out] = _Pending(
            payload, asyncio.get_running_loop().create_future(), now, now + (timeout_s or self.timeout_s)
        )
        self._queue.append(item)
        self.metrics.queue_depth.set(len(self._queue))
        self._wakeup.set()
        try:
            return await item.future
        finally:
            self.metrics.request_seconds.observe(time.monotonic() - now)

    # --- the collecting loop ---------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._wait_for_batch()
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            self.metrics.queue_depth.set(len(self._queue))
            live = self._drop_dead(batch)
            if live:
                await self._compute(live)

    async def _wait_for_batch(self) -> None:
        """Return when ``max_batch`` items wait, or ``max_wait_ms`` after the first was submitted."""
        flush_at = self._queue[0].submitted + self.max_wait_ms / 1000.0
        while len(self._queue) < self.max_batch and not self._closing:
            remaining = flush_at - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)

    def _drop_dead(self, batch: list[_Pending[In, Out]]) -> list[_Pending[In, Out]]:
        """Skip items whose caller gave up (cancelled) and fail those past their deadline."""
        now = time.monotonic()
        live = []
        for item in batch:
            if item.future.done():
                continue
            if now > item.deadline:
                waited_ms = (now - item.submitted) * 1000.0
                self._fail(
                    item,
                    DeadlineExceeded(
                        f"request waited {waited_ms:.0f} ms in the queue, past its deadline of "
                        f"{(item.deadline - item.submitted) * 1000.0:.0f} ms; not computed",
                        retry_after=self.retry_after(),
                    ),
                    "deadline",
                )
                continue
            live.append(item)
        return live

    async def _compute(self, batch: list[_Pending[In, Out]]) -> None:
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        for item in batch:
            self.metrics.queue_wait.observe(start - item.submitted)
        self.metrics.batch_size.observe(len(batch))
        payloads = [item.payload for item in batch]
        try:
            results = await loop.run_in_executor(self._executor, self._call, payloads)
        except Exception as exc:  # one poison item must not fail its neighbours: isolate it
            if len(batch) == 1:
                results = [exc]
            else:
                log.warning("%s: batch of %d failed (%s); retrying items one by one", self.name, len(batch), exc)
                results = []
                for payload in payloads:
                    try:
                        results.extend(await loop.run_in_executor(self._executor, self._call, [payload]))
                    except Exception as item_exc:
                        results.append(item_exc)
        elapsed = time.monotonic() - start
        self.metrics.batch_seconds.observe(elapsed)
        self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * elapsed
        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                self.metrics.failed.inc()
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    def _call(self, payloads: list[In]) -> list[Out | BaseException]:
        results = list(self.fn(payloads))
        if len(results) != len(payloads):
            raise RuntimeError(f"{self.name}: batch function returned {len(results)} results for {len(payloads)} inputs")
        return results

    def _fail(self, item: _Pending[In, Out], exc: BatcherError, reason: str) -> None:
        self.metrics.rejected.labels(reason).inc()
        if not item.future.done():
            item.future.set_exception(exc)
