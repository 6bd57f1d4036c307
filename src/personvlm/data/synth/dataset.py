"""Writing a synthetic dataset: many crops rendered in parallel into MSP60K-format JSONL.

Each image depends only on (seed, index), so the bytes are identical whatever the number of
workers; the parent writes results in index order. The JSONL is written to a temporary name
and renamed at the end, so an interrupted run never leaves a truncated ``data.jsonl`` that
looks complete.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from personvlm.data.captions import natural_caption
from personvlm.data.synth.render import caption_rng, render_person
from personvlm.data.synth.sampling import Marginals
from personvlm.data.synth.scene import warm_caches
from personvlm.data.synth.sheet import sheet_label, write_sheet
from personvlm.schema import to_compact, to_one_hot

SHEET_SIZE = 60


class SynthError(ValueError):
    """Bad arguments for a synthetic run (the message says which and what was expected)."""


@dataclass(frozen=True)
class SynthSummary:
    out: Path
    n: int
    seconds: float
    sheet: Path | None

    @property
    def images_per_second(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("inf")


# Per-process state of the worker pool, set once by ``_init_worker``.
_WORKER: dict[str, Any] = {}


def _init_worker(seed: int, marginals: Marginals, out: Path) -> None:
    _WORKER.update(seed=seed, marginals=marginals, out=out)


def render_row(index: int, seed: int, marginals: Marginals) -> tuple[bytes, dict[str, Any]]:
    """Render image ``index`` of run ``seed``: its JPEG bytes and its JSONL row (the natural
    caption mentions only visible attributes and the rendered scene: quality, light, background)."""
    r = render_person(seed=seed, index=index, marginals=marginals)
    desc = r.description
    answer = natural_caption(desc, caption_rng(seed, index), r.scene)
    row = {
        "image": f"images/{index:06d}.jpg",
        "answer": answer,
        "one_hot": to_one_hot(desc),
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in desc.values().items()},
        "compact": to_compact(desc),
        "scene": r.scene,
    }
    return r.jpeg(), row


def _work(index: int) -> tuple[int, dict[str, Any]]:
    """Render and write one image in the worker (file writes are as slow as the drawing on some
    file systems, so they run in parallel too); only the row goes back to the parent."""
    jpeg, row = render_row(index, _WORKER["seed"], _WORKER["marginals"])
    (_WORKER["out"] / row["image"]).write_bytes(jpeg)
    return index, row


def _results(n: int, seed: int, marginals: Marginals, workers: int, out: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if workers <= 1:
        _init_worker(seed, marginals, out)
        for i in range(n):
            yield _work(i)
        return
    warm_caches()  # forked workers inherit the noise banks
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ctx.Pool(workers, initializer=_init_worker, initargs=(seed, marginals, out)) as pool:
        yield from pool.imap(_work, range(n), chunksize=max(1, min(32, n // (workers * 8) or 1)))


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse an output folder we cannot write, or one holding a dataset we would overwrite."""
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "images").mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise SynthError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    if (out / "data.jsonl").exists() and not overwrite:
        raise SynthError(f"--out {out}: already holds data.jsonl; pass --overwrite to replace it or choose another "
                         "folder")


def _remove_stale_images(out: Path, n: int) -> None:
    """On --overwrite, drop images a larger earlier run left behind (ours only: NNNNNN.jpg)."""
    for path in (out / "images").glob("[0-9][0-9][0-9][0-9][0-9][0-9].jpg"):
        if int(path.stem) >= n:
            path.unlink()


def write_dataset(out: Path, n: int, seed: int = 0, workers: int | None = None, marginals: Marginals | None = None,
                  sheet: bool = False, overwrite: bool = False, progress: bool = True) -> SynthSummary:
    """Render ``n`` crops into ``out/images/*.jpg`` and ``out/data.jsonl`` (MSP60K format plus
    ``attributes``, ``compact`` and ``scene``); with ``sheet`` also ``out/sheet.png``."""
    if n <= 0:
        raise SynthError(f"--n must be a positive number of images, got {n}")
    if workers is None:
        workers = os.cpu_count() or 1
    if workers <= 0:
        raise SynthError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    check_out_dir(out, overwrite)
    _remove_stale_images(out, n)
    marginals = marginals or Marginals.load()
    start = time.perf_counter()
    tmp = out / ".data.jsonl.partial"
    thumbs: list[tuple[str, str]] = []
    columns = (TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with tmp.open("w", encoding="utf-8") as fh, Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task("synth", total=n)
        for index, row in _results(n, seed, marginals, min(workers, n), out):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            if sheet and index < SHEET_SIZE:
                thumbs.append((row["image"], sheet_label(row["attributes"])))
            bar.advance(task)
    tmp.replace(out / "data.jsonl")
    sheet_path = None
    if sheet:
        sheet_path = write_sheet([Image.open(out / image) for image, _ in thumbs], out / "sheet.png",
                                 [label for _, label in thumbs])
    return SynthSummary(out, n, time.perf_counter() - start, sheet_path)
