"""``personvlm bench-queue`` runs real worker processes end to end and prints its figures."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from personvlm.cli import app
from personvlm.serving.bench_queue import QueueBenchResult, median_by_workers


@pytest.mark.services
@pytest.mark.slow
def test_bench_queue_reports_events_per_second(redis_url: str) -> None:
    result = CliRunner().invoke(app, ["bench-queue", "--redis", redis_url, "--events", "40", "--workers", "1",
                                      "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    (run,) = data["results"]
    assert run["workers"] == 1 and run["events"] == 40
    assert run["events_per_s"] == pytest.approx(40 / run["seconds"], rel=0.01)
    assert data["median_events_per_s"] == {"1": run["events_per_s"]}


def test_median_per_worker_count() -> None:
    rs = [QueueBenchResult(1, 10, 1.0, 10.0), QueueBenchResult(2, 10, 1.0, 30.0), QueueBenchResult(1, 10, 1.0, 14.0),
          QueueBenchResult(2, 10, 1.0, 20.0), QueueBenchResult(1, 10, 1.0, 12.0)]
    assert median_by_workers(rs) == {1: 12.0, 2: 25.0}
