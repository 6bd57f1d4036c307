"""On-disk cache of the output of a frozen encoder (or of its frozen first stages).

With the encoder frozen, every epoch would recompute identical features; encoding is most of
the CPU time, so they are computed once and stored. With only the first stages frozen, the cache
holds their output (``Encoder.frozen_part``: a list of maps) and training runs the last stages on
it, so the stride-32 stages can be fine-tuned on a CPU (the bundled run: 36 training samples/s
against 42 with the encoder frozen whole). The cache is keyed by a hash of the encoder's
weights and buffers (BatchNorm statistics included) plus the preprocessing settings, and each
entry by the contents of the image files: change the encoder, its weights, the image
size or normalisation, or any image, and the old entry is no longer found (and is deleted when the
new one is written).

Cached features are of un-augmented images: colour jitter would need re-encoding every epoch,
so with a cache it is off. Horizontal flip stays available by caching the mirrored images'
features as a second entry (exact, not an approximation in feature space).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from personvlm.data.transforms import IMAGENET_MEAN, IMAGENET_STD, letterbox, to_tensor
from personvlm.imageio import load_image
from personvlm.models.encoders import ENCODE_CHUNK, Encoder, fused_for_inference
from personvlm.models.personvlm import PersonVLM

log = logging.getLogger(__name__)


def encoder_fingerprint(encoder: nn.Module, preprocess: dict[str, Any]) -> str:
    """Hash of every weight and buffer of ``encoder`` plus the preprocessing settings."""
    h = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    h.update(json.dumps(preprocess, sort_keys=True).encode())
    return h.hexdigest()[:20]


def images_fingerprint(paths: Sequence[Path]) -> str:
    """Hash of the ordered images' contents. Content, not modification times: re-rendering a
    synthetic set with the same seed rewrites identical files and must keep its cache."""
    h = hashlib.sha256()
    for p in paths:
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:20]


def _letterbox_cache(root: Path, fingerprinted: nn.Module, encode: Callable[[Tensor], list[Tensor]],
                     image_size: tuple[int, int], what: dict[str, Any], device: str) -> FeatureCache:
    """A cache of ``encode``'s output on the shared letterbox preprocessing at ``image_size``, keyed
    by ``fingerprinted``'s weights, the preprocessing and ``what`` (which output is stored)."""
    preprocess = {"image_size": list(image_size), "resize": "letterbox-bilinear", "mean": list(IMAGENET_MEAN),
                  "std": list(IMAGENET_STD), **what}
    cpu = torch.device(device).type == "cpu"
    return FeatureCache(root, fingerprinted, preprocess, lambda img: to_tensor(letterbox(img, image_size)),
                        batch_size=64, device=device, encode=encode, chunk=ENCODE_CHUNK if cpu else 64)


def _serving_encoder(encoder: Encoder, device: str) -> Encoder:
    """The BatchNorm-folded copy the Describer serves with (channels-last on CPU): the same maps to
    float rounding, ~6x faster on CPU than the training module at batch 64 (measured: 60 -> 375
    images/s for Lite0 up to stage 4). Cache keys stay those of the training weights."""
    cpu = torch.device(device).type == "cpu"
    return fused_for_inference(encoder).to(device, memory_format=torch.channels_last if cpu else torch.contiguous_format)


def cache_for_model(root: Path, encoder: Encoder, image_size: tuple[int, int], device: str = "cpu") -> FeatureCache:
    """The cache of ``encoder.frozen_part`` with the shared letterbox preprocessing at ``image_size``."""
    fused = _serving_encoder(encoder, device)
    return _letterbox_cache(root, encoder, fused.frozen_part, image_size,
                            {"frozen_stages": encoder.frozen_stages, "taps": list(encoder.taps)}, device)


def token_cache_for_model(root: Path, model: PersonVLM, device: str = "cpu") -> FeatureCache:
    """The cache of ``model``'s visual tokens, keyed by the encoder's and the token projection's
    weights: what ``personvlm model refit-heads`` trains heads on (a second refit of the same model
    on the same images reads them back instead of encoding again)."""
    fused = _serving_encoder(model.encoder, device)
    frozen = nn.ModuleDict({"encoder": model.encoder, "visual_tokens": model.visual_tokens})
    return _letterbox_cache(root, frozen, lambda x: [model.visual_tokens(fused(x))], model.config.image_size,
                            {"output": "visual_tokens"}, device)


class FeatureCache:
    """``root/<encoder fingerprint>/<images fingerprint>[-flip].safetensors`` holding the parts
    ``part0``, ``part1``, ... of ``encode``'s output (fp16)."""

    def __init__(self, root: Path, encoder: nn.Module, preprocess_config: dict[str, Any],
                 to_input: Callable[[Any], Tensor], batch_size: int = 64, device: str = "cpu",
                 encode: Callable[[Tensor], list[Tensor]] | None = None, chunk: int | None = None) -> None:
        self.root = Path(root)
        self.chunk = chunk or batch_size  # images per encode call
        self.encoder = encoder
        self.encode = encode or (lambda x: [encoder(x)])  # what is stored: the whole encoder by default
        self.to_input = to_input  # PIL image -> normalised [3, H, W]
        self.batch_size = batch_size
        self.device = device
        self.key = encoder_fingerprint(encoder, preprocess_config)

    def path_for(self, paths: Sequence[Path], flip: bool = False) -> Path:
        return self.root / self.key / f"{images_fingerprint(paths)}{'-flip' if flip else ''}.safetensors"

    def features(self, paths: Sequence[Path], flip: bool = False, label: str = "") -> list[Tensor]:
        """Feature maps ``[N, C, h, w]`` per part (float16) for ``paths``, computed once and then read from disk."""
        target = self.path_for(paths, flip)
        if target.is_file():
            stored = load_file(target)
            cached = [stored[f"part{i}"] for i in range(len(stored))]
            if all(len(part) == len(paths) for part in cached):
                log.info("feature cache hit: %s", target)
                return cached
            log.warning("feature cache %s has %d rows for %d images; recomputing", target, len(cached[0]),
                        len(paths))
        log.info("encoding %d image(s) into the feature cache %s", len(paths), target)
        t0 = time.perf_counter()
        feats = self._compute(paths, flip, label or target.name)
        log.info("encoded %d image(s) in %.1f s (%.1f images/s)", len(paths), time.perf_counter() - t0,
                 len(paths) / max(time.perf_counter() - t0, 1e-9))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        save_file({f"part{i}": part.contiguous() for i, part in enumerate(feats)}, tmp)
        os.replace(tmp, target)  # atomic: a killed run never leaves a half-written entry
        self._drop_stale(target.name)
        return feats

    @torch.no_grad()
    def _compute(self, paths: Sequence[Path], flip: bool, label: str) -> list[Tensor]:
        was_training = self.encoder.training
        self.encoder.eval()
        out: list[list[Tensor]] = []
        columns = (TextColumn("[bold]encoding[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn())
        try:
            with Progress(*columns, transient=True) as progress:
                task = progress.add_task(label, total=len(paths))
                for start in range(0, len(paths), self.batch_size):
                    chunk = paths[start:start + self.batch_size]
                    x = torch.stack([self.to_input(load_image(p)) for p in chunk]).to(self.device)
                    if flip:
                        x = x.flip(-1)
                    for piece in x.split(self.chunk):
                        out.append([part.to("cpu", torch.float16) for part in self.encode(piece)])
                    progress.advance(task, len(chunk))
        finally:
            self.encoder.train(was_training)
        return [torch.cat(parts) for parts in zip(*out, strict=True)]

    def _drop_stale(self, name: str) -> None:
        """Delete entries for the same images made with other encoder weights or preprocessing."""
        for old in self.root.glob(f"*/{name}"):
            if old.parent.name != self.key:
                old.unlink(missing_ok=True)
                log.info("removed stale feature cache %s", old)
