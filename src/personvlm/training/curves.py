"""Per-epoch metrics as JSONL (one object per epoch, appended as training goes, so a killed run
keeps its history) and the training-curve PNG drawn from it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def append_metrics(path: Path, row: Mapping[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(dict(row)) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: malformed metrics line ({e.msg})") from None
    return rows


def plot_curves(rows: Sequence[Mapping[str, Any]], out: Path) -> None:
    """Loss (train/val), validation head mA and learning rate against epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    axes[0].plot(epochs, [r["val_loss"] for r in rows], "o-", label="val")
    axes[0].set_title("loss")
    axes[0].legend()
    axes[1].plot(epochs, [r["val_head_ma"] for r in rows], "o-", color="tab:green")
    axes[1].set_title("val head mA")
    axes[2].plot(epochs, [r["lr"] for r in rows], "o-", color="tab:gray")
    axes[2].set_title("learning rate (end of epoch)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
