"""``personvlm train``: run (or resume) a training run described by a YAML config."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from personvlm.models.config import ConfigError


def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training config YAML (see configs/default.yaml).")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Run directory; it becomes the model directory (default: runs/<config name>).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run in --out from its last epoch checkpoint (after a kill or crash).")] = False,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", metavar="SECTION.KEY=VALUE",
        help="Override one config value (repeatable), read as YAML as if written in the file, so paths stay "
             "relative to the config's folder: --set train.epochs=3 --set data.train=../data/x/data.jsonl. "
             "Pass the same ones again with --resume.")] = None,
) -> None:
    """Train a PersonVLM. Writes config.json, model.safetensors, vocab.json (best val loss), MODEL_CARD.md,
    metrics.jsonl and curves.png into --out, and a resumable checkpoint every epoch.

    Multi-process: torchrun --nproc_per_node N $(which personvlm) train --config ... (gloo on CPU, NCCL on CUDA).
    """
    from personvlm.data.msp60k import DatasetError
    from personvlm.training.config import TrainConfig
    from personvlm.training.trainer import Trainer, TrainingError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = TrainConfig.load(config, overrides or ())
        result = Trainer(cfg, out or Path("runs") / config.stem, resume=resume).run()
    except (ConfigError, DatasetError, TrainingError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"done: {result['epochs']} epoch(s), {result['step']} steps, best {result['select_on']} {result['best']:.4f}")
