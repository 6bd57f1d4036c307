"""``personvlm model ...``: inspect model configurations and checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from personvlm.models.checkpoint import CONFIG_FILE
from personvlm.models.config import MAX_PARAMETERS, ConfigError, ModelConfig
from personvlm.models.personvlm import parameter_report

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
