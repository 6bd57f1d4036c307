"""Refit a trained model's attribute heads on new labelled data, keeping everything else.

Why a separate stage: the heads are ~0.3-2.4M parameters on top of visual tokens that the encoder
computes once per image, while a full ``personvlm train`` epoch is dominated by the caption decoder
(~12 min per 12,000 crops on 2 cores). Here the tokens of every training image are computed once
(and those of the mirrored images), cached on disk like the trainer's features and held in memory
as float16, and only the heads are trained on them: 20 s (no query blocks) to 95 s (two) per
24,000 tokens on 2 cores. The encoder, the visual tokens and the decoder are copied unchanged; the
structured answers and compact captions follow the new heads, and a natural caption that
contradicts them is replaced by the structure's own sentence, as always (``Describer``).

The new heads' pool, queries and classifiers start from the source model's heads; ``layers`` query
blocks (``heads.AttributeHeads``) are added fresh. The loss, class balancing (by the new data's value
shares, stored as ``head_priors``), schedule and selection are those of ``personvlm train``. The
source's ``unknown`` thresholds belong to its heads, so the result has none: calibrate it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor, nn

from personvlm.data.msp60k import Record
from personvlm.imageio import ImageError
from personvlm.models.checkpoint import CARD_FILE, load_checkpoint, model_version, save_checkpoint
from personvlm.models.config import ConfigError
from personvlm.models.heads import balance_weights, head_losses
from personvlm.models.personvlm import PersonVLM
from personvlm.schema import ATTRIBUTES
from personvlm.training.config import OptimConfig
from personvlm.training.curves import append_metrics, plot_curves, read_metrics
from personvlm.training.dataset import head_targets, labels_of, value_priors
from personvlm.training.feature_cache import FeatureCache, token_cache_for_model
from personvlm.training.trainer import CURVES_FILE, METRICS_FILE, TrainingError, lr_lambda, param_groups
from personvlm.training.validation import confusion_counts, ma_from_counts


@dataclass
class RefitConfig:
    """What ``personvlm model refit-heads`` trains; defaults from the 2026-12-05 refits (README): no
    query blocks (they added ~0.01 mA for 4x the time and 4 MB), mirrored images on."""

    layers: int = 0
    epochs: int = 5
    batch_size: int = 256
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    patience: int = 2  # epochs without a lower validation loss before stopping
    flip: bool = True  # also train on the mirrored images' tokens (exact, like the trainer's cached flips)
    seed: int = 0

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.layers < 0 or self.warmup_steps < 0 or self.grad_clip < 0:
            raise ConfigError("layers, warmup_steps and grad_clip must be >= 0")
        if self.lr <= 0:
            raise ConfigError(f"lr: expected > 0, got {self.lr}")


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=True)


def cached_tokens(cache: FeatureCache, records: Sequence[Record], flip: bool, label: str) -> Tensor:
    """``[N, tokens, width]`` float16 tokens of the records' images (mirrored with ``flip``); an
    unreadable image stops the refit naming it (its labels would otherwise silently drop out)."""
    try:
        return cache.features([Path(r.image) for r in records], flip=flip, label=label)[0]
    except (ImageError, OSError) as exc:
        raise TrainingError(f"{label}: {exc}") from None


def stacked_targets(records: Sequence[Record]) -> dict[str, Tensor]:
    """``head_targets`` of every record, stacked per attribute (the layout ``head_losses`` takes)."""
    rows = [head_targets(labels_of(r)) for r in records]
    return {a.name: torch.stack([row[a.name] for row in rows]) for a in ATTRIBUTES}


def refit_model(source: PersonVLM, train_records: Sequence[Record], layers: int) -> PersonVLM:
    """A copy of ``source`` with new heads of ``layers`` query blocks, balanced on ``train_records``.

    Every weight outside the heads is the source's, and frozen; the heads' pool, queries and
    classifiers start from the source's too.
    """
    config = dataclasses.replace(source.config, head_layers=layers, unknown_thresholds={}, prior_corrections={},
                                 head_priors=value_priors(labels_of(r) for r in train_records))
    model = PersonVLM(config, load_weights=False)
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    fresh = {k for k in model.state_dict() if k.startswith(("heads.blocks.", "heads.final_norm."))}
    if unexpected or not set(missing) <= fresh:  # only the new blocks may be missing
        raise TrainingError(f"source heads do not fit the refit (missing {sorted(set(missing) - fresh)}, "
                            f"unexpected {sorted(unexpected)})")
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith("heads."))
    return model


def _evaluate(model: PersonVLM, tokens: Tensor, targets: dict[str, Tensor],
              weights: dict[str, Tensor] | None) -> dict[str, float]:
    """Validation loss (the training loss) and label-based mA of the raw head logits."""
    model.heads.eval()
    logits: dict[str, list[Tensor]] = {}
    with torch.inference_mode():
        for start in range(0, len(tokens), 512):
            for name, x in model.heads(tokens[start:start + 512].float()).items():
                logits.setdefault(name, []).append(x)
    joined = {name: torch.cat(parts) for name, parts in logits.items()}
    model.heads.train()
    loss = torch.stack(list(head_losses(joined, targets, weights).values())).mean()
    return {"val_loss": float(loss), "val_head_ma": ma_from_counts(confusion_counts(joined, targets))}


def _train_epoch(heads: nn.Module, tokens: Tensor, targets: dict[str, Tensor], weights: dict[str, Tensor] | None,
                 optimizer: torch.optim.Optimizer, scheduler: Any, cfg: RefitConfig, order: Tensor,
                 progress: Progress, label: str) -> tuple[float, int]:
    """One pass over ``tokens`` in ``order``; returns (mean loss of the batches used, batches
    skipped because their loss was NaN/Inf, as in ``personvlm train``)."""
    losses, skipped = [], 0
    with progress:
        task = progress.add_task(label, total=math.ceil(len(order) / cfg.batch_size))
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            per_attribute = head_losses(heads(tokens[idx].float()), {k: v[idx] for k, v in targets.items()}, weights)
            loss = torch.stack(list(per_attribute.values())).mean()
            optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(heads.parameters(), cfg.grad_clip)
                optimizer.step()
                losses.append(float(loss.detach()))
            else:
                skipped += 1
            scheduler.step()
            progress.advance(task)
    return sum(losses) / max(len(losses), 1), skipped


def refit_heads(source_dir: Path, train_records: Sequence[Record], val_records: Sequence[Record], out: Path,
                cfg: RefitConfig, command: str, cache_dir: Path, console: Console | None = None) -> dict[str, Any]:
    """Write ``out``: a model directory whose heads were refitted (module docstring); returns the
    best epoch's figures. ``out`` must not hold a run already; tokens are cached under ``cache_dir``."""
    cfg.validate()
    console = console or Console(stderr=True)
    if (out / METRICS_FILE).exists():
        raise TrainingError(f"{out} already holds a run; choose another --out")
    if not train_records or not val_records:
        raise TrainingError("refit needs training and validation records")
    torch.manual_seed(cfg.seed)
    source, vocab = load_checkpoint(source_dir)
    version = model_version(source_dir)
    console.print(f"refitting the heads of {version}")
    model = refit_model(source, train_records, cfg.layers)
    cache = token_cache_for_model(cache_dir, source.eval())
    flips = (False, True) if cfg.flip else (False,)
    with torch.inference_mode():  # one tensor of all views: the per-view ones are not kept beside it
        tokens = torch.cat([cached_tokens(cache, train_records, flip, "train (flipped)" if flip else "train")
                            for flip in flips])
        val_tokens = cached_tokens(cache, val_records, False, "val")
    targets = {k: v.repeat(len(flips), *([1] * (v.dim() - 1))) for k, v in stacked_targets(train_records).items()}
    val_targets = stacked_targets(val_records)
    weights = (balance_weights(model.config.head_priors, model.config.head_balance)
               if model.config.head_balance > 0 else None)

    heads = model.heads.train()
    # refit_model left only the heads trainable; the trainer's groups put weight decay on their matrices
    optimizer = torch.optim.AdamW(param_groups(model, OptimConfig(lr=cfg.lr, weight_decay=cfg.weight_decay)),
                                  lr=cfg.lr)
    total = math.ceil(len(tokens) / cfg.batch_size) * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_lambda(s, cfg.warmup_steps, total, cfg.min_lr_ratio))
    out.mkdir(parents=True, exist_ok=True)
    best: dict[str, Any] = {"val_loss": math.inf}
    best_state: dict[str, Tensor] = {}
    bad_epochs = 0
    generator = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        train_loss, skipped = _train_epoch(heads, tokens, targets, weights, optimizer, scheduler, cfg,
                                           torch.randperm(len(tokens), generator=generator),
                                           _progress(console), f"epoch {epoch}/{cfg.epochs}")
        row = {"epoch": epoch, "train_loss": train_loss,
               **_evaluate(model, val_tokens, val_targets, weights), "lr": scheduler.get_last_lr()[0],
               "skipped_batches": skipped, "epoch_seconds": round(time.perf_counter() - t0, 2)}
        append_metrics(out / METRICS_FILE, row)
        improved = row["val_loss"] < best["val_loss"]
        if improved:
            best, bad_epochs = row, 0
            best_state = {k: v.detach().clone() for k, v in heads.state_dict().items()}
        else:
            bad_epochs += 1
        console.print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
                      + ("  *best*" if improved else ""))
        if bad_epochs >= cfg.patience:
            console.print(f"early stop: val_loss has not improved for {cfg.patience} epoch(s)")
            break
    heads.load_state_dict(best_state)
    save_checkpoint(out, model.eval(), vocab)
    plot_curves(read_metrics(out / METRICS_FILE), out / CURVES_FILE)
    mirrors = " and their mirror images" if cfg.flip else ""
    (out / CARD_FILE).write_text(
        f"# PersonVLM model card (heads refitted by `personvlm model refit-heads`)\n\n"
        f"- Command: `{command}`\n"
        f"- Source model: {version}; its encoder, visual tokens and caption decoder are unchanged\n"
        f"- Heads: {cfg.layers} query block(s), trained on {len(train_records)} records{mirrors}, selected on "
        f"{len(val_records)} validation records: best epoch {best['epoch']}, val loss {best['val_loss']:.4f}, "
        f"val head mA {best['val_head_ma']:.4f}\n"
        f"- No `unknown` thresholds yet: run `personvlm model calibrate` on validation data.\n")
    return best
