"""``personvlm describe`` and ``personvlm bench``: the model from the command line.

Both load the model through ``Describer`` and decode images through ``personvlm.imageio`` so the
command line accepts and rejects exactly what the HTTP API and the workers do.
"""

from __future__ import annotations

import io
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from PIL import Image
from rich.console import Console
from rich.table import Table

from personvlm.describer import Describer, ModelNotFoundError, StageTimes, default_model_dir, schema_vocab
from personvlm.imageio import ImageError, load_image
from personvlm.models.checkpoint import CONFIG_FILE
from personvlm.models.config import ModelConfig
from personvlm.models.personvlm import PersonVLM

STYLE_HELP = "Caption style: compact (schema phrases) or natural (MSP60K-like sentences)."
BACKEND_HELP = ("What computes the visual tokens: onnx (the model directory's visual.onnx, see `personvlm model "
                "export-onnx`), torch, or auto (onnx when a graph matching the weights is there).")


def _load(model: Path | None, backend: str = "auto") -> Describer:
    try:
        return Describer.from_pretrained(model, backend=backend)
    except (ModelNotFoundError, ValueError) as exc:  # CheckpointError, ConfigError, VocabError, OnnxVisualError
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def describe(
    images: Annotated[list[Path], typer.Argument(help="Image files (JPEG, PNG, ...) of cropped people.")],
    style: Annotated[str, typer.Option(help=STYLE_HELP)] = "compact",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image (JSON Lines) on stdout.")] = False,
    model: Annotated[Path | None, typer.Option(help="Model directory (default: models/default or $PERSONVLM_MODEL).")] = None,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "auto",
) -> None:
    """Describe people in image crops: structured attributes with confidences and a caption.

    Every image is handled on its own: an unreadable file, a non-image or an empty image gets a
    clear error line (on stderr, and as {"image", "error"} with --json) while the other images are
    still described. The exit status is 1 when any image failed.
    """
    if style not in ("compact", "natural"):
        raise typer.BadParameter(f"expected compact or natural, got {style!r}", param_hint="--style")
    describer = _load(model, backend)
    decoded: list[tuple[Path, Image.Image]] = []
    failed = 0
    for path in images:
        try:
            decoded.append((path, load_image(path)))
        except ImageError as exc:
            failed += 1
            typer.echo(f"error: {exc}", err=True)
            if as_json:
                print(json.dumps({"image": str(path), "error": exc.reason}))
    results = describer.describe([img for _, img in decoded], style=style) if decoded else []
    for (path, _), desc in zip(decoded, results, strict=True):
        if as_json:
            print(json.dumps({"image": str(path), "model_version": describer.model_version, **desc.to_dict()},
                             ensure_ascii=False))
        else:
            print(f"{path}\t{desc.caption}")
    if failed:
        raise typer.Exit(1)


def _bench_images(n: int, seed: int = 0) -> list[bytes]:
    """JPEG bytes of person-crop-shaped images (48..256 px tall, about 1:2), blurred noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h = int(rng.integers(48, 257))
        w = max(16, int(h * rng.uniform(0.35, 0.6)))
        small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def bench(
    model: Annotated[Path | None, typer.Option(help="Model directory (default: models/default; a randomly "
                                                    "initialised default-config model when none exists).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per describe() call.")] = 1,
    style: Annotated[str, typer.Option(help=STYLE_HELP)] = "compact",
    n: Annotated[int, typer.Option(min=1, help="Timed describe() calls.")] = 50,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed calls first (allocator, caches).")] = 3,
    threads: Annotated[int, typer.Option(min=1, help="Intra-op threads (PyTorch and ONNX Runtime).")] = 2,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object of the figures as the last line.")] = False,
) -> None:
    """End-to-end latency of describe(): JPEG decode + preprocess, encode (+ heads), caption decode.

    Prints p50/p99 per call (one call = one batch), images/s, the mean per-stage split and the
    process's peak RSS. The images are synthetic JPEGs of crop-like sizes, so the figure does not
    depend on a data set being present.
    """
    console = Console(stderr=as_json)
    torch.set_num_threads(threads)
    directory = model if model is not None else default_model_dir()
    if model is not None or (directory / CONFIG_FILE).is_file():
        describer = _load(directory, backend)
        label = f"{directory} ({describer.model_version})"
    else:
        torch.manual_seed(0)
        vocab = schema_vocab()
        describer = Describer(PersonVLM(ModelConfig(vocab_size=len(vocab)), load_weights=False), vocab,
                              model_version="random-init-default")
        label = f"randomly initialised default config (no model at {directory})"
    describer.max_batch = max(describer.max_batch, batch_size)
    payloads = _bench_images(batch_size * (n + warmup))
    latencies: list[float] = []
    load_s = cpu_s = 0.0
    for call in range(n + warmup):
        if call == warmup:
            describer.times = StageTimes()
            load_s = 0.0
            cpu_s = -time.process_time()
        t0 = time.perf_counter()
        imgs = [load_image(b) for b in payloads[call * batch_size:(call + 1) * batch_size]]
        t1 = time.perf_counter()
        describer.describe(imgs, style=style)
        t2 = time.perf_counter()
        load_s += t1 - t0
        if call >= warmup:
            latencies.append((t2 - t0) * 1000)
    cpu_s += time.process_time()
    times = describer.times
    figures = {
        "model": label,
        "style": style,
        "batch_size": batch_size,
        "threads": threads,
        "backend": describer.backend,
        "caption_backend": describer.caption_backend,
        "calls": n,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(_percentile(latencies, 99), 2),
        "images_per_s": round(batch_size * n / (sum(latencies) / 1000), 1),
        "preprocess_ms": round((load_s + times.preprocess) / n * 1000, 2),
        "encode_ms": round(times.encode / n * 1000, 2),
        "decode_ms": round(times.decode / n * 1000, 2),
        # CPU seconds (all threads) per call: unlike wall time, barely moved by other processes
        # competing for the cores, so it tells what an idle machine would do.
        "cpu_ms": round(cpu_s / n * 1000, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    table = Table(title="personvlm bench (per describe() call)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, str(value))
    console.print(table)
    if as_json:
        sys.stdout.write(json.dumps(figures) + "\n")
