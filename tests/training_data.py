"""Tiny labelled datasets and configs for the training tests (fast: 64x32 images, tiny_cnn).

Images encode two attributes in their pixels (upper/lower body colour), so a few epochs of
training measurably learn something, which the tests use to check the loop is real.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from personvlm.schema import PersonDescription, to_compact

RGB = {"red": (220, 30, 30), "blue": (30, 40, 220), "green": (30, 180, 40), "white": (240, 240, 240)}


def make_dataset(root: Path, n: int = 24, seed: int = 0) -> Path:
    """``root/images/*.jpg`` + ``root/data.jsonl`` in the synthetic-data format; returns the JSONL."""
    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        up, low = rng.choice(list(RGB)), rng.choice(list(RGB))
        desc = PersonDescription.from_values({
            "gender": rng.choice(["male", "female"]), "age": "adult", "upper_color": up, "lower_color": low,
            "upper_type": "jacket", "lower_type": "trousers", "bags": (), "motion": "walking",
        })
        img = Image.new("RGB", (32, 64), RGB[low])
        img.paste(Image.new("RGB", (32, 32), RGB[up]), (0, 0))
        img.paste(Image.new("RGB", (6, 6), (0, 0, 0)), (2 + i % 5, 40))  # left-side mark: flips change pixels
        name = f"images/p{i // 2:03d}_{i % 2:03d}.jpg"  # pairs share a prefix, like MSP60K's frame groups
        img.save(root / name)
        answer = f"The image shows an adult {desc.value('gender')} wearing a {up} jacket and {low} trousers."
        lines.append(json.dumps({"image": name, "answer": answer, "compact": to_compact(desc),
                                 "attributes": {k: list(v) if isinstance(v, tuple) else v
                                                for k, v in desc.values().items()}}))
    path = root / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_config(path: Path, train_jsonl: Path, **sections: dict[str, Any]) -> Path:
    """A YAML config for a tiny model; ``sections`` override keys per section."""
    cfg: dict[str, Any] = {
        "data": {"train": str(train_jsonl), "val_fraction": 0.25},
        "model": {"encoder": "tiny_cnn", "pretrained": False, "image_size": [64, 32], "grid": [2, 1],
                  "width": 32, "layers": 1, "heads": 2, "mlp_ratio": 2, "max_len": 48, "dropout": 0.1},
        "train": {"epochs": 3, "batch_size": 4, "lr": 3e-3, "warmup_steps": 2, "patience": 10, "seed": 0},
        "cache": {"enabled": False, "dir": str(path.parent / "cache")},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    path.write_text(yaml.safe_dump(cfg))
    return path


def trained_tiny_model(root: Path, **model: Any) -> Path:
    """A tiny model (``model`` overrides its config) trained one epoch on ``make_dataset``'s
    images: the starting point of the fine-tuning and head-refit tests. Returns the model directory."""
    from personvlm.training.config import TrainConfig
    from personvlm.training.trainer import Trainer

    data = make_dataset(root / "data", n=24, seed=0)
    Trainer(TrainConfig.load(tiny_config(root / "c.yaml", data, train={"epochs": 1}, model=model)), root / "run").run()
    return root / "run"
