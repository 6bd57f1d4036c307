"""``personvlm serve`` start-up errors and the ``bench-http`` benchmark (with tiny request counts:
these check that the figures are computed right, not how fast anything is)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from personvlm.cli import app as cli
from personvlm.serving.api import create_app
from personvlm.serving.bench_http import LoadResult, Samples, cpu_speedup, measure, person_jpeg, run_local, speedup
from personvlm.serving.http_cli import set_model_threads
from test_api import FakeDescriber, settings, uvicorn_server

runner = CliRunner()


def test_measure_counts_requests_latencies_and_batches() -> None:
    app = create_app(FakeDescriber(delay=0.01), settings(api_key=None, max_batch=8, max_wait_ms=20))
    with uvicorn_server(app) as url:
        samples = asyncio.run(measure(url, person_jpeg(), clients=4, requests=12, warmup=2))
    assert len(samples.latencies) == 12 and samples.errors == 0
    assert samples.batches >= 2 and samples.batch_sum == 12  # the warm-up is not counted
    result = samples.summary("fake", clients=4, max_batch=8)
    assert result.requests == 12 and result.requests_per_s > 0
    assert 0 < result.p50_ms <= result.p99_ms
    assert 1.0 <= result.mean_batch <= 4.0  # never more than the 4 clients in flight
    # The server here is this very process (uvicorn in a thread): its CPU and RSS are reported.
    assert result.cpu_ms_per_request > 0 and result.rss_mb > 10


def test_failed_requests_are_counted_as_errors() -> None:
    app = create_app(FakeDescriber(), settings())  # requires an API key the benchmark does not send
    with uvicorn_server(app) as url:
        samples = asyncio.run(measure(url, person_jpeg(), clients=2, requests=3, warmup=0))
    assert samples.errors == 3 and not samples.latencies
    with pytest.raises(RuntimeError, match="all 3 requests failed"):
        samples.summary("no key", 2, None)


def test_speedup_compares_batching_with_max_batch_1_at_the_same_client_count() -> None:
    def result(max_batch: int, clients: int, rps: float, cpu_ms: float) -> LoadResult:
        return LoadResult("x", max_batch, clients, 10, 0, 1.0, rps, 1.0, 2.0, 1.0, cpu_ms, 300.0)

    results = [result(16, 8, 50.0, 12.0), result(16, 32, 90.0, 10.0), result(1, 32, 30.0, 25.0)]
    assert speedup(results, 32) == 3.0 and cpu_speedup(results, 32) == 2.5
    assert speedup(results, 8) is None and cpu_speedup(results, 8) is None
    assert Samples(latencies=[0.01, 0.02], seconds=0.5).summary("y", 2, 4).requests_per_s == 4.0


def test_bench_http_cli_against_a_running_server_prints_json() -> None:
    app = create_app(FakeDescriber(), settings(api_key=None))
    with uvicorn_server(app) as url:
        out = runner.invoke(cli, ["bench-http", "--url", url, "--concurrency", "2,1", "--requests", "4", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert [r["clients"] for r in report["results"]] == [1, 2]
    assert all(r["errors"] == 0 and r["requests"] == 4 for r in report["results"])
    assert report["speedup"] is None and report["cpu_speedup"] is None  # no baseline on a server we did not start


def test_bench_http_rejects_bad_concurrency() -> None:
    out = runner.invoke(cli, ["bench-http", "--concurrency", "1,many"])
    assert out.exit_code == 2 and "comma-separated integers" in out.output


def test_serve_refuses_to_start_without_a_model_or_with_a_bad_store(tmp_path: Path) -> None:
    def serve(*args: str) -> tuple[int, str]:
        out = runner.invoke(cli, ["serve", *args])
        return out.exit_code, " ".join(out.output.split())

    code, text = serve("--model", str(tmp_path / "missing"), "--store", "")
    assert code == 2 and f"cannot load model {tmp_path / 'missing'}" in text
    code, text = serve("--model", "tiny", "--store", str(tmp_path / "no" / "dir" / "x.db"))
    assert code == 2 and f"folder {tmp_path / 'no' / 'dir'} does not exist" in text
    code, text = serve("--model", "tiny", "--max-batch", "0")
    assert code == 2 and "max_batch: expected an integer >= 1, got 0" in text
    config = tmp_path / "serve.yaml"
    config.write_text("max_wait_ms: soon\n")
    code, text = serve("--config", str(config))
    assert code == 2 and f"config file {config}: max_wait_ms: expected an integer, got 'soon'" in text


@pytest.mark.slow
def test_run_local_starts_both_servers_and_reports_the_ratio(tmp_path: Path) -> None:
    """The whole local benchmark with the tiny model: two `personvlm serve` processes, real HTTP."""
    results = run_local("tiny", [1, 4], requests=8, max_batch=4, max_wait_ms=10,
                        log_path=tmp_path / "serve.log", rounds=2)
    assert [(r.clients, r.max_batch) for r in results] == [(1, 4), (4, 4), (4, 1)]
    assert all(r.errors == 0 and r.requests == 8 for r in results)
    assert results[2].mean_batch == 1.0
    assert all(r.cpu_ms_per_request > 0 and r.rss_mb > 10 for r in results)  # read from each child's /metrics
    assert speedup(results, 4) == round(results[1].requests_per_s / results[2].requests_per_s, 2)


def test_model_threads_leave_a_core_for_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        set_model_threads(None)
        assert torch.get_num_threads() == max(1, len(os.sched_getaffinity(0)) - 1)
        set_model_threads(3)
        assert torch.get_num_threads() == 3
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        set_model_threads(None)  # the operator's environment wins: left as it is
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
