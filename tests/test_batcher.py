"""MicroBatcher behaviour with a fake slow model: batching, max_wait, back-pressure, deadlines, errors."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from personvlm.serving.batcher import BatcherClosed, DeadlineExceeded, MicroBatcher, QueueFull
from personvlm.serving.metrics import BatcherMetrics


class SlowModel:
    """Doubles numbers; sleeps ``delay`` per call; records every batch, its time span and its thread."""

    def __init__(self, delay: float = 0.0, poison: int | None = None) -> None:
        self.delay = delay
        self.poison = poison
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.spans: list[tuple[float, float]] = []

    def __call__(self, items: list[int]) -> list[int]:
        start = time.monotonic()
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        self.spans.append((start, time.monotonic()))
        if self.poison is not None and self.poison in items:
            raise ValueError(f"cannot process {self.poison}")
        return [2 * x for x in items]


def run(coro):
    return asyncio.run(coro)


def metric(batcher: MicroBatcher, name: str, labels: dict[str, str] | None = None) -> float:
    value = batcher.metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def test_full_batches_form_under_concurrent_load() -> None:
    model = SlowModel(delay=0.02)

    async def main() -> list[int]:
        b = MicroBatcher(model, max_batch=8, max_wait_ms=1000)
        await b.start()
        try:
            return await asyncio.gather(*(b.submit(i) for i in range(32)))
        finally:
            await b.stop()

    assert run(main()) == [2 * i for i in range(32)]
    # 32 simultaneous requests with max_batch=8 fill four batches without waiting for max_wait.
    assert [len(batch) for batch in model.batches] == [8, 8, 8, 8]
    assert sorted(x for batch in model.batches for x in batch) == list(range(32))
    # Inference ran in the batcher's worker thread, not on the event loop's thread.
    assert model.threads and all(name.startswith("batcher") for name in model.threads)


def test_partial_batch_flushes_after_max_wait() -> None:
    model = SlowModel()

    async def main() -> tuple[float, float]:
        b = MicroBatcher(model, max_batch=64, max_wait_ms=80)
        await b.start()
        t0 = time.monotonic()
        results = await asyncio.gather(b.submit(1), b.submit(2), b.submit(3))
        elapsed = time.monotonic() - t0
        assert results == [2, 4, 6]
        # A lone request later gets its own batch after max_wait, too.
        t1 = time.monotonic()
        assert await b.submit(5) == 10
        lone = time.monotonic() - t1
        await b.stop()
        return elapsed, lone

    elapsed, lone = run(main())
    assert model.batches == [[1, 2, 3], [5]]
    assert 0.07 <= elapsed < 0.5
    assert 0.07 <= lone < 0.5


def test_max_wait_counts_from_first_submit_not_from_when_the_model_is_free() -> None:
    """Requests that queued behind a running batch, longer than max_wait, are flushed at once."""
    model = SlowModel(delay=0.4)

    async def main() -> None:
        b = MicroBatcher(model, max_batch=16, max_wait_ms=300)
        await b.start()
        first = asyncio.create_task(b.submit(0))
        await asyncio.sleep(0.35)  # batch [0] started at ~0.3 s and computes until ~0.7 s
        assert await asyncio.gather(b.submit(1), b.submit(2)) == [2, 4]
        assert await first == 0
        await b.stop()

    run(main())
    assert model.batches == [[0], [1, 2]]
    (_, end_first), (start_second, _) = model.spans
    # [1, 2] were submitted at ~0.35 s, so their max_wait ran out at ~0.65 s, while [0] computed:
    # the second batch starts right after the first, not another 300 ms later.
    assert start_second - end_first < 0.15


def test_full_queue_rejects_at_once_with_retry_after() -> None:
    model = SlowModel(delay=0.2)

    async def main() -> None:
        b = MicroBatcher(model, max_batch=1, max_wait_ms=0, max_queue=2)
        await b.start()
        running = asyncio.create_task(b.submit(0))
        await asyncio.sleep(0.05)  # 0 is computing; the queue is empty
        queued = [asyncio.create_task(b.submit(i)) for i in (1, 2)]
        await asyncio.sleep(0)
        t0 = time.monotonic()
        with pytest.raises(QueueFull, match="queue full") as info:
            await b.submit(3)
        assert time.monotonic() - t0 < 0.05
        assert info.value.retry_after >= 1
        assert await running == 0 and await asyncio.gather(*queued) == [2, 4]
        assert metric(b, "personvlm_batcher_rejected_total", {"reason": "queue_full"}) == 1
        await b.stop()

    run(main())
    assert [3] not in model.batches


def test_expired_requests_are_rejected_not_computed() -> None:
    model = SlowModel(delay=0.25)

    async def main() -> None:
        b = MicroBatcher(model, max_batch=1, max_wait_ms=0)
        await b.start()
        slow = asyncio.create_task(b.submit(0))
        await asyncio.sleep(0.02)
        with pytest.raises(DeadlineExceeded, match="past its deadline of 50 ms; not computed"):
            await b.submit(1, timeout_s=0.05)
        assert await b.submit(2, timeout_s=5) == 4  # a later request is still served
        assert await slow == 0
        assert metric(b, "personvlm_batcher_rejected_total", {"reason": "deadline"}) == 1
        await b.stop()

    run(main())
    assert model.batches == [[0], [2]]


def test_cancelled_request_is_skipped() -> None:
    model = SlowModel(delay=0.15)

    async def main() -> None:
        b = MicroBatcher(model, max_batch=1, max_wait_ms=0)
        await b.start()
        busy = asyncio.create_task(b.submit(0))
        await asyncio.sleep(0.02)
        gone = asyncio.create_task(b.submit(1))
        await asyncio.sleep(0.01)
        gone.cancel()  # the HTTP client disconnected while queued
        assert await b.submit(2) == 4
        assert await busy == 0
        await b.stop()

    run(main())
    assert model.batches == [[0], [2]]


def test_one_poison_item_fails_alone() -> None:
    model = SlowModel(poison=3)

    async def main() -> list[object]:
        b = MicroBatcher(model, max_batch=8, max_wait_ms=200)
        await b.start()
        out = await asyncio.gather(*(b.submit(i) for i in range(6)), return_exceptions=True)
        assert await b.submit(10) == 20  # the batcher keeps working afterwards
        assert metric(b, "personvlm_batcher_failed_total") == 1
        await b.stop()
        return out

    out = run(main())
    assert [r for i, r in enumerate(out) if i != 3] == [0, 2, 4, 8, 10]
    assert isinstance(out[3], ValueError) and "cannot process 3" in str(out[3])
    # One failed batch of six, then each item alone.
    assert model.batches[0] == list(range(6)) and model.batches[1:7] == [[i] for i in range(6)]


def test_batch_fn_may_return_an_exception_for_one_item() -> None:
    def fn(items: list[int]) -> list[int | BaseException]:
        return [ValueError("odd") if x % 2 else x for x in items]

    async def main() -> list[object]:
        b = MicroBatcher(fn, max_batch=4, max_wait_ms=100)
        await b.start()
        out = await asyncio.gather(*(b.submit(i) for i in range(4)), return_exceptions=True)
        await b.stop()
        return out

    out = run(main())
    assert out[0] == 0 and out[2] == 2
    assert isinstance(out[1], ValueError) and isinstance(out[3], ValueError)


def test_wrong_number_of_results_is_an_error_not_a_hang() -> None:
    async def main() -> None:
        b = MicroBatcher(lambda items: [], max_batch=2, max_wait_ms=10)
        await b.start()
        with pytest.raises(RuntimeError, match="returned 0 results for 1 inputs"):
            await b.submit(1)
        await b.stop()

    run(main())


def test_metrics_record_batch_sizes_and_latency() -> None:
    async def main() -> MicroBatcher:
        b = MicroBatcher(SlowModel(delay=0.01), max_batch=4, max_wait_ms=500, metrics=BatcherMetrics())
        await b.start()
        await asyncio.gather(*(b.submit(i) for i in range(8)))
        await b.stop()
        return b

    b = run(main())
    assert metric(b, "personvlm_batch_size_count") == 2
    assert metric(b, "personvlm_batch_size_sum") == 8
    assert metric(b, "personvlm_batcher_request_seconds_count") == 8
    assert metric(b, "personvlm_batch_seconds_sum") >= 0.02
    assert metric(b, "personvlm_queue_depth") == 0


def test_stop_drains_queue_and_then_refuses() -> None:
    model = SlowModel(delay=0.05)

    async def main() -> None:
        b = MicroBatcher(model, max_batch=2, max_wait_ms=1000)
        await b.start()
        pending = [asyncio.create_task(b.submit(i)) for i in range(5)]
        await asyncio.sleep(0)
        await b.stop()  # does not wait out max_wait; computes everything queued
        assert await asyncio.gather(*pending) == [0, 2, 4, 6, 8]
        with pytest.raises(BatcherClosed, match="not running"):
            await b.submit(9)

    t0 = time.monotonic()
    run(main())
    assert time.monotonic() - t0 < 0.9


def test_stop_without_drain_fails_queued_requests() -> None:
    async def main() -> None:
        b = MicroBatcher(SlowModel(delay=0.1), max_batch=1, max_wait_ms=0)
        await b.start()
        first = asyncio.create_task(b.submit(0))
        await asyncio.sleep(0.02)
        queued = asyncio.create_task(b.submit(1))
        await asyncio.sleep(0)
        await b.stop(drain=False)
        assert await first == 0
        with pytest.raises(BatcherClosed, match="shutting down"):
            await queued

    run(main())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch": 0}, "max_batch must be >= 1"),
        ({"max_wait_ms": -1}, "max_wait_ms must be >= 0"),
        ({"max_queue": 0}, "max_queue must be >= 1"),
        ({"timeout_s": 0}, "timeout_s must be > 0"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MicroBatcher(SlowModel(), **kwargs)
