"""``personvlm data vocab``: build a caption vocabulary and report how much of other captions it covers.

Only the caption text is read (``answer`` and ``compact``), never the images, so the OOV rate of
the real MSP60K captions can be checked on a machine that does not have their pictures.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from personvlm.data.vocab import Vocab, tokenize

TEXT_FIELDS = ("answer", "compact")


def caption_texts(path: Path) -> list[str]:
    """Every caption string of a JSONL file; raises ValueError listing each bad line as ``file:line: what``."""
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    texts: list[str] = []
    errors: list[str] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"{path}:{lineno}: not valid JSON ({exc.msg})")
                continue
            if not isinstance(row, dict):
                errors.append(f"{path}:{lineno}: expected a JSON object with 'answer' and/or 'compact'")
                continue
            found = [row[k] for k in TEXT_FIELDS if isinstance(row.get(k), str)]
            if not found:
                errors.append(f"{path}:{lineno}: no caption text (expected a string 'answer' or 'compact')")
            texts += found
    if errors:
        raise ValueError("\n".join(errors))
    return texts


def vocab(
    train: Annotated[list[Path], typer.Argument(help="JSONL files whose captions build the vocabulary.")],
    check: Annotated[list[Path] | None, typer.Option(help="JSONL file(s) to report the OOV rate on (repeatable).")] = None,
    min_freq: Annotated[int, typer.Option(min=1, help="Keep words seen at least this often.")] = 1,
    max_size: Annotated[int | None, typer.Option(min=7, help="Cap on the vocabulary size (special tokens included).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the vocabulary here (vocab.json format).")] = None,
    show: Annotated[int, typer.Option(help="How many of the most frequent OOV words to list.")] = 15,
) -> None:
    """Build a word-level caption vocabulary and print its size and the OOV rate of each file."""
    console = Console()
    try:
        built = Vocab.build([t for path in train for t in caption_texts(path)], min_freq, max_size)
        checks = {path: caption_texts(path) for path in [*train, *(check or [])]}
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    table = Table(title=f"vocabulary: {len(built)} tokens (min_freq {min_freq}, max_size {max_size})")
    for column in ("file", "captions", "OOV rate", "most frequent OOV words"):
        table.add_column(column)
    for path, texts in checks.items():
        oov = Counter(tok for text in texts for tok in tokenize(text) if tok not in built)
        table.add_row(str(path), str(len(texts)), f"{built.oov_rate(texts):.4%}",
                      ", ".join(f"{w} ({n})" for w, n in oov.most_common(show)))
    console.print(table)
    if out is not None:
        built.save(out)
        console.print(f"wrote {out}")
