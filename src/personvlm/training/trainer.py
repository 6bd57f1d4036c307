"""The training loop: AdamW, warmup + cosine schedule, gradient accumulation and clipping, AMP on
CUDA, NaN/Inf batches skipped and counted, early stopping on validation loss, a resumable
checkpoint every epoch, optional DDP, and a model directory at the end that
``Describer.from_pretrained`` loads.

Resuming is exact, not approximate: the sample order comes from ``(seed, epoch)``, augmentation
from ``(seed, epoch, index)``, and the checkpoint carries model, optimiser, scheduler, grad
scaler, every process's RNG state and the step, so a run killed at any point and resumed from
its last epoch checkpoint produces the same losses and weights as one that was never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
import random
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from personvlm.data.msp60k import Record, load_jsonl
from personvlm.data.split import split_groups
from personvlm.data.vocab import Vocab
from personvlm.imageio import ImageError
from personvlm.models.checkpoint import CARD_FILE, VOCAB_FILE, CheckpointError, load_checkpoint, save_checkpoint
from personvlm.models.personvlm import PersonVLM
from personvlm.schema.compact import compact_slots
from personvlm.training.config import SELECT_ON, OptimConfig, TrainConfig
from personvlm.training.curves import append_metrics, plot_curves, read_metrics
from personvlm.training.dataset import PersonDataset, captions_of, collate, labels_of, value_priors
from personvlm.training.ddp import (
    DistContext,
    all_reduce_sum,
    barrier,
    broadcast_object,
    gather_objects,
    init_distributed,
    shutdown,
)
from personvlm.training.feature_cache import cache_for_model
from personvlm.training.precision import autocast_dtype
from personvlm.training.validation import to_device, validate

log = logging.getLogger(__name__)

METRICS_FILE, CURVES_FILE, CHECKPOINT_FILE = "metrics.jsonl", "curves.png", "checkpoints/last.pt"


class TrainingError(RuntimeError):
    """A run that cannot start or continue; the message says what to change."""


@dataclass
class Hooks:
    """Called by the loop; the kill/resume test uses ``on_step`` to SIGKILL a run mid-epoch."""

    on_step: Callable[[int], None] | None = None
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None


@dataclass
class LoopState:
    """What a checkpoint restores besides the module/optimiser states."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps taken
    best_val: float = math.inf
    bad_epochs: int = 0


class LossModule(nn.Module):
    """``PersonVLM.styles_loss`` of one step, as one ``forward`` so that
    DDP's gradient synchronisation wraps the real loss."""

    def __init__(self, model: PersonVLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, batches: list[dict[str, Any]]) -> Tensor:
        return self.model.styles_loss(batches)[0]


class _Shard(Sampler[int]):
    """Every ``world``-th index from ``rank``: validation without DistributedSampler's padding repeats."""

    def __init__(self, n: int, ctx: DistContext) -> None:
        self.indices = list(range(ctx.rank, n, ctx.world_size))

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def invoked_command() -> str:
    """The ``personvlm ...`` command line of this process, shell-quoted, for a model card."""
    return " ".join(shlex.quote(a) for a in ["personvlm", *sys.argv[1:]])


def build_vocab(records: list[Record], cfg: TrainConfig) -> Vocab:
    """Words of the training captions in both styles plus every compact grammar phrase, so the
    constrained decoder can always spell any legal compact caption."""
    texts = [c for r in records for c in captions_of(r).values()]
    grammar = [phrase for _, table, _ in compact_slots() for phrase in table]
    # Grammar phrases are repeated min_freq times so that no frequency cut can drop one.
    return Vocab.build(texts + grammar * cfg.vocab.min_freq, cfg.vocab.min_freq, cfg.vocab.max_size)


def initial_weights(directory: Path) -> tuple[dict[str, Tensor], Vocab]:
    """The weights and vocabulary of the model directory named by ``train.init_from``.

    The vocabulary is kept, not rebuilt from the new data: the embedding rows must keep meaning
    the same tokens for the start to be worth anything.
    """
    try:
        source, vocab = load_checkpoint(directory)
    except CheckpointError as exc:
        raise TrainingError(f"train.init_from: {exc}") from None
    return source.state_dict(), vocab


def param_groups(model: PersonVLM, tc: OptimConfig) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on tensors of two or more dimensions only (not norms or biases),
    and the fine-tuned encoder stages at ``encoder_lr``. Groups with no parameters are left out, so
    a frozen encoder gives the same two groups as before."""
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    groups = []
    for in_encoder in (False, True):
        lr = tc.encoder_lr if in_encoder and tc.encoder_lr is not None else tc.lr
        params = [p for p in model.parameters() if p.requires_grad and (id(p) in encoder_ids) == in_encoder]
        for decay in (True, False):
            chosen = [p for p in params if (p.ndim >= 2) == decay]
            if chosen:
                groups.append({"params": chosen, "weight_decay": tc.weight_decay if decay else 0.0, "lr": lr})
    return groups


def lr_lambda(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine down to ``min_ratio`` at ``total`` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """One training run writing into ``out`` (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, out: str | Path, resume: bool = False, hooks: Hooks | None = None,
                 command: str | None = None) -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.resume = resume
        self.hooks = hooks or Hooks()
        self.command = command or invoked_command()
        self.console = Console(stderr=True, soft_wrap=True)

    # --- set-up -------------------------------------------------------------------------------
    def _load_records(self) -> tuple[list[Record], list[Record]]:
        d = self.cfg.data
        root = self.cfg.resolve(d.image_root) if d.image_root else None
        train = load_jsonl(self.cfg.resolve(d.train), root, d.skip_missing)
        if d.max_samples is not None:
            train = train[: d.max_samples]
        if d.val:
            return train, load_jsonl(self.cfg.resolve(d.val), root, d.skip_missing)
        parts = split_groups(train, {"train": 1 - d.val_fraction, "val": d.val_fraction}, seed=d.split_seed)
        if not parts["val"] or not parts["train"]:
            raise TrainingError(f"{d.train}: {len(train)} records are too few to split off a validation set "
                                f"(val_fraction={d.val_fraction}); give data.val or more data")
        return parts["train"], parts["val"]

    def _features(self, model: PersonVLM, train: list[Record], val: list[Record],
                  ctx: DistContext) -> tuple[list[Tensor] | None, list[Tensor] | None, list[Tensor] | None]:
        """Cached outputs of the encoder's frozen part (train, train flipped, val), when part of it is frozen."""
        if not (self.cfg.cache.enabled and model.encoder.frozen_stages > 0):
            if self.cfg.cache.enabled and ctx.is_main:
                log.info("feature cache off: no encoder stage is frozen (freeze_stages=0)")
            return None, None, None
        cache = cache_for_model(Path(self.cfg.cache.dir), model.encoder, model.config.image_size, str(ctx.device))
        flip = self.cfg.augment.flip > 0
        jobs = [("train", train, False), ("train (flipped)", train, True), ("val", val, False)]
        # The main process fills the cache; the others wait and then read it.
        results: list[Tensor | None] = []
        for turn in (0, 1):
            if (turn == 0) == ctx.is_main:
                try:
                    results = [cache.features([r.image for r in recs], fl, label) if (not fl or flip) else None
                               for label, recs, fl in jobs]
                except (ImageError, OSError) as exc:  # a corrupt or blank crop: name it, not a traceback
                    raise TrainingError(f"feature cache: {exc}") from None
            barrier(ctx)
        return results[0], results[1], results[2]

    # --- the run ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        ctx = init_distributed(self.cfg.train.device)
        try:
            return self._run(ctx)
        finally:
            shutdown(ctx)

    def _run(self, ctx: DistContext) -> dict[str, Any]:
        cfg, tc = self.cfg, self.cfg.train
        ckpt_path = self.out / CHECKPOINT_FILE
        # Checked by every process (same files), so all of them stop instead of some waiting forever.
        if self.resume and not ckpt_path.is_file():
            raise TrainingError(f"--resume: no checkpoint at {ckpt_path}")
        if not self.resume and (self.out / METRICS_FILE).exists():
            raise TrainingError(f"{self.out} already holds a run; pass --resume to continue it or choose another --out")
        if ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        seed_everything(tc.seed)
        train_recs, val_recs = self._load_records()
        start: dict[str, Tensor] | None = None  # the weights a fine-tuning run starts from
        if self.resume:
            vocab = Vocab.load(self.out / VOCAB_FILE)
        elif tc.init_from:
            start, vocab = initial_weights(cfg.resolve(tc.init_from))
        else:
            vocab = broadcast_object(build_vocab(train_recs, cfg) if ctx.is_main else None, ctx)
        model_cfg = dataclasses.replace(cfg.model, vocab_size=len(vocab))
        if model_cfg.head_balance > 0:  # the same records on every process and on resume: the same shares
            model_cfg = dataclasses.replace(model_cfg, head_priors=value_priors(labels_of(r) for r in train_recs))
        model = PersonVLM(model_cfg, load_weights=start is None)  # init_from replaces every weight anyway
        if start is not None:
            try:
                model.load_state_dict(start, strict=True)
            except RuntimeError as exc:
                raise TrainingError(f"train.init_from: {tc.init_from}: its weights do not fit this config's model "
                                    f"section (keep the architecture it was trained with): {exc}") from None
        model = model.to(ctx.device)
        if ctx.distributed:  # same initial weights everywhere, but each process its own dropout masks
            seed_everything(tc.seed + ctx.rank)
        if ctx.is_main:
            (self.out / "checkpoints").mkdir(exist_ok=True)
            vocab.save(self.out / VOCAB_FILE)
            (self.out / "train_config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))

        feats, feats_flip, val_feats = self._features(model, train_recs, val_recs, ctx)
        size = model_cfg.image_size
        augment = cfg.augment if (feats is None or feats_flip is not None) else None
        train_ds = PersonDataset(train_recs, vocab, size, model_cfg.max_len, augment, feats, feats_flip, tc.seed)
        val_ds = PersonDataset(val_recs, vocab, size, model_cfg.max_len, None, val_feats, None, tc.seed)
        sampler = DistributedSampler(train_ds, ctx.world_size, ctx.rank, shuffle=True, seed=tc.seed)
        loader_args: dict[str, Any] = {"batch_size": tc.batch_size, "num_workers": tc.num_workers,
                                       "collate_fn": functools.partial(collate, pad_id=vocab.pad_id)}
        train_dl = DataLoader(train_ds, sampler=sampler, **loader_args)
        val_dl = DataLoader(val_ds, sampler=_Shard(len(val_ds), ctx), **loader_args)

        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(param_groups(model, tc), lr=tc.lr, betas=tc.betas)
        steps_per_epoch = math.ceil(len(train_dl) / tc.grad_accum)
        total_steps = steps_per_epoch * tc.epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_lambda(s, tc.warmup_steps, total_steps, tc.min_lr_ratio))
        amp_dtype = autocast_dtype(ctx.device, tc.amp)
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)  # bfloat16 needs no scaling

        state = LoopState()
        if self.resume:
            state = self._restore(ckpt_path, model, optimizer, scheduler, scaler, ctx)
            if ctx.is_main:
                self.console.print(f"resumed {self.out} at epoch {state.epoch}, step {state.step}")
        net: nn.Module = LossModule(model)
        if ctx.distributed:
            # Unused parameters happen: a head whose attribute is unknown in a whole batch gets no gradient.
            net = DistributedDataParallel(net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                                          find_unused_parameters=True)
        if ctx.is_main:
            n_train = sum(p.numel() for p in trainable)
            self.console.print(f"training on {ctx.device} x{ctx.world_size}: {len(train_ds)} train / {len(val_ds)} "
                               f"val samples, {steps_per_epoch} steps/epoch, {n_train / 1e6:.2f}M trainable params, "
                               f"features {'cached' if feats is not None else 'computed per batch'}, "
                               f"{str(amp_dtype or torch.float32).removeprefix('torch.')} compute")

        while state.epoch < tc.epochs and state.bad_epochs < tc.patience:
            epoch = state.epoch
            sampler.set_epoch(epoch)
            train_ds.set_epoch(epoch)
            t0 = time.perf_counter()
            train_loss, skipped = self._train_epoch(net, train_dl, optimizer, scheduler, scaler, state, ctx, amp_dtype)
            seconds = time.perf_counter() - t0
            val = validate(model, val_dl, ctx)
            state.epoch += 1
            score = SELECT_ON[tc.select_on] * val[tc.select_on]  # lower is better
            improved = score < state.best_val
            if improved:
                state.best_val, state.bad_epochs = score, 0
            else:
                state.bad_epochs += 1
            row = {"epoch": state.epoch, "step": state.step, "train_loss": train_loss, **val,
                   "lr": scheduler.get_last_lr()[0], "skipped_batches": skipped, "epoch_seconds": round(seconds, 2),
                   "steps_per_second": round(steps_per_epoch / seconds, 3) if seconds else None,
                   "samples_per_second": round(len(train_ds) / seconds, 1) if seconds else None}
            rngs = gather_objects(rng_state(), ctx)
            if ctx.is_main:
                if improved:
                    save_checkpoint(self.out, model, vocab)  # the best model so far is the model directory
                append_metrics(self.out / METRICS_FILE, row)
                plot_curves(read_metrics(self.out / METRICS_FILE), self.out / CURVES_FILE)  # current even if killed
                self._save(ckpt_path, model, optimizer, scheduler, scaler, state, rngs)
                self.console.print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in row.items()) + ("  *best*" if improved else ""))
            barrier(ctx)
            if self.hooks.on_epoch_end:
                self.hooks.on_epoch_end(state.epoch, row)
            if state.bad_epochs >= tc.patience and ctx.is_main:
                self.console.print(f"early stop: {tc.select_on} has not improved for {tc.patience} epoch(s)")
        if ctx.is_main:
            self._finish(len(train_recs), len(val_recs))
        return {"epochs": state.epoch, "step": state.step, "select_on": tc.select_on,
                "best": SELECT_ON[tc.select_on] * state.best_val}

    def _train_epoch(self, net: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                     scheduler: Any, scaler: torch.amp.GradScaler, state: LoopState, ctx: DistContext,
                     amp_dtype: torch.dtype | None) -> tuple[float, int]:
        """One pass; returns (mean loss of the batches used, batches skipped for NaN/Inf)."""
        tc = self.cfg.train
        net.train()
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, batches used, batches skipped
        optimizer.zero_grad(set_to_none=True)
        n = len(loader)
        columns = (TextColumn(f"epoch {state.epoch + 1}/{tc.epochs}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=self.console, disable=not ctx.is_main, transient=True) as progress:
            task = progress.add_task("train", total=n, loss=float("nan"))
            for i, batches in enumerate(loader):
                batches = [to_device(b, ctx.device) for b in batches]
                boundary = (i + 1) % tc.grad_accum == 0 or i + 1 == n
                sync = contextlib.nullcontext() if boundary or not ctx.distributed else net.no_sync()
                with sync:
                    with torch.autocast(ctx.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        loss = net(batches)
                    # Every process must agree to skip, or DDP's all-reduce would wait forever.
                    bad = all_reduce_sum(torch.tensor([float(not torch.isfinite(loss))], device=ctx.device), ctx)
                    if bad.item() == 0:
                        scaler.scale(loss / tc.grad_accum).backward()
                        totals += torch.tensor([loss.item(), 1.0, 0.0], dtype=torch.float64)
                    else:
                        totals[2] += 1
                if boundary and self._step(optimizer, scheduler, scaler, totals):
                    state.step += 1
                    if self.hooks.on_step:
                        self.hooks.on_step(state.step)
                mean_loss = totals[0].item() / max(totals[1].item(), 1.0)
                progress.update(task, advance=1, loss=mean_loss)
                if ctx.is_main and not self.console.is_terminal and (i + 1) % max(1, n // 10) == 0:
                    # Logs redirected to a file get a line every ~10% instead of a live bar.
                    self.console.print(f"epoch {state.epoch + 1} batch {i + 1}/{n} step {state.step} "
                                       f"loss {mean_loss:.4f} {progress.tasks[0].elapsed or 0:.0f}s")
        totals = all_reduce_sum(totals.to(ctx.device), ctx).cpu()
        return float(totals[0] / max(totals[1], 1.0)), int(totals[2] / ctx.world_size)

    def _step(self, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler,
              totals: Tensor) -> bool:
        """Clip and take an optimiser + schedule step; False (nothing stepped) when every batch of the
        accumulation window was skipped. Non-finite gradients are counted as a skipped batch and
        not applied."""
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if not params:
            return False
        scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.train.grad_clip or float("inf"))
        if not torch.isfinite(norm):
            totals[2] += 1
            if not scaler.is_enabled():  # the scaler skips non-finite steps by itself
                optimizer.zero_grad(set_to_none=True)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        return True

    # --- checkpoints and outputs --------------------------------------------------------------
    def _save(self, path: Path, model: PersonVLM, optimizer: torch.optim.Optimizer, scheduler: Any,
              scaler: torch.amp.GradScaler, state: LoopState, rngs: list[Any]) -> None:
        blob = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "loop": dataclasses.asdict(state), "rng": rngs, "model_config": model.config.to_dict()}
        tmp = path.with_suffix(".tmp")
        torch.save(blob, tmp)
        os.replace(tmp, path)  # a kill during the write leaves the previous checkpoint intact

    def _restore(self, path: Path, model: PersonVLM, optimizer: torch.optim.Optimizer, scheduler: Any,
                 scaler: torch.amp.GradScaler, ctx: DistContext) -> LoopState:
        blob = torch.load(path, map_location=ctx.device, weights_only=False)
        if blob["model_config"] != model.config.to_dict():
            raise TrainingError(f"{path}: the checkpoint's model config differs from the config given now; "
                                "resume with the config the run was started with")
        if len(blob["rng"]) != ctx.world_size:
            raise TrainingError(f"{path}: saved by {len(blob['rng'])} process(es), resuming with "
                                f"{ctx.world_size}; resume with the same number of processes")
        model.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
        scheduler.load_state_dict(blob["scheduler"])
        scaler.load_state_dict(blob["scaler"])
        set_rng_state(blob["rng"][ctx.rank])
        return LoopState(**blob["loop"])

    def _finish(self, n_train: int, n_val: int) -> None:
        rows = read_metrics(self.out / METRICS_FILE)
        sign = SELECT_ON[self.cfg.train.select_on]
        best = min(rows, key=lambda r: sign * r[self.cfg.train.select_on]) if rows else {}
        d = self.cfg.data
        card = f"""# PersonVLM model card (written by `personvlm train`)

- Trained: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
- Command: `{self.command}`
- Training data: `{d.train}` ({n_train} train / {n_val} validation samples; validation
  {"from " + d.val if d.val else f"split off by file-name group, fraction {d.val_fraction}, seed {d.split_seed}"})
- Encoder: {self.cfg.model.encoder} (freeze_stages={self.cfg.model.freeze_stages}), image size
  {self.cfg.model.image_size}
- Best epoch by {self.cfg.train.select_on}: {best.get("epoch")}: val loss {best.get("val_loss", float("nan")):.4f}, val head mA
  {best.get("val_head_ma", float("nan")):.4f} (validation split, used for model selection)
- Full per-epoch history: `metrics.jsonl`, `curves.png`; training config: `train_config.yaml`.

Test-split metrics are not computed by training (the test split is never seen here): evaluate
this directory on a held-out test set and record the figures below.
"""
        (self.out / CARD_FILE).write_text(card)
