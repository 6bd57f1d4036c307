"""``personvlm data ...`` subcommands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)


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
