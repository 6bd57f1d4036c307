"""``personvlm serve`` and ``personvlm bench-http``: the HTTP API from the command line.

Settings come from ``personvlm.serving.config``: defaults < ``--config`` YAML < ``PERSONVLM_*``
environment < flags, so a container sets env vars and a developer passes flags.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from personvlm.serving.cli import ConfigOpt, fail, load_describer, settings_from

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Model directory (default: models/default or $PERSONVLM_MODEL); 'tiny' = test model."),
]


def set_model_threads(threads: int | None) -> None:
    """Give the model all cores but one unless told otherwise.

    The event loop that reads, parses and decodes requests needs a core too: when torch takes every
    core, requests reach the batcher in a trickle and batches stay small (measured on 2 cores at 32
    clients: mean batch 7 and no gain over max_batch=1 with 2 model threads; mean batch 12 and 1.75x
    with 1). An explicit ``--threads`` or ``$OMP_NUM_THREADS`` wins.
    """
    import torch

    if threads is None:
        if "OMP_NUM_THREADS" in os.environ:
            return
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, cores - 1)
    torch.set_num_threads(threads)


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8000).")] = None,
    model: ModelOpt = None,
    store: Annotated[
        str | None,
        typer.Option(help="Description store: SQLite path or postgresql:// URL (default personvlm.db); '' for none."),
    ] = None,
    max_batch: Annotated[int | None, typer.Option(help="Largest model batch (default 16).")] = None,
    max_wait_ms: Annotated[
        int | None, typer.Option(help="How long the first queued request waits for others (default 50; 0 = no wait).")
    ] = None,
    queue_size: Annotated[int | None, typer.Option(help="Queued requests before answering 503 (default 256).")] = None,
    device: Annotated[str | None, typer.Option(help="Torch device for the model (default cpu).")] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="CPU threads for the model (default: $OMP_NUM_THREADS, else all cores but one)."),
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR (default INFO).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the HTTP API: describe, batch describe, search, health, Prometheus metrics, OpenAPI docs at /docs.

    Requests are batched (up to --max-batch, waiting at most --max-wait-ms after the first).

    When more than --queue-size requests wait, the server answers 503 with Retry-After.

    Set PERSONVLM_API_KEY to require 'Authorization: Bearer KEY'.

    SIGTERM or Ctrl-C finish the queued requests before the server exits.
    """
    import uvicorn

    from personvlm.serving.api import create_app
    from personvlm.serving.jsonlog import setup_json_logging
    from personvlm.serving.store import StoreError, open_store

    settings = settings_from(
        config, host=host, port=port, model=model, store=store, max_batch=max_batch, max_wait_ms=max_wait_ms,
        queue_size=queue_size, device=device, log_level=log_level,
    )
    setup_json_logging(settings.log_level)
    set_model_threads(threads)
    describer = load_describer(settings.model, settings.device)
    try:
        description_store = open_store(settings.store) if settings.store else None
    except StoreError as exc:
        raise fail(str(exc)) from None
    try:
        uvicorn.run(
            create_app(describer, settings, description_store),
            host=settings.host, port=settings.port, log_config=None, log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=30,
        )
    finally:
        if description_store is not None:
            description_store.close()


def bench_http(
    model: ModelOpt = None,
    concurrency: Annotated[str, typer.Option(help="Comma-separated numbers of concurrent clients.")] = "1,8,32",
    requests: Annotated[
        int, typer.Option(min=1, help="Requests per measurement (after a warm-up); use several times the clients.")
    ] = 320,
    max_batch: Annotated[int, typer.Option(min=1, help="max_batch of the batching server.")] = 16,
    max_wait_ms: Annotated[int, typer.Option(min=0, help="max_wait_ms of the batching server.")] = 50,
    style: Annotated[str, typer.Option(help="Caption style requested: compact or natural.")] = "compact",
    rounds: Annotated[
        int, typer.Option(min=1, help="Alternating rounds of the batching vs max_batch=1 comparison.")
    ] = 3,
    url: Annotated[
        str | None, typer.Option(help="Measure a running server instead (no max_batch=1 baseline then).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON on stdout.")] = False,
) -> None:
    """Measure POST /v1/describe: requests/s, p50 and p99 latency at each client count.

    Without --url it starts two `personvlm serve` processes on free loopback ports, one batching (--max-batch,
    --max-wait-ms) and one with max_batch=1, and measures the batching one at every client count.

    At the highest client count it alternates between the two servers for --rounds rounds and prints the
    throughput ratio (bar: >= 2x), so a change in background load affects both sides alike.
    """
    import asyncio

    from personvlm.serving.bench_http import (
        BenchError,
        LoadResult,
        cpu_speedup,
        measure,
        person_jpeg,
        run_local,
        speedup,
        to_json,
    )

    if style not in ("compact", "natural"):
        raise typer.BadParameter(f"expected compact or natural, got {style!r}", param_hint="--style")
    try:
        levels = sorted({int(c) for c in concurrency.split(",") if c.strip()})
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {concurrency!r}") from None
    if not levels or levels[0] < 1:
        raise typer.BadParameter(f"expected client counts >= 1, got {concurrency!r}")
    results: list[LoadResult]
    try:
        if url is not None:
            api_key = os.environ.get("PERSONVLM_API_KEY")
            results = [
                asyncio.run(measure(url, person_jpeg(), c, requests, style=style, api_key=api_key)).summary(url, c, None)
                for c in levels
            ]
        else:
            log_path = Path(tempfile.gettempdir()) / "personvlm-bench-http.log"
            with Console(stderr=True).status("benchmarking") as status:
                results = run_local(model, levels, requests, max_batch, max_wait_ms, log_path, style, rounds,
                                    progress=lambda msg: status.update(f"benchmarking: {msg}"))
    except BenchError as exc:
        raise fail(str(exc)) from None
    top = max(levels)
    if as_json:
        json.dump(to_json(results, top), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    table = Table(title=f"POST /v1/describe (style={style})")
    columns = ("server", "clients", "requests", "errors", "req/s", "p50 ms", "p99 ms", "mean batch", "CPU ms/req",
               "RSS MB")
    for col in columns:
        table.add_column(col, justify="left" if col == "server" else "right", no_wrap=True)

    def opt(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    for r in results:
        table.add_row(r.label, str(r.clients), str(r.requests), str(r.errors), f"{r.requests_per_s:.1f}",
                      f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", opt(r.mean_batch), opt(r.cpu_ms_per_request),
                      opt(r.rss_mb))
    console = Console() if sys.stdout.isatty() else Console(width=130)  # a log file gets the whole table
    console.print(table)
    ratio = speedup(results, top)
    if ratio is not None:
        verdict = "[green]meets[/green]" if ratio >= 2.0 else "[red]misses[/red]"
        console.print(f"batching speed-up at {top} clients: {ratio:.2f}x requests/s ({verdict} the >= 2x bar)")
    cpu_ratio = cpu_speedup(results, top)
    if cpu_ratio is not None:
        console.print(f"server CPU per request, max_batch=1 / batching: {cpu_ratio:.2f}x")
