"""``personvlm worker``, ``publish``, ``search`` and ``bench-queue``: the queue and the store from
the command line. Settings come from ``--config`` / ``$PERSONVLM_CONFIG``, ``PERSONVLM_*``
environment variables and these flags (flags win), see ``personvlm.serving.config``."""

from __future__ import annotations

import json
import signal
import sys
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from personvlm.serving.config import ConfigError, Settings, load_settings
from personvlm.serving.events import EventError, parse_ts
from personvlm.serving.store import StoreError, open_store

app = typer.Typer()
err = Console(stderr=True)
D = Settings()  # built-in defaults, shown in --help (a config file or PERSONVLM_* may change them)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML settings file (default: $PERSONVLM_CONFIG).")]
RedisOpt = Annotated[str | None, typer.Option("--redis", help=f"Redis URL (default: {D.redis_url})")]
StreamOpt = Annotated[str | None, typer.Option("--stream", help=f"Stream the events are on (default: {D.stream})")]
StoreOpt = Annotated[str | None, typer.Option(
    "--store", help=f"SQLite file path or postgresql:// URL (default: {D.store})")]


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error and return the exit to raise (status 2: cannot start)."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(2)


def settings_from(config: Path | None, **flags: object) -> Settings:
    try:
        return load_settings(config, **flags)
    except ConfigError as exc:
        raise fail(str(exc)) from None


def connect_redis(url: str) -> redis.Redis:
    """A client that has answered PING, or a clear start-up error naming the URL."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise fail(f"cannot reach Redis at {url}: {exc}") from None
    return client


def load_describer(spec: str | None, device: str):  # noqa: ANN201 - returns personvlm.describer.Describer
    """``spec`` is a model directory, None for the bundled model, or ``tiny[:SEED]``: the
    randomly initialised test model (for tests and queue benchmarks; its captions mean nothing)."""
    from personvlm.describer import Describer

    if spec is not None and (spec == "tiny" or spec.startswith("tiny:")):
        seed = spec.partition(":")[2]
        return Describer.tiny(int(seed) if seed else 0)
    try:
        return Describer.from_pretrained(spec, device=device)
    except (OSError, ValueError) as exc:
        raise fail(f"cannot load model {spec or '(bundled default)'}: {exc}") from None


@app.command("worker")
def worker(
    redis_url: RedisOpt = None,
    stream: StreamOpt = None,
    group: Annotated[str | None, typer.Option("--group", help=f"Consumer group shared by all workers (default: {D.group})")] = None,
    store: StoreOpt = None,
    consumer: Annotated[str | None, typer.Option(
        help="This worker's name in the group (default host-pid). Give a stable name per replica "
             "so a restarted worker resumes its own pending entries at once.")] = None,
    max_batch: Annotated[int | None, typer.Option(help=f"Most events described together (default: {D.max_batch})", min=1)] = None,
    max_wait_ms: Annotated[int | None, typer.Option(
        help=f"Wait this long after the first event for more (default: {D.max_wait_ms})", min=0)] = None,
    claim_idle_ms: Annotated[int | None, typer.Option(
        help=f"Claim entries pending this long in any consumer (crashed peers, failed retries) "
             f"(default: {D.claim_idle_ms})", min=0)] = None,
    max_deliveries: Annotated[int | None, typer.Option(
        help=f"Dead-letter an event after this many deliveries (default: {D.max_deliveries})", min=1)] = None,
    dead_letter: Annotated[str | None, typer.Option(
        help=f"Stream for events that cannot be processed (default: {D.dead_letter})")] = None,
    image_root: Annotated[Path | None, typer.Option(
        help="Folder that events' 'path' fields are resolved in; paths outside it are refused.")] = None,
    model: Annotated[str | None, typer.Option(help="Model directory (default: bundled), or 'tiny' for tests.")] = None,
    style: Annotated[str | None, typer.Option(
        help=f"Caption style stored: compact or natural (default: {D.style})")] = None,
    log_level: Annotated[str | None, typer.Option(
        help=f"DEBUG, INFO, WARNING or ERROR (default: {D.log_level})")] = None,
    config: ConfigOpt = None,
) -> None:
    """Describe events from a Redis stream into the store, as one member of a consumer group.

    Run any number of these on any number of hosts against one stream and group. Each event is
    stored once (upsert by event_id) and acknowledged only after the store committed; SIGTERM
    finishes the current batch, acknowledges it and exits. Logs are JSON lines on stderr.
    """
    from personvlm.serving.jsonlog import setup_json_logging
    from personvlm.serving.worker import QueueWorker, WorkerError, WorkerOptions

    s = settings_from(config, redis_url=redis_url, stream=stream, group=group, store=store, max_batch=max_batch,
                      max_wait_ms=max_wait_ms, claim_idle_ms=claim_idle_ms, max_deliveries=max_deliveries,
                      dead_letter=dead_letter, image_root=str(image_root) if image_root else None, model=model,
                      style=style, log_level=log_level)
    setup_json_logging(s.log_level)
    if s.image_root is not None and not Path(s.image_root).is_dir():
        raise fail(f"--image-root {s.image_root}: not a folder")
    client = connect_redis(s.redis_url)
    try:
        options = WorkerOptions(stream=s.stream, group=s.group, dead_letter=s.dead_letter, consumer=consumer or "",
                                max_batch=s.max_batch, max_wait_ms=s.max_wait_ms, claim_idle_ms=s.claim_idle_ms,
                                max_deliveries=s.max_deliveries,
                                image_root=Path(s.image_root) if s.image_root else None, style=s.style)
        description_store = open_store(s.store)
    except (WorkerError, StoreError) as exc:
        raise fail(str(exc)) from None
    with description_store:
        qw = QueueWorker(client, description_store, load_describer(s.model, s.device), options)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: qw.request_stop())
        try:
            qw.run()
        except WorkerError as exc:
            raise fail(str(exc)) from None


@app.command("publish")
def publish(
    source: Annotated[Path, typer.Argument(help="A folder of image crops, or a JSONL file of events.")],
    redis_url: RedisOpt = None,
    stream: StreamOpt = None,
    camera: Annotated[str | None, typer.Option(
        help="camera_id for the events (folder: default the folder's name; JSONL: for lines without one).")] = None,
    by_path: Annotated[bool, typer.Option(
        "--by-path", help="Send file paths instead of image bytes (workers need --image-root at the same "
                          "folder: the published folder, or the JSONL's paths' root).")] = False,
    maxlen: Annotated[int | None, typer.Option(help="Cap the stream at about this many entries.", min=1)] = None,
    config: ConfigOpt = None,
) -> None:
    """Push a folder of person crops (or a JSONL of events) onto the stream, with progress.

    Folder events get the id CAMERA:relative/path, so publishing a folder twice stores each crop
    once. JSONL lines: {"event_id", "camera_id"?, "track_id"?, "ts"?, "bbox"?, and "path" or
    "image_b64"}; the whole file is checked first and nothing is sent if any line is bad.
    """
    from personvlm.serving.publish import PublishError, folder_events, jsonl_events, publish_events

    s = settings_from(config, redis_url=redis_url, stream=stream)
    try:
        if source.is_dir():
            events = folder_events(source, camera, by_path)
        elif source.is_file():
            events = jsonl_events(source, camera, by_path)
        else:
            raise PublishError(f"{source}: no such file or folder")
    except PublishError as exc:
        raise fail(str(exc)) from None
    client = connect_redis(s.redis_url)
    columns = (TextColumn("publishing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err) as progress:
        task = progress.add_task("publish", total=len(events))
        try:
            sent = publish_events(client, s.stream, events, maxlen=maxlen,
                                  on_sent=lambda n: progress.advance(task, n))
        except (OSError, EventError) as exc:
            raise fail(f"stopped after a read error (events before it were sent): {exc}") from None
        except redis.RedisError as exc:
            raise fail(f"Redis error while publishing: {exc}") from None
    err.print(f"published {sent} events to {s.stream}", highlight=False)


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help='What to look for, e.g. "woman in a red coat with a suitcase".')],
    camera: Annotated[str | None, typer.Option(help="Only this camera.")] = None,
    since: Annotated[str | None, typer.Option(help="Only events at or after this time (ISO 8601).")] = None,
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option(help="Most results shown.", min=1)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: the parsed query and results.")]
    = False,
    config: ConfigOpt = None,
) -> None:
    """Search stored descriptions. Colours with garments, bags, held objects, gender, age,
    headwear, glasses and negations ("no backpack", "man without hat") become attribute
    filters that must match; other words are full-text terms that rank results."""
    from personvlm.serving.query import parse_query

    s = settings_from(config, store=store)
    since_ts: datetime | None = None
    if since is not None:
        try:
            since_ts = parse_ts(since)
        except EventError as exc:
            raise typer.BadParameter(str(exc), param_hint="--since") from None
    parsed = parse_query(query)
    local = s.store.removeprefix("sqlite:///")
    if "://" not in local and local != ":memory:" and not Path(local).exists():
        raise fail(f"no store at {local}: workers create it; point --store (or PERSONVLM_STORE) at theirs")
    try:
        with open_store(s.store) as st:
            hits = st.search(parsed, camera=camera, since=since_ts, limit=limit)
    except StoreError as exc:
        raise fail(str(exc)) from None
    if as_json:
        json.dump({"query": query, "parsed": parsed.explain(), "results": [h.to_dict() for h in hits]},
                  sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    out = Console()
    read = ", ".join(f.phrase for f in parsed.filters) or "-"
    out.print(f"filters: {read}   text: {' '.join(parsed.terms) or '-'}", highlight=False)
    for note in parsed.notes:
        out.print(f"note: {note}", highlight=False)
    table = Table("event", "camera", "time (UTC)", "terms", "conf", "caption")
    for h in hits:
        r = h.record
        table.add_row(r.event_id, r.camera_id, r.ts.strftime("%Y-%m-%d %H:%M:%S"), str(h.matched_terms),
                      f"{h.confidence:.2f}", textwrap.shorten(r.description.caption, 90, placeholder=" ..."))
    out.print(table)
    out.print(f"{len(hits)} result(s)", highlight=False)


@app.command("bench-queue")
def bench_queue(
    redis_url: RedisOpt = None,
    workers: Annotated[str, typer.Option(help="Comma-separated worker counts to measure.")] = "1,2",
    events: Annotated[int, typer.Option(help="Events per measurement.", min=1)] = 2000,
    model: Annotated[str, typer.Option(help="Model directory, or 'tiny' (the random test model).")] = "tiny",
    max_batch: Annotated[int, typer.Option(help="Workers' --max-batch.", min=1)] = 32,
    max_wait_ms: Annotated[int, typer.Option(help="Workers' --max-wait-ms.", min=0)] = 50,
    threads: Annotated[int, typer.Option(help="Torch threads per worker process.", min=1)] = 1,
    image_size: Annotated[str, typer.Option(help="Published crop size WxH.")] = "64x128",
    timeout: Annotated[float, typer.Option(help="Give up on one measurement after this many seconds.")] = 600.0,
    repeats: Annotated[int, typer.Option(help="Rounds over all worker counts, interleaved; medians reported.",
                                         min=1)] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Queue throughput: events/s from publish to stored, with 1 and 2 (or --workers) worker
    processes on a fresh stream and SQLite store. Workers are ready before the clock starts."""
    from dataclasses import asdict

    from personvlm.serving.bench_queue import QueueBenchError, median_by_workers, run

    s = settings_from(config, redis_url=redis_url)
    try:
        counts = [int(c) for c in workers.split(",") if c.strip()]
        w, h = (int(v) for v in image_size.lower().split("x"))
    except ValueError:
        raise typer.BadParameter("expected --workers like 1,2 and --image-size like 64x128") from None
    connect_redis(s.redis_url)
    try:
        results = run(s.redis_url, counts, events, model, max_batch, max_wait_ms, threads, (w, h), timeout,
                      repeats, progress=lambda msg: err.print(msg, highlight=False))
    except QueueBenchError as exc:
        raise fail(str(exc)) from None
    if as_json:
        json.dump({"results": [asdict(r) for r in results],
                   "median_events_per_s": median_by_workers(results)}, sys.stdout)
        sys.stdout.write("\n")
        return
    table = Table("workers", "events", "seconds", "events/s")
    for r in results:
        table.add_row(str(r.workers), str(r.events), f"{r.seconds:.2f}", f"{r.events_per_s:.1f}")
    out = Console()
    out.print(table)
    for n, rate in median_by_workers(results).items():
        out.print(f"median with {n} worker(s): {rate:.1f} events/s", highlight=False)
