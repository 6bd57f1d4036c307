"""``personvlm evaluate`` and ``personvlm data real-eval``: the commands that print the figures
the README and model card quote, so every number has a command that reproduces it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from personvlm.describer import Describer, ModelNotFoundError, default_model_dir
from personvlm.evaluation.captions import METRIC_NAMES

if TYPE_CHECKING:
    from personvlm.evaluation.real_eval import LabelledCrop

MODEL_HELP = "Model directory (config.json, model.safetensors, vocab.json); default: the bundled models/default."


def load_describer(model: Path | None, console: Console) -> Describer:
    """Load a model directory or exit with status 2 and a message naming what is missing."""
    from personvlm.data.vocab import VocabError
    from personvlm.models.checkpoint import CheckpointError
    from personvlm.models.config import ConfigError

    try:
        return Describer.from_pretrained(model)
    except (ModelNotFoundError, CheckpointError, ConfigError, VocabError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def labels_or_exit(labels: Path, console: Console) -> list[LabelledCrop]:
    """The crops of a real-crop labels file, or exit with status 1 after printing every problem."""
    from personvlm.evaluation.real_eval import LabelsError, load_labels

    try:
        return load_labels(labels)
    except LabelsError as exc:
        for line in exc.errors:
            console.print(line, markup=False, highlight=False)
        raise typer.Exit(1) from None


def progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=False)


def attribute_value_problem(attribute: str, value: str) -> str | None:
    """What is wrong with a probe's ``--attribute`` / ``--value`` pair, or None."""
    from personvlm.schema import BY_NAME

    if attribute not in BY_NAME:
        return f"--attribute {attribute!r} is not a schema attribute; expected one of {sorted(BY_NAME)}"
    if value not in BY_NAME[attribute].values:
        return f"--value {value!r} is not a value of {attribute}; expected one of {BY_NAME[attribute].values}"
    return None


def _figure(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def metrics_table(metrics: dict[str, Any]) -> Table:
    """The headline figures, with the image-blind baseline beside the caption metrics."""
    table = Table(title=f"evaluation of {metrics.get('model_version', '')}")
    table.add_column("figure")
    table.add_column("model", justify="right")
    table.add_column("baseline", justify="right")
    for key in ("mA_heads", "mA_caption", "parse_rate"):
        table.add_row(key, _figure(metrics.get(key)), "")
    base = metrics.get("baseline", {})
    for key in METRIC_NAMES:
        table.add_row(key, _figure(metrics.get(key)), _figure(base.get(key)))
    table.add_row("crops (skipped)", f"{metrics['n']} ({metrics['skipped']})", "")
    return table


def evaluate(
    data: Annotated[Path, typer.Option("--data", help="MSP60K-format JSONL to evaluate on (a split never used in training).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder for metrics.json and report.html.")],
    model: Annotated[Path | None, typer.Option("--model", help=MODEL_HELP)] = None,
    image_root: Annotated[Path | None, typer.Option(
        "--image-root", help="Folder the JSONL's image paths are relative to (default: the JSONL's folder).")] = None,
    skip_missing: Annotated[bool, typer.Option(
        "--skip-missing", help="Evaluate the rows whose images exist and decode; report how many were skipped.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per model call.")] = 32,
    gallery: Annotated[int, typer.Option("--gallery", min=0, help="How many crops the report's gallery shows.")] = 48,
) -> None:
    """Evaluate a model on a labelled JSONL: attribute metrics from the heads and from the parsed
    compact caption, parse rate, BLEU/ROUGE-L/CIDEr-D of natural captions against the `answer`
    references with an image-blind baseline, written to OUT/metrics.json and a self-contained
    OUT/report.html."""
    from personvlm.data.msp60k import DatasetError, scan_jsonl
    from personvlm.evaluation.evaluate import EvaluationError, compute_metrics, describe_records
    from personvlm.evaluation.report import write_report

    console = Console(stderr=True, soft_wrap=True)
    try:
        loaded = scan_jsonl(data, image_root, skip_missing)
    except DatasetError as exc:
        for line in exc.errors[:20]:
            console.print(line, markup=False, highlight=False)
        if len(exc.errors) > 20:
            console.print(f"... and {len(exc.errors) - 20} more")
        console.print(f"[red]error:[/red] {len(exc.errors)} problem(s) in {data}"
                      + ("" if skip_missing else " (--skip-missing evaluates the rows whose images exist)"))
        raise typer.Exit(1) from None
    describer = load_describer(model, console)
    records = loaded.records
    with progress_bar(console) as bar:
        task = bar.add_task("describing", total=len(records))
        try:
            samples, unreadable = describe_records(describer, records, batch_size, skip_missing,
                                                   on_batch=lambda n: bar.advance(task, n))
        except EvaluationError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
    skipped = loaded.skipped_missing + unreadable
    if skipped:
        console.print(f"[yellow]skipped {len(skipped)} row(s)[/yellow] (missing or unreadable images), first: {skipped[0]}")
    try:
        metrics = compute_metrics(samples, describer.model_version, skipped)
    except EvaluationError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    metrics["data"] = str(data)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_report(out / "report.html", samples, metrics, subtitle=f"data: {data}",
                 model_dir=model or default_model_dir(), gallery=gallery)
    Console().print(metrics_table(metrics))
    console.print(f"wrote {out / 'metrics.json'} and {out / 'report.html'}")


def real_eval(
    labels: Annotated[Path, typer.Option("--labels", help="Real-crop labels JSONL (image paths relative to it).")],
    model: Annotated[Path | None, typer.Option("--model", help=MODEL_HELP)] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help='Also print one JSON line last: {field: accuracy, ..., "coverage": {...}, "n": N}.')] = False,
) -> None:
    """Describe hand-labelled real surveillance crops and score each labelled field (unknown
    labels skipped; an unknown answer counts as not correct; coverage = share answered)."""
    from personvlm.evaluation.real_eval import evaluate_real, summary_json
    from personvlm.imageio import ImageError

    console = Console(stderr=True, soft_wrap=True)
    crops = labels_or_exit(labels, console)
    describer = load_describer(model, console)
    try:
        scores, _ = evaluate_real(lambda images: describer.describe(images, style="compact"), crops)
    except ImageError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table(title=f"real crops: {len(crops)} from {labels.name}, model {describer.model_version}")
    for column in ("field", "accuracy", "coverage", "labelled"):
        table.add_column(column, justify="left" if column == "field" else "right")
    for s in scores:
        table.add_row(s.field, _figure(s.accuracy), _figure(s.coverage), str(s.labelled))
    Console().print(table)
    if as_json:
        print(json.dumps(summary_json(scores, len(crops))))


def real_probe(
    labels: Annotated[Path, typer.Option("--labels", help="Real-crop labels JSONL (image paths relative to it).")],
    attribute: Annotated[str, typer.Option("--attribute", help="Schema attribute whose head is probed, e.g. gender.")],
    value: Annotated[str, typer.Option("--value", help="The value whose probability is reported, e.g. female.")],
    group_by: Annotated[str | None, typer.Option(
        "--group-by", help="Labels field that splits the crops into groups (default: --attribute, "
        "when it is a labels field), or person_id for one group per person. Crops labelled unknown "
        "there are left out.")] = None,
    bands: Annotated[int, typer.Option("--bands", min=1, max=20, help="How many equal horizontal bands to mask.")] = 5,
    model: Annotated[Path | None, typer.Option("--model", help=MODEL_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Also print one JSON line last with every figure.")] = False,
) -> None:
    """Where in the crop a head's leaning comes from: the mean probability of --value per group
    of real crops, as they are and with each horizontal band masked by the crop's mean colour.

    A band whose masking moves the probability most holds the evidence the head uses: for renderer
    work on a head that does not transfer to real pixels (see personvlm.evaluation.occlusion)."""
    from personvlm.evaluation.occlusion import band_effects, equal_bands
    from personvlm.evaluation.real_eval import FIELDS, PERSON_FIELD
    from personvlm.imageio import ImageError, load_image
    from personvlm.schema import BY_NAME, UNKNOWN

    console = Console(stderr=True, soft_wrap=True)
    field = group_by or attribute
    problems = [problem] if (problem := attribute_value_problem(attribute, value)) else []
    if field not in FIELDS and field != PERSON_FIELD:
        problems.append(f"--group-by {field!r} is not a labels field; expected one of "
                        f"{sorted([*FIELDS, PERSON_FIELD])}")
    for problem in problems:
        console.print(f"[red]error:[/red] {problem}", highlight=False)
    if problems:
        raise typer.Exit(2)
    groups: dict[str, list] = {}
    try:
        for crop in labels_or_exit(labels, console):
            if (key := crop.group(field)) != UNKNOWN:
                groups.setdefault(key, []).append(load_image(crop.image))
    except ImageError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if not groups:
        console.print(f"[red]error:[/red] no crop in {labels} has a known {field} label")
        raise typer.Exit(1)
    describer = load_describer(model, console)
    index = BY_NAME[attribute].values.index(value)
    names = sorted(groups)
    rows = band_effects(lambda images: describer.head_probabilities(images, attribute)[:, index],
                        {name: groups[name] for name in names}, equal_bands(bands))
    table = Table(title=f"p({attribute}={value}) by {field}, model {describer.model_version}")
    table.add_column("masked band (of the height)")
    for name in names:
        table.add_column(f"{name} (n={len(groups[name])})", justify="right")  # the title names the field
    for row in rows:
        where = "none" if row.band is None else f"{row.band[0]:.0%}-{row.band[1]:.0%}"
        table.add_row(where, *(f"{row.means[name]:.3f}" for name in names))
    Console().print(table)
    if as_json:
        print(json.dumps({"attribute": attribute, "value": value, "group_by": field,
                          "groups": {name: len(groups[name]) for name in names},
                          "rows": [{"band": list(row.band) if row.band else None, "means": row.means} for row in rows]}))


def render_probe(
    attribute: Annotated[str, typer.Option("--attribute", help="Schema attribute whose head is probed, e.g. gender.")],
    value: Annotated[str, typer.Option("--value", help="The value whose probability is reported, e.g. female.")],
    pins: Annotated[list[str], typer.Option(
        "--pin", help="NAME=VALUE fixed in every render (repeatable), in the renderer's names, e.g. gender=female, "
        "hair_length=short, headwear=none, bags=backpack+handbag; the rest is sampled.")],
    models: Annotated[list[Path] | None, typer.Option(
        "--model", help="Model directory (repeatable: each is scored on the same renders); default: the bundled one.")] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="How many renders.")] = 120,
    seed: Annotated[int, typer.Option("--seed", help="Render seed; the same seed gives the same crops.")] = 901,
    as_json: Annotated[bool, typer.Option("--json", help="Also print one JSON line last with every figure.")] = False,
) -> None:
    """Mean probability of --value on renders with the --pin values fixed: what a head leans on in
    the renderer's pixels, to set beside `personvlm data real-probe` on real crops (e.g. p(female)
    of women and of men with short hair, or of a garment drawn two ways)."""
    from personvlm.data.synth.pins import parse_pins, pinned_renders
    from personvlm.schema import BY_NAME

    console = Console(stderr=True, soft_wrap=True)
    try:
        if problem := attribute_value_problem(attribute, value):
            raise ValueError(problem)
        pinned = parse_pins(pins)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    describers = [load_describer(m, console) for m in (models or [None])]
    images = pinned_renders(pinned, n, seed)
    index = BY_NAME[attribute].values.index(value)
    means = {d.model_version: float(d.head_probabilities(images, attribute)[:, index].mean()) for d in describers}
    table = Table(title=f"mean p({attribute}={value}) on {n} renders (seed {seed}) with {' '.join(pins)}")
    table.add_column("model")
    table.add_column(f"p({value})", justify="right")
    for version, mean in means.items():
        table.add_row(version, f"{mean:.3f}")
    Console().print(table)
    if as_json:
        print(json.dumps({"attribute": attribute, "value": value, "pins": pinned, "n": n, "seed": seed, "means": means}))
