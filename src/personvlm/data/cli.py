"""``personvlm data ...`` subcommands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from personvlm.data.vocab_cli import vocab
from personvlm.evaluation.cli import real_eval, real_probe, render_probe

app = typer.Typer(no_args_is_help=True)
app.command("real-eval")(real_eval)
app.command("real-probe")(real_probe)
app.command("render-probe")(render_probe)
app.command("vocab")(vocab)


@app.command("validate")
def validate(
    jsonl: Annotated[Path, typer.Argument(help="MSP60K-format JSONL file to check.")],
    image_root: Annotated[Path | None, typer.Option(
        "--image-root", help="Folder the image paths are relative to (default: the JSONL's folder).")] = None,
    skip_missing: Annotated[bool, typer.Option(
        "--skip-missing", help="Count rows with missing images instead of failing on them.")] = False,
    show: Annotated[int, typer.Option("--show", help="How many problems to print (all are counted).")] = 20,
) -> None:
    """Check every row of an MSP60K-format JSONL (JSON, labels, images) and print a summary."""
    from personvlm.data.msp60k import DatasetError, scan_jsonl

    try:
        result = scan_jsonl(jsonl, image_root, skip_missing)
    except DatasetError as e:
        for line in e.errors[:show]:
            typer.echo(line, err=True)
        if len(e.errors) > show:
            typer.echo(f"... and {len(e.errors) - show} more", err=True)
        typer.echo(f"INVALID: {len(e.errors)} problem(s) in {jsonl}", err=True)
        raise typer.Exit(1) from None
    n = len(result.records)
    typer.echo(f"{jsonl}: {n} valid record(s), {len(result.skipped_missing)} skipped for missing images; "
               f"one_hot {result.n_with_one_hot}/{n}, attributes {result.n_with_attributes}/{n}, "
               f"compact {result.n_with_compact}/{n}")


@app.command("synth")
def synth(
    n: Annotated[int, typer.Option("--n", help="Number of crops to render.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: images/*.jpg, data.jsonl (MSP60K format).")],
    seed: Annotated[int, typer.Option("--seed", help="Run seed; the same seed gives the same bytes.")] = 0,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Rendering processes (default: all CPU cores); does not change the output.")] = None,
    sheet: Annotated[bool, typer.Option("--sheet", help="Also write sheet.png, a contact sheet of the first crops.")]
    = False,
    marginals: Annotated[Path | None, typer.Option(
        "--marginals", help="Label frequencies JSON (default: the bundled MSP60K-derived marginals.json).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing data.jsonl in --out.")] = False,
) -> None:
    """Render labelled synthetic pedestrian crops (attributes, one_hot, compact and natural captions)."""
    from personvlm.data.synth import Marginals, MarginalsError, SynthError, write_dataset

    try:
        table = Marginals.load(marginals)
        summary = write_dataset(out, n, seed, workers, table, sheet=sheet, overwrite=overwrite)
    except (SynthError, MarginalsError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {summary.n} crops to {summary.out} in {summary.seconds:.1f} s "
               f"({summary.images_per_second:.0f} images/s)" + (f"; sheet: {summary.sheet}" if summary.sheet else ""))


@app.command("synth-bench")
def synth_bench(
    n: Annotated[int, typer.Option("--n", help="Crops per repeat.")] = 300,
    workers: Annotated[int | None, typer.Option("--workers", help="Rendering processes (default: all cores).")] = None,
    repeats: Annotated[int, typer.Option("--repeats", help="Runs; the best and the median are reported.")] = 3,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line.")] = False,
) -> None:
    """Measure end-to-end synthesis speed (render, caption, JPEG, write) in images/s."""
    import json
    import os
    import resource
    import statistics
    import tempfile

    from personvlm.data.synth import write_dataset

    workers = workers or os.cpu_count() or 1
    rates, cpu_ms = [], []
    def cpu_seconds() -> float:
        # This process and its joined workers, in microseconds (os.times() counts 10 ms ticks, which
        # rounded a small run's CPU time to zero once rendering got fast).
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    for i in range(max(1, repeats)):
        before = cpu_seconds()
        with tempfile.TemporaryDirectory(prefix="personvlm-synth-bench-") as tmp:
            rates.append(write_dataset(Path(tmp), n, seed=i, workers=workers, progress=False).images_per_second)
        # CPU time, unlike wall time, is independent of other load on the box.
        cpu_ms.append((cpu_seconds() - before) / n * 1000)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu_per_image = statistics.median(cpu_ms)
    result = {"images_per_s_best": round(max(rates), 1), "images_per_s_median": round(statistics.median(rates), 1),
              "cpu_ms_per_image": round(cpu_per_image, 2),
              "images_per_s_if_idle": round(workers * 1000 / cpu_per_image, 1) if cpu_per_image > 0 else None,
              "n": n, "workers": workers, "repeats": len(rates), "cpu_count": os.cpu_count(), "loadavg_1m": load}
    typer.echo(f"synth: {result['images_per_s_median']:.0f} images/s median, {result['images_per_s_best']:.0f} best "
               f"({n} crops x {len(rates)} runs, {workers} workers, load average {load:.2f} on {os.cpu_count()} cores); "
               f"{cpu_per_image:.1f} CPU-ms per image = {result['images_per_s_if_idle']} images/s on {workers} idle cores")
    if json_out:
        typer.echo(json.dumps(result))


@app.command("parse-eval")
def parse_eval(
    jsonl: Annotated[Path, typer.Argument(help="MSP60K-format JSONL with 'answer' captions and 'one_hot' labels.")],
    rows: Annotated[str | None, typer.Option(
        "--rows", help="Score only rows START:END (Python slice): --rows 0:2000 for development, --rows=-1000: "
        "for the last 1000 held out.")]
    = None,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Also print one JSON object (mA, n, per-attribute scores) as the last line.")] = False,
) -> None:
    """Score the caption parser: parse(answer) -> one_hot vs the labels (per-attribute recalls, label-based mA).

    Images are not needed. Attributes with fewer than 10 positives are marked as noise.
    """
    import json

    from rich.console import Console
    from rich.progress import Progress

    from personvlm.data.msp60k import DatasetError
    from personvlm.data.parse_eval import ParseEvalError, evaluate_file, result_table

    console = Console()
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("parsing captions", total=None)
            result = evaluate_file(jsonl, rows, progress=lambda k: bar.advance(task, k),
                                   on_total=lambda n: bar.update(task, total=n))
    except DatasetError as e:
        for line in e.errors[:20]:
            typer.echo(line, err=True)
        typer.echo(f"INVALID: {len(e.errors)} problem(s) in {jsonl}", err=True)
        raise typer.Exit(1) from None
    except ParseEvalError as e:
        typer.echo(f"error: {jsonl}: {e}", err=True)
        raise typer.Exit(2) from None
    console.print(result_table(result, f"caption parser on {jsonl}" + (f" rows {rows}" if rows else "")))
    inst = result.instance
    console.print(f"label-based mA {result.ma:.4f} over {len(result.rows)} attributes, n={result.n}"
                  + (f" ({result.unlabelled} rows without one_hot skipped)" if result.unlabelled else "")
                  + f"; instance accuracy {inst['accuracy']:.3f}, F1 {inst['f1']:.3f}; "
                  f"noise (< 10 positives): {', '.join(result.rare) or 'none'}")
    if json_out:
        typer.echo(json.dumps(result.to_dict()))


@app.command("synth-marginals")
def synth_marginals(
    jsonl: Annotated[Path, typer.Argument(help="MSP60K-format JSONL with one_hot labels (e.g. val.jsonl).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the marginals JSON.")],
    floor: Annotated[float, typer.Option("--floor", help="Minimum probability of every value (learnability).")]
    = 0.03,
) -> None:
    """Derive the renderer's label frequencies from MSP60K one_hot labels (how marginals.json was made)."""
    import json

    from personvlm.data.synth import MarginalsError, marginals_from_msp60k
    from personvlm.data.synth.sampling import one_hots_from_jsonl

    try:
        rows = one_hots_from_jsonl(jsonl)
    except MarginalsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    out.write_text(json.dumps(marginals_from_msp60k(rows, floor), indent=1) + "\n", encoding="utf-8")
    typer.echo(f"wrote marginals from {len(rows)} rows to {out}")
