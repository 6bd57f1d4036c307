"""Training samples: an image (or its cached encoder features), head targets, and two caption
targets per sample, one per style, so every image teaches both ``<compact>`` and ``<natural>``.

Targets come from the richest labels a record has: the full ``attributes`` (synthetic data), else
MSP60K's ``one_hot`` (colours then stay unknown and are ignored by the heads), else the caption
parsed back into attributes (pseudo-labels; the compact caption is then derived from them too).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from personvlm.data.msp60k import Record
from personvlm.data.transforms import IMAGENET_MEAN, IMAGENET_STD, letterbox, to_tensor
from personvlm.data.vocab import Vocab
from personvlm.imageio import load_image
from personvlm.models.heads import IGNORE_INDEX
from personvlm.schema import ATTRIBUTES, UNKNOWN, PersonDescription, parse, to_compact
from personvlm.training.augment import augment
from personvlm.training.config import AugmentConfig

STYLES = ("compact", "natural")
_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def labels_of(record: Record) -> PersonDescription:
    """The structured labels used as targets (see the module docstring for the order of preference)."""
    labels = record.labels()
    return labels if labels is not None else parse(record.answer)


def captions_of(record: Record) -> dict[str, str]:
    """``{style: target caption}``: the record's own compact caption if it has one, else one rendered
    from its labels, so compact targets always follow the grammar exactly."""
    return {"compact": record.compact or to_compact(labels_of(record)), "natural": record.answer}


def image_tensor(image: Image.Image, size: tuple[int, int], augment_cfg: AugmentConfig | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
    """Model input for one image: the shared letterbox preprocessing, with augmentation applied to
    the [0, 1] pixels before normalisation (jitter in normalised space would shift hues)."""
    boxed = letterbox(image, size)
    if augment_cfg is None or generator is None:
        return to_tensor(boxed)
    pixels = torch.from_numpy(np.asarray(boxed, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (augment(pixels, augment_cfg, generator) - _MEAN) / _STD


def head_targets(desc: PersonDescription) -> dict[str, Tensor]:
    """Per-attribute targets in the layout ``PersonVLM.compute_loss`` expects: a class index into
    ``Attribute.values`` (``-100`` when unknown) or, for multi-label attributes, a 0/1 vector
    (all NaN when unknown)."""
    out: dict[str, Tensor] = {}
    for attr in ATTRIBUTES:
        v = desc.value(attr.name)
        if attr.multi:
            if v == UNKNOWN:
                out[attr.name] = torch.full((len(attr.values),), float("nan"))
            else:
                out[attr.name] = torch.tensor([float(x in v) for x in attr.values])
        else:
            out[attr.name] = torch.tensor(IGNORE_INDEX if v == UNKNOWN else attr.values.index(v))
    return out


def value_priors(labels: Iterable[PersonDescription]) -> dict[str, list[float]]:
    """Each head value's share among the labels that know the attribute (``head_targets``' layout),
    for ``heads.balance_weights``: add-one smoothed for exclusive attributes, a per-value rate kept
    inside [0.001, 0.999] for multi-label ones, so that no share is 0 or 1 (its weight would be
    infinite)."""
    targets = [head_targets(desc) for desc in labels]
    priors: dict[str, list[float]] = {}
    for attr in ATTRIBUTES:
        k = len(attr.values)
        t = torch.stack([row[attr.name] for row in targets]) if targets else torch.empty(0, k)
        if attr.multi:
            known = t[~torch.isnan(t).any(dim=1)].double()
            rate = known.mean(dim=0) if len(known) else torch.zeros(k, dtype=torch.float64)
            share = rate.clamp(1e-3, 1 - 1e-3)
        else:
            counts = torch.bincount(t[t != IGNORE_INDEX].long(), minlength=k).double()
            share = (counts + 1) / (counts.sum() + k)
        priors[attr.name] = [round(float(x), 6) for x in share]
    return priors


class PersonDataset(Dataset):
    """Samples for ``compute_loss``; ``features`` (cached encoder outputs) replace image decoding.

    ``flipped_features`` holds the features of the mirrored images: with a cache, flipping is the
    only augmentation left (jitter would need re-encoding), and it is exact because those features
    come from really flipped pixels. Randomness is drawn from ``(seed, epoch, index)``, so a resumed
    or multi-process run sees exactly the augmentation an uninterrupted single-process run would.
    """

    def __init__(self, records: Sequence[Record], vocab: Vocab, image_size: tuple[int, int], max_len: int,
                 augment_cfg: AugmentConfig | None = None, features: list[Tensor] | None = None,
                 flipped_features: list[Tensor] | None = None, seed: int = 0) -> None:
        self.records = list(records)
        self.vocab = vocab
        self.image_size = image_size
        self.max_len = max_len
        self.augment_cfg = augment_cfg
        self.features = features
        self.flipped_features = flipped_features
        self.seed = seed
        self.epoch = 0
        self.labels = [labels_of(r) for r in self.records]
        self.tokens = [{s: self._encode(c, s) for s, c in captions_of(r).items()} for r in self.records]
        if features is not None and any(len(part) != len(self.records) for part in features):
            raise ValueError(f"{len(features[0])} cached feature rows for {len(self.records)} records")

    def _encode(self, text: str, style: str) -> list[int]:
        ids = self.vocab.encode(text, style=style)
        if len(ids) > self.max_len:  # keep <eos> so the model still learns to stop
            ids = ids[: self.max_len - 1] + ids[-1:]
        return ids

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(((self.seed * 1_000_003 + self.epoch) * 1_000_033 + i) % 2**62)
        sample: dict[str, Any] = {"tokens": self.tokens[i], "heads": head_targets(self.labels[i])}
        if self.features is not None:
            flip = (self.augment_cfg is not None and self.flipped_features is not None
                    and torch.rand(1, generator=g).item() < self.augment_cfg.flip)
            source = self.flipped_features if flip else self.features
            sample["features"] = [part[i].float() for part in source]
            return sample
        sample["images"] = image_tensor(load_image(self.records[i].image), self.image_size, self.augment_cfg, g)
        return sample


def collate(samples: Sequence[dict[str, Any]], pad_id: int) -> list[dict[str, Any]]:
    """One ``compute_loss`` batch per style, each padded to its own longest caption: compact captions
    are a third as long as natural ones, so one shared padding would waste about a third of the
    decoder's work. The heads targets ride along in every style's batch."""
    if "features" in samples[0]:  # a list of maps per sample: stack each part
        key, visual = "features", [torch.stack(parts) for parts in zip(*(s["features"] for s in samples), strict=True)]
    else:
        key, visual = "images", torch.stack([s["images"] for s in samples])
    heads = {name: torch.stack([s["heads"][name] for s in samples]) for name in samples[0]["heads"]}
    batches = []
    for style in STYLES:
        seqs = [s["tokens"][style] for s in samples]
        width = max(len(q) for q in seqs) - 1
        input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        target_ids = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
        for row, q in enumerate(seqs):
            input_ids[row, : len(q) - 1] = torch.tensor(q[:-1])
            target_ids[row, 1 : len(q) - 1] = torch.tensor(q[2:])  # the style token after <bos> is given
        batches.append({key: visual, "input_ids": input_ids, "target_ids": target_ids, "head_targets": heads})
    return batches
