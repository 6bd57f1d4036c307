"""TrainConfig: one YAML file says everything a training run needs (data, model, optimiser,
augmentation, feature cache), so a run is reproducible from its config and seed alone.

Unknown keys are errors, not warnings: a misspelt ``learnig_rate`` silently falling back to the
default is the kind of mistake that costs a night of training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from personvlm.models.config import ConfigError, ModelConfig


@dataclass
class DataConfig:
    """Where the samples come from. Paths are relative to the config file's folder."""

    train: str = ""
    val: str | None = None  # None: carve a validation split out of ``train`` (grouped by file prefix)
    image_root: str | None = None  # default: each JSONL's folder
    val_fraction: float = 0.1
    split_seed: int = 0
    skip_missing: bool = False
    max_samples: int | None = None  # use only the first N training rows (quick experiments)

    def validate(self) -> None:
        if not self.train:
            raise ConfigError("data.train: required (path to an MSP60K-format JSONL)")
        if self.val is None and not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction: expected 0 < x < 1 when data.val is not given, got {self.val_fraction}")
        if self.max_samples is not None and self.max_samples < 2:
            raise ConfigError(f"data.max_samples: expected >= 2 or null, got {self.max_samples}")


# Validation figures a run can select its model on, and the sign that makes lower better: the heads
# decide the structured output, and the caption loss can overfit while the heads' mA still rises.
SELECT_ON: dict[str, float] = {"val_loss": 1.0, "val_head_ma": -1.0}


@dataclass
class OptimConfig:
    """Optimiser, schedule and loop settings."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    encoder_lr: float | None = None  # pretrained encoder stages being fine-tuned (None: lr); lower keeps ImageNet
    # A model directory whose weights and vocabulary the run starts from (fine-tuning the bundled model
    # on new or real data); relative to the config file, like the data paths. None: fresh weights.
    init_from: str | None = None
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0
    grad_accum: int = 1
    amp: bool = True  # mixed precision where native: float16 on CUDA, bfloat16 on AMX/AVX512-BF16 CPUs
    patience: int = 3  # early stopping: epochs without improvement of ``select_on``
    select_on: str = "val_loss"  # model selection + early stopping: val_loss (lower) or val_head_ma (higher)
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum", "patience"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"train.{name}: expected a positive integer, got {getattr(self, name)!r}")
        if self.select_on not in SELECT_ON:
            raise ConfigError(f"train.select_on: expected one of {sorted(SELECT_ON)}, got {self.select_on!r}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr: expected > 0, got {self.lr}")
        if self.encoder_lr is not None and self.encoder_lr <= 0:
            raise ConfigError(f"train.encoder_lr: expected > 0 or null (= train.lr), got {self.encoder_lr}")
        if self.warmup_steps < 0 or self.num_workers < 0:
            raise ConfigError("train.warmup_steps and train.num_workers must be >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"train.min_lr_ratio: expected 0 <= x <= 1, got {self.min_lr_ratio}")
        if self.grad_clip < 0:
            raise ConfigError(f"train.grad_clip: expected >= 0 (0 = off), got {self.grad_clip}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"train.device: expected auto, cpu or cuda[:N], got {self.device!r}")


@dataclass
class AugmentConfig:
    """Label-safe augmentation. Never hue: the labels name colours, so only brightness, contrast
    and a little saturation change, all of which keep every pixel's hue."""

    flip: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.1

    def validate(self) -> None:
        if not 0.0 <= self.flip <= 1.0:
            raise ConfigError(f"augment.flip: expected a probability in [0, 1], got {self.flip}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"augment.{name}: expected 0 <= x < 1, got {getattr(self, name)}")


@dataclass
class CacheConfig:
    """On-disk encoder features, used only when the encoder is entirely frozen."""

    enabled: bool = True
    dir: str = "cache/features"  # relative to the working directory, like ``--out``

    def validate(self) -> None:
        if not self.dir:
            raise ConfigError("cache.dir: expected a folder path")


@dataclass
class VocabConfig:
    min_freq: int = 1
    max_size: int | None = None

    def validate(self) -> None:
        if self.min_freq < 1 or (self.max_size is not None and self.max_size < 16):
            raise ConfigError(f"vocab: expected min_freq >= 1 and max_size >= 16 or null, got {asdict(self)}")


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    base_dir: Path = Path(".")  # folder of the YAML file; data paths are relative to it

    def resolve(self, path: str) -> Path:
        """A data path from the config, taken relative to the config file's folder."""
        p = Path(path)
        return p if p.is_absolute() else self.base_dir / p

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: asdict(getattr(self, f.name)) for f in fields(self) if f.name != "base_dir"}
        out["model"] = self.model.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str = "config", base_dir: Path = Path(".")) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
        sections = {f.name: f for f in fields(cls) if f.name != "base_dir"}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {unknown}; known: {sorted(sections)}")
        built: dict[str, Any] = {}
        for name, value in data.items():
            if name == "model":
                built[name] = ModelConfig.from_dict(value or {}, source=f"{source}: model")
            else:
                built[name] = _section(_SECTION_TYPES[name], value or {}, f"{source}: {name}")
        return cls(**built, base_dir=base_dir)

    @classmethod
    def load(cls, path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
        """Read a YAML config, then apply ``overrides`` (``section.key=value``, see
        ``apply_overrides``) before anything is validated."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: training config not found")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        data = apply_overrides(data or {}, overrides, source=str(path))
        return cls.from_dict(data, source=str(path), base_dir=path.resolve().parent)


def apply_overrides(data: Any, overrides: Sequence[str], source: str = "config") -> Any:
    """``data`` with each ``section.key=value`` of ``overrides`` set; the value is read as YAML,
    as if written in the file (so paths stay relative to the config's folder).

    Why: the continuation stages of a model differ only in their data and starting weights; one
    config plus ``--set data.train=... --set train.init_from=...`` says so, where a copied file per
    stage would hide the two lines that differ among forty that do not.
    """
    if not overrides:
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    out = {name: dict(section) if isinstance(section, dict) else section for name, section in data.items()}
    for item in overrides:
        dotted, sep, text = item.partition("=")
        parts = dotted.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. train.epochs=3")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {exc}") from None
        section, key = parts
        if out.get(section) is None:
            out[section] = {}
        if not isinstance(out[section], dict):
            raise ConfigError(f"--set {item!r}: {source}: section {section!r} is not a mapping")
        out[section][key] = value  # unknown sections, keys and wrong types are refused by from_dict
    return out


S = TypeVar("S")
_SECTION_TYPES: dict[str, type] = {
    "data": DataConfig, "train": OptimConfig, "augment": AugmentConfig, "cache": CacheConfig, "vocab": VocabConfig,
}


def _section(kind: type[S], value: Any, source: str) -> S:
    """Build one section dataclass, naming the section and the offending key on any error."""
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: expected a mapping, got {type(value).__name__}")
    known = {f.name: f for f in fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
    for key, v in value.items():
        default = getattr(kind(), key)
        if v is not None and default is not None and not _same_kind(default, v):
            raise ConfigError(f"{source}.{key}: expected {type(default).__name__}, got {v!r}")
    section = kind(**value)
    if isinstance(getattr(section, "betas", None), list):
        section.betas = tuple(section.betas)  # type: ignore[attr-defined]
    try:
        section.validate()  # type: ignore[attr-defined]
    except ConfigError as exc:
        raise ConfigError(f"{source.split(':')[0]}: {exc}") from None
    return section


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, tuple):
        return isinstance(value, list | tuple) and len(value) == len(default)
    return isinstance(value, type(default))
