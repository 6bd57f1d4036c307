"""``personvlm model ...``: inspect model configurations and checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from personvlm.models.checkpoint import CONFIG_FILE, CheckpointError, load_checkpoint, save_checkpoint
from personvlm.models.config import MAX_PARAMETERS, ConfigError, ModelConfig
from personvlm.models.personvlm import parameter_report

if TYPE_CHECKING:
    from personvlm.data.msp60k import Record
    from personvlm.describer import Describer
    from personvlm.models.answer_rules import PerAttributeRule

app = typer.Typer(no_args_is_help=True, help="Inspect model configurations and checkpoints.")


def load_model_config(path: Path) -> ModelConfig:
    """A ModelConfig file (JSON/YAML), or a training YAML whose ``model:`` section is one."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML/JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        return ModelConfig.from_dict(data["model"], source=f"{path}: model")
    return ModelConfig.from_dict(data, source=str(path))


@app.command()
def info(
    config: Annotated[Path | None, typer.Option(help="ModelConfig JSON/YAML, or a training YAML with a model: section.")] = None,
    model: Annotated[Path | None, typer.Option(help="A model directory (reads its config.json).")] = None,
) -> None:
    """Print parameters per component (total and trainable) and refuse configurations over 100M.

    With neither option, the default configuration is shown. Counting happens on the meta device,
    so even an oversized configuration is reported without allocating it.
    """
    console = Console()
    if config is not None and model is not None:
        raise typer.BadParameter("give --config or --model, not both")
    try:
        path = model / CONFIG_FILE if model is not None else config
        cfg = load_model_config(path) if path is not None else ModelConfig()
        report = parameter_report(cfg)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    table = Table(title=f"PersonVLM parameters (encoder {cfg.encoder}, width {cfg.width}, {cfg.layers} layers, "
                        f"vocab {cfg.vocab_size})")
    table.add_column("component")
    table.add_column("total", justify="right")
    table.add_column("trainable", justify="right")
    for name, (total, trainable) in report.items():
        table.add_row(name, f"{total:,}", f"{trainable:,}")
    total = sum(t for t, _ in report.values())
    table.add_row("[bold]all[/bold]", f"[bold]{total:,}[/bold]", f"[bold]{sum(t for _, t in report.values()):,}[/bold]")
    console.print(table)
    if total > MAX_PARAMETERS:
        console.print(f"[red]error:[/red] {total / 1e6:.1f}M parameters is over the {MAX_PARAMETERS / 1e6:.0f}M limit; "
                      "this configuration is refused")
        raise typer.Exit(1)


@contextmanager
def _labelled_rows_or_exit(model: Path, data: Path, image_root: Path | None,
                           limit: int | None) -> Iterator[tuple[Describer, list[Record]]]:
    """The model and the first ``limit`` rows of a labelled JSONL for a command that scores the
    model on them; a bad model, a bad file, or a row the body cannot use (``ValueError``) ends
    the command with status 1 and a message naming the problem."""
    from personvlm.data.msp60k import DatasetError, load_jsonl
    from personvlm.describer import Describer

    try:
        yield Describer.from_pretrained(model), load_jsonl(data, image_root)[:limit]
    except DatasetError as exc:
        for line in exc.errors[:20]:
            typer.echo(line, err=True)
        typer.echo(f"error: {len(exc.errors)} problem(s) in {data}", err=True)
        raise typer.Exit(1) from None
    except (ValueError, FileNotFoundError, ConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def calibrate(
    model: Annotated[Path, typer.Argument(help="Model directory; its config.json gets the thresholds.")],
    data: Annotated[Path, typer.Argument(help="Labelled validation JSONL (MSP60K format, 'attributes' or 'one_hot').")],
    image_root: Annotated[Path | None, typer.Option(help="Folder image paths are relative to (default: the JSONL's).")] = None,
    target_accuracy: Annotated[float, typer.Option(min=0.0, max=1.0, help="Accuracy the answered rows must reach.")] = 0.9,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N rows.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the thresholds without writing config.json.")] = False,
    prior_correction: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="For a model trained with head_balance: how much of the re-weighting to undo "
        "when answering (0 = balanced answers, what mA scores; 1 = answers by the training priors). Stored "
        "with the thresholds, which depend on it; clears per-attribute overrides. Default: keep the model's.")] = None,
    max_accuracy_drop: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Also choose each attribute's prior_correction (0, 0.25, 0.5, 0.75 or 1) on these "
        "rows: the one with the highest label mA whose accuracy is at most this far below the accuracy at the "
        "model's (or --prior-correction's) rule. Stored as prior_corrections. Default: none is chosen; the "
        "model's own rule, per-attribute overrides included, is kept unless --prior-correction is given.")] = None,
) -> None:
    """Calibrate per-attribute 'unknown' thresholds on labelled validation data (never the test split).

    For each attribute, the lowest head confidence at which the answers given reach
    --target-accuracy; below it the model says 'unknown'. Prints accuracy, threshold, coverage (share
    answered) and accuracy on the answered rows, then stores the thresholds in MODEL/config.json.
    Raising the target trades coverage for precision: scorers that count 'unknown' as wrong prefer
    a lower target. With --max-accuracy-drop, each attribute's prior_correction is chosen on the same
    rows first (a table shows each choice), then the thresholds are fitted under that rule.
    """
    from personvlm.models.calibration import calibrate as run_calibration

    console = Console()
    with _labelled_rows_or_exit(model, data, image_root, limit) as (describer, records):
        if prior_correction is not None:
            describer.model.set_prior_correction(prior_correction)
        if max_accuracy_drop is not None:
            if describer.model.config.head_balance == 0:
                raise ConfigError("--max-accuracy-drop: this model was trained without head_balance, so it has no "
                                  "prior correction to choose per attribute")
            rule = _choose_rule(describer, records, max_accuracy_drop)
            console.print(_rule_table(rule, max_accuracy_drop))
            describer.model.set_prior_correction(rule.reference, rule.corrections)
        result = run_calibration(describer, records, target_accuracy)
    table = Table(title=f"unknown thresholds for {model} on {len(records)} rows of {data} (target {target_accuracy})")
    for column in ("attribute", "n", "accuracy", "threshold", "coverage", "answered accuracy"):
        table.add_column(column, justify="left" if column == "attribute" else "right")
    for name, cal in result.items():
        table.add_row(name, str(cal.n), f"{cal.accuracy:.3f}", f"{cal.threshold:.3f}", f"{cal.coverage:.3f}",
                      f"{cal.answered_accuracy:.3f}")
    console.print(table)
    if not dry_run:
        config = describer.model.config
        config.unknown_thresholds = {name: cal.threshold for name, cal in result.items() if cal.threshold > 0}
        config.save(model / CONFIG_FILE)
        console.print(f"wrote {len(config.unknown_thresholds)} threshold(s) and {len(config.prior_corrections)} "
                      f"per-attribute correction(s) to {model / CONFIG_FILE}")


def _choose_rule(describer: Describer, records: list[Record], max_accuracy_drop: float) -> PerAttributeRule:
    """``choose_per_attribute`` against the model's current rule, with a progress bar."""
    from personvlm.evaluation.cli import progress_bar
    from personvlm.models.answer_rules import choose_per_attribute

    with progress_bar(Console(stderr=True)) as bar:
        task = bar.add_task("encoding", total=len(records))
        return choose_per_attribute(describer, records, max_accuracy_drop,
                                    reference=describer.model.config.prior_correction,
                                    on_batch=lambda n: bar.advance(task, n))


def _rule_table(rule: PerAttributeRule, max_accuracy_drop: float) -> Table:
    """The chosen per-attribute rule beside the reference rule, attribute by attribute."""
    ref, new = rule.reference_score, rule.score
    table = Table(title=f"prior_correction per attribute (accuracy at most {max_accuracy_drop:g} below the rule "
                        f"{rule.reference:g}): mA {ref.mA:.4f} -> {new.mA:.4f}, mean accuracy "
                        f"{ref.mean_accuracy:.4f} -> {new.mean_accuracy:.4f} (no thresholds)")
    for column in ("attribute", "correction", "accuracy", "label mA (sum)"):
        table.add_column(column, justify="left" if column == "attribute" else "right")
    for name, cal in rule.attributes.items():
        table.add_row(name, f"{cal.correction:g}", f"{cal.reference_accuracy:.3f} -> {cal.accuracy:.3f}",
                      f"{cal.reference_label_mA:.3f} -> {cal.label_mA:.3f}")
    return table


@app.command("answer-rules")
def answer_rules(
    model: Annotated[Path, typer.Argument(help="Model directory (trained with head_balance for the rules to differ).")],
    data: Annotated[Path, typer.Argument(help="Labelled JSONL (MSP60K format, 'attributes' or 'one_hot').")],
    corrections: Annotated[str, typer.Option(
        "--prior-corrections", help="Comma-separated prior_correction values to score, each in [0, 1].")] = "0,0.25,0.5,1",
    image_root: Annotated[Path | None, typer.Option(help="Folder image paths are relative to (default: the JSONL's).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N rows.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Also print the figures as one JSON line at the end.")] = False,
) -> None:
    """Score each answer rule on labelled data: head mA and mean attribute accuracy per
    prior_correction, no 'unknown' thresholds, from one encoding of the images.

    Balanced answers (0) raise label-based mA; answers by the training priors (1) raise accuracy.
    Nothing is written: set the chosen rule with `personvlm model calibrate --prior-correction X`
    (with --max-accuracy-drop D, a correction per attribute), which fits that rule's thresholds too.
    """
    import json

    from personvlm.evaluation.cli import progress_bar
    from personvlm.models.answer_rules import score_rules

    try:
        values = [float(v) for v in corrections.split(",") if v.strip()]
    except ValueError:
        typer.echo(f"error: --prior-corrections {corrections!r}: expected numbers such as 0,0.5,1", err=True)
        raise typer.Exit(2) from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        typer.echo(f"error: --prior-corrections {corrections!r}: each value must be in [0, 1]", err=True)
        raise typer.Exit(2)
    console = Console()
    with (_labelled_rows_or_exit(model, data, image_root, limit) as (describer, records),
          progress_bar(Console(stderr=True)) as bar):
        task = bar.add_task("encoding", total=len(records))
        scores = score_rules(describer, records, values, on_batch=lambda n: bar.advance(task, n))
    table = Table(title=f"answer rules of {model} on {len(records)} rows of {data} (no thresholds)")
    for column in ("prior_correction", "head mA", "mean accuracy"):
        table.add_column(column, justify="right")
    for score in scores:
        table.add_row(f"{score.prior_correction:g}", f"{score.mA:.4f}", f"{score.mean_accuracy:.4f}")
    console.print(table)
    if as_json:
        typer.echo(json.dumps({"n": len(records), "rules": [s.to_dict() for s in scores]}))


@app.command()
def export(
    source: Annotated[Path, typer.Argument(help="Trained model directory (e.g. runs/default).")],
    target: Annotated[Path, typer.Argument(help="Directory to write (e.g. models/default).")],
    half: Annotated[bool, typer.Option("--half/--full", help="Store large weights as float16.")] = True,
) -> None:
    """Copy a trained model into a shippable directory: weights (float16 by default, about half the
    size), config, vocabulary, and the run's MODEL_CARD.md, metrics.jsonl and curves.png when present.
    Loading casts the weights back to float32."""
    import shutil

    try:
        model, vocab = load_checkpoint(source)
    except CheckpointError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    save_checkpoint(target, model, vocab, half=half)
    for name in ("MODEL_CARD.md", "metrics.jsonl", "curves.png"):
        if (source / name).is_file() and source.resolve() != target.resolve():
            shutil.copy2(source / name, target / name)
    size = sum(f.stat().st_size for f in target.iterdir() if f.is_file())
    typer.echo(f"wrote {target} ({size / 1e6:.1f} MB)")


@app.command("export-onnx")
def export_onnx(
    model: Annotated[Path, typer.Argument(help="Model directory; the graphs are written into it.")],
    tolerance: Annotated[float, typer.Option(min=0.0, help="Largest absolute difference from PyTorch's visual "
                                                           "tokens, head logits and decoder logits and keys/values "
                                                           "accepted on a check batch.")] = 1e-3,
) -> None:
    """Write MODEL's ONNX graphs: visual.onnx (encoder, visual tokens, attribute heads) and the
    caption decoder's decoder_prefill.onnx and decoder_step.onnx.

    A Describer on the CPU then computes them with ONNX Runtime (visual: 1.5-2x PyTorch's speed on 2
    cores; natural captions: 1.7-1.9x at batch 1, README); the answer rule (prior correction,
    thresholds) stays in PyTorch, so calibration does not touch the graphs. The graphs record the digest of
    model.safetensors: after retraining or re-exporting the weights old graphs are ignored (with a
    warning) until this command is run again. The new graphs are checked against PyTorch on random
    inputs before they replace the old ones.
    """
    from personvlm.describer import Describer
    from personvlm.models import onnx_decoder, onnx_visual
    from personvlm.models.checkpoint import weights_digest

    try:
        describer = Describer.from_pretrained(model, backend="torch")
    except (CheckpointError, ConfigError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    targets = [model / name for name in (onnx_visual.ONNX_FILE, onnx_decoder.PREFILL_FILE, onnx_decoder.STEP_FILE)]
    staged = [target.with_name(f".{target.name}.tmp") for target in targets]
    typer.echo(f"exporting {model} to ONNX (tracing the encoder and the decoder takes ~1 min on 2 cores)", err=True)
    digest, max_len = weights_digest(model), describer.config.max_len

    def discard_staged() -> None:
        for path in staged:
            path.unlink(missing_ok=True)

    try:  # writing each graph and reading it back: a failure leaves no staging file behind
        onnx_visual.export(describer.model, staged[0], digest)
        difference = onnx_visual.max_difference(onnx_visual.OnnxVisual(staged[0]), describer.model)
        if difference <= tolerance:
            onnx_decoder.export(describer.model, staged[1], staged[2], digest)
            decoder = onnx_decoder.OnnxDecoder(onnx_decoder.DecoderGraph(staged[1]), onnx_decoder.DecoderGraph(staged[2]),
                                               max_len)
            difference = max(difference, onnx_decoder.max_difference(decoder, describer.model))
    except Exception as exc:  # the exporter raises many types; say what failed instead of a traceback
        discard_staged()
        typer.echo(f"error: cannot export {model} to ONNX: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    if difference > tolerance:
        discard_staged()
        typer.echo(f"error: the ONNX graphs differ from PyTorch by {difference:.2e} (> {tolerance:g}); "
                   f"the graphs in {model} left as they were", err=True)
        raise typer.Exit(1)
    for path, target in zip(staged, targets, strict=True):
        path.replace(target)
    size = sum(target.stat().st_size for target in targets)
    typer.echo(f"wrote {', '.join(t.name for t in targets)} in {model} ({size / 1e6:.1f} MB; "
               f"max difference from PyTorch {difference:.1e})")


@app.command("refit-heads")
def refit_heads(
    source: Annotated[Path, typer.Argument(help="Trained model directory whose heads are refitted (e.g. models/default).")],
    data: Annotated[list[Path], typer.Option("--data", help="Labelled training JSONL (MSP60K format) for the heads; "
                                             "repeat it to train on several.")],
    val: Annotated[Path, typer.Option("--val", help="Labelled validation JSONL: model selection, early stopping.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New model directory to write (e.g. runs/refit).")],
    image_root: Annotated[Path | None, typer.Option(help="Folder image paths are relative to (default: each JSONL's).")] = None,
    layers: Annotated[int, typer.Option(min=0, help="Query blocks after the heads' pool (0: the single pool, as trained).")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training tokens.")] = 5,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    lr: Annotated[float, typer.Option(min=0.0, help="AdamW peak learning rate (warmup, then cosine).")] = 5e-4,
    patience: Annotated[int, typer.Option(min=1, help="Stop after this many epochs without a lower val loss.")] = 2,
    flip: Annotated[bool, typer.Option("--flip/--no-flip", help="Also train on the mirrored images.")] = True,
    cache_dir: Annotated[Path, typer.Option(help="Where the visual tokens are cached (reused by later refits).")] = Path(
        "cache/features"),
    seed: Annotated[int, typer.Option(help="Seed of the new blocks' weights and the sample order.")] = 0,
) -> None:
    """Train new attribute heads on a model's visual tokens; everything else stays the model's.

    The tokens of every image (and of its mirror image) are computed once, cached in --cache-dir and
    held in memory (64 KB per image), then only the heads train: minutes instead of hours; the
    caption decoder is unchanged. OUT gets config.json, model.safetensors, vocab.json, MODEL_CARD.md,
    metrics.jsonl and curves.png (the epoch with the lowest val loss); then run
    `personvlm model calibrate OUT VAL` (thresholds are not carried over) and, for the fast CPU path,
    `personvlm model export-onnx OUT`.
    """
    from personvlm.data.msp60k import DatasetError, load_jsonl
    from personvlm.training.head_refit import RefitConfig
    from personvlm.training.head_refit import refit_heads as run_refit
    from personvlm.training.trainer import TrainingError, invoked_command

    cfg = RefitConfig(layers=layers, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, flip=flip,
                      seed=seed)
    try:
        train_records = [record for path in data for record in load_jsonl(path, image_root)]
        val_records = load_jsonl(val, image_root)
        best = run_refit(source, train_records, val_records, out, cfg, invoked_command(), cache_dir)
    except DatasetError as exc:
        for line in exc.errors[:20]:
            typer.echo(line, err=True)
        typer.echo(f"error: {len(exc.errors)} problem(s) in the data", err=True)
        raise typer.Exit(1) from None
    except (TrainingError, CheckpointError, ConfigError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {out}: best epoch {best['epoch']}, val loss {best['val_loss']:.4f}, "
               f"val head mA {best['val_head_ma']:.4f}; next: personvlm model calibrate {out} {val}")
