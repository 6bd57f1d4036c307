"""``personvlm demo`` (what ``make demo`` runs): render a few synthetic people, describe them
with the bundled model, print the descriptions and write ``demo_results.html``.

It is the evaluation pipeline on a small fresh sample, not a separate code path, so the demo
page shows exactly what ``personvlm evaluate`` would (marks against the renderer's ground
truth, both caption styles, plots). The sample is rendered into a temporary folder and the
page inlines everything, so nothing is left behind but the one HTML file.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from personvlm.describer import default_model_dir
from personvlm.evaluation.cli import MODEL_HELP, load_describer, metrics_table, progress_bar
from personvlm.evaluation.evaluate import Sample

# Far from the seeds training data is rendered with, so the demo shows unseen people.
DEMO_SEED = 909_090


def descriptions_table(samples: list[Sample]) -> Table:
    """One row per crop: the compact caption, the natural caption and the heads' hit rate."""
    table = Table(title="PersonVLM descriptions", show_lines=True)
    table.add_column("crop")
    table.add_column("compact caption (agrees with the structured output)")
    table.add_column("natural caption")
    table.add_column("attributes right", justify="right")
    for s in samples:
        known = s.truth.known() if s.truth is not None else {}
        right = sum(s.predicted.value(name) == value for name, value in known.items())
        table.add_row(s.image.name, s.predicted.caption, s.natural, f"{right}/{len(known)}" if known else "-")
    return table


def demo(
    n: Annotated[int, typer.Option("--n", min=1, max=500, help="How many synthetic people to render and describe.")] = 12,
    out: Annotated[Path, typer.Option("--out", help="Where to write the self-contained HTML page.")]
    = Path("demo_results.html"),
    model: Annotated[Path | None, typer.Option("--model", help=MODEL_HELP)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Renderer seed of the sample.")] = DEMO_SEED,
) -> None:
    """Render N synthetic pedestrians, describe them with the model, print a table of the
    descriptions and write a self-contained HTML page (crops, captions, right/wrong marks)."""
    from personvlm.data.msp60k import load_jsonl
    from personvlm.data.synth import SynthError, write_dataset
    from personvlm.evaluation.evaluate import compute_metrics, describe_records
    from personvlm.evaluation.report import write_report

    err = Console(stderr=True, soft_wrap=True)
    describer = load_describer(model, err)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="personvlm-demo-") as tmp:
        try:
            write_dataset(Path(tmp), n, seed=seed, workers=min(2, n))
        except SynthError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        records = load_jsonl(Path(tmp) / "data.jsonl")
        with progress_bar(err) as bar:
            task = bar.add_task("describing", total=len(records))
            samples, skipped = describe_records(describer, records, batch_size=describer.max_batch,
                                                on_batch=lambda k: bar.advance(task, k))
        metrics = compute_metrics(samples, describer.model_version, skipped)
        # the page inlines the crops, so it is written while the temporary folder still exists
        write_report(out, samples, metrics, title="PersonVLM demo", gallery=n,
                     subtitle=f"{n} synthetic crops rendered with seed {seed} (a demo sample, not the test set)",
                     model_dir=model or default_model_dir())
    console = Console()
    console.print(descriptions_table(samples))
    console.print(metrics_table(metrics))
    err.print(f"wrote {out} ({time.perf_counter() - start:.1f} s); open it in a browser")
