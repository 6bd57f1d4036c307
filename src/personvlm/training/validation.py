"""Validation pass: mean loss (early stopping, model selection) and label-based mA of the heads.

mA is computed from confusion counts per (attribute, value) binary label, which add up across
DDP processes exactly; samples whose true value is unknown are left out of that attribute, and
labels with no positives or no negatives in the split are left out of the mean (their recall
would be a meaningless 1.0).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from personvlm.models.heads import IGNORE_INDEX
from personvlm.schema import ATTRIBUTES
from personvlm.training.ddp import DistContext, all_reduce_sum

N_LABELS = sum(len(a.values) for a in ATTRIBUTES)


def confusion_counts(logits: dict[str, Tensor], targets: dict[str, Tensor]) -> Tensor:
    """``[N_LABELS, 4]`` counts (tp, fn, tn, fp) of argmax / sigmoid>0.5 predictions against targets."""
    rows = []
    for attr in ATTRIBUTES:
        out, t = logits[attr.name].float(), targets[attr.name].to(logits[attr.name].device)
        if attr.multi:
            known = ~torch.isnan(t).any(dim=1)
            pred, true = torch.sigmoid(out[known]) > 0.5, t[known] > 0.5
        else:
            known = t != IGNORE_INDEX
            k = len(attr.values)
            pred = nn.functional.one_hot(out[known].argmax(-1), k).bool()
            true = nn.functional.one_hot(t[known].long(), k).bool()
        rows.append(torch.stack([(pred & true).sum(0), (~pred & true).sum(0),
                                 (~pred & ~true).sum(0), (pred & ~true).sum(0)], dim=1))
    return torch.cat(rows).double().cpu()


def ma_from_counts(counts: Tensor) -> float:
    tp, fn, tn, fp = counts.unbind(1)
    ok = (tp + fn > 0) & (tn + fp > 0)
    if not ok.any():
        return float("nan")
    ma = (tp[ok] / (tp[ok] + fn[ok]) + tn[ok] / (tn[ok] + fp[ok])) / 2
    return float(ma.mean())


@torch.no_grad()
def validate(model: Any, loader: DataLoader, ctx: DistContext) -> dict[str, float]:
    """``{"val_loss", "val_head_ma"}`` over the whole validation set (all processes together)."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64)  # loss sum, batches
    counts = torch.zeros(N_LABELS, 4, dtype=torch.float64)
    for batches in loader:
        batches = [to_device(b, ctx.device) for b in batches]
        loss, visual = model.styles_loss(batches)  # every style's batch holds the same head targets
        if torch.isfinite(loss):
            totals += torch.tensor([float(loss), 1.0], dtype=torch.float64)
        counts += confusion_counts(model.head_logits(visual), batches[0]["head_targets"])
    model.train(was_training)
    totals = all_reduce_sum(totals.to(ctx.device), ctx).cpu()
    counts = all_reduce_sum(counts.to(ctx.device), ctx).cpu()
    return {"val_loss": float(totals[0] / max(totals[1], 1.0)), "val_head_ma": ma_from_counts(counts)}


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, dict):
            out[k] = {kk: vv.to(device, non_blocking=True) for kk, vv in v.items()}
        elif isinstance(v, list):
            out[k] = [vv.to(device, non_blocking=True) for vv in v]
        else:
            out[k] = v.to(device, non_blocking=True)
    return out
