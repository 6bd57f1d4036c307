"""ModelConfig: every architectural choice of a PersonVLM in one dataclass, saved as ``config.json``.

A checkpoint directory is fully described by this file plus the weights and the vocabulary, so
loading never guesses: a config that does not match the weights fails loudly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from personvlm.schema import BY_NAME

ENCODERS: tuple[str, ...] = ("efficientnet_lite0", "mobilevit_xs", "tiny_cnn")
MAX_PARAMETERS = 100_000_000


class ConfigError(ValueError):
    """A configuration that cannot build a model; the message names the field and what was expected."""


@dataclass
class ModelConfig:
    """Architecture and loss settings.

    ``unknown_thresholds`` maps an attribute name to the head confidence below which the
    structured output says ``unknown``; it is calibrated on validation data after training
    (attributes not listed use ``default_unknown_threshold``).
    """

    encoder: str = "efficientnet_lite0"
    pretrained: bool = True  # load the encoder's ImageNet weights when building from scratch
    encoder_weights: str | None = None  # local state dict (e.g. for mobilevit_xs)
    freeze_stages: int = 0  # freeze the stem and the first k named stages of the encoder
    feature_taps: tuple[int, ...] = ()  # encoder stages pooled into the visual map beside the head (colour)
    image_size: tuple[int, int] = (256, 128)  # H, W
    grid: tuple[int, int] = (8, 4)  # visual token grid (rows, cols)
    width: int = 256
    layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.1
    vocab_size: int = 1000
    max_len: int = 256
    label_smoothing: float = 0.1
    caption_weight: float = 1.0
    head_weight: float = 1.0
    head_layers: int = 0  # query blocks after the heads' attention pool (heads.AttributeHeads)
    # Rare values weigh (1 / training share) ** head_balance in the head loss (0 = plain
    # cross-entropy): label-based mA scores every value's recall equally, and without it the heads
    # learn to answer the majority for every value under ~5% (glasses, bags, poses).
    head_balance: float = 0.0
    head_priors: dict[str, list[float]] = field(default_factory=dict)  # training share per head value; set by the trainer
    # At answer time, undo this share of head_balance's re-weighting (logit adjustment by the training
    # priors): 0 answers as trained (balanced: what mA scores), 1 answers by the training priors
    # (plain accuracy: on crops unlike the training ones a balanced head spreads its answers over rare
    # values). Changes answers only, not training.
    prior_correction: float = 0.0
    # Per-attribute overrides of prior_correction (attribute -> 0..1), fitted on validation by
    # `personvlm model calibrate --max-accuracy-drop`: colour and age lose almost no accuracy with
    # balanced answers while body loses much, so one rule for all attributes leaves recall unspent.
    prior_corrections: dict[str, float] = field(default_factory=dict)
    default_unknown_threshold: float = 0.0
    unknown_thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image_size = tuple(self.image_size)  # type: ignore[assignment]
        self.grid = tuple(self.grid)  # type: ignore[assignment]
        if isinstance(self.feature_taps, list):  # JSON and YAML give lists
            self.feature_taps = tuple(self.feature_taps)
        self.validate()

    def validate(self) -> None:
        """Reject settings that would only fail later, deep inside a forward pass."""
        if self.encoder not in ENCODERS:
            raise ConfigError(f"encoder: unknown encoder {self.encoder!r}; expected one of {ENCODERS}")
        if self.width % self.heads:
            raise ConfigError(f"width ({self.width}) must be divisible by heads ({self.heads})")
        for name in ("width", "layers", "heads", "mlp_ratio", "vocab_size", "max_len"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {getattr(self, name)!r}")
        if len(self.image_size) != 2 or min(self.image_size) < 32:
            raise ConfigError(f"image_size: expected (height, width) >= 32, got {self.image_size!r}")
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise ConfigError(f"grid: expected (rows, cols) >= 1, got {self.grid!r}")
        taps = self.feature_taps
        if not isinstance(taps, tuple) or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0
                                                  for t in taps):
            raise ConfigError(f"feature_taps: expected a list of encoder stage numbers >= 0, got {taps!r}")
        if self.head_layers < 0:
            raise ConfigError(f"head_layers: expected >= 0, got {self.head_layers}")
        if self.freeze_stages < 0:
            raise ConfigError(f"freeze_stages: expected >= 0, got {self.freeze_stages}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing: expected 0 <= x < 1, got {self.label_smoothing}")
        if not 0.0 <= self.head_balance <= 2.0:
            raise ConfigError(f"head_balance: expected 0 <= x <= 2 (0.5 is a good start), got {self.head_balance}")
        if not 0.0 <= self.prior_correction <= 1.0:
            raise ConfigError(f"prior_correction: expected 0 <= x <= 1, got {self.prior_correction}")
        for name, value in self.prior_corrections.items():
            if name not in BY_NAME or not 0.0 <= value <= 1.0:
                raise ConfigError(f"prior_corrections.{name}: expected a schema attribute and 0 <= x <= 1, got {value!r}")
        if self.head_balance == 0 and (self.prior_correction > 0 or any(self.prior_corrections.values())):
            raise ConfigError("prior_correction: this model was trained without head_balance; there is nothing to undo")
        for name, shares in self.head_priors.items():
            attr = BY_NAME.get(name)
            if attr is None or len(shares) != len(attr.values) or not all(0.0 < x < 1.0 for x in shares):
                raise ConfigError(f"head_priors.{name}: expected {len(attr.values) if attr else 'no'} shares in (0, 1) "
                                  f"for a schema attribute, got {shares!r}")

    def correction(self, attribute: str) -> float:
        """The share of ``head_balance``'s re-weighting undone when ``attribute`` is answered."""
        return self.prior_corrections.get(attribute, self.prior_correction)

    def unknown_threshold(self, attribute: str) -> float:
        return self.unknown_thresholds.get(attribute, self.default_unknown_threshold)

    # --- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ModelConfig:
        """Build from a dict, naming ``source`` and the offending keys when they are not fields."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object of ModelConfig fields, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown ModelConfig field(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        """Read ``config.json`` (or a YAML file with the same fields)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: model config not found")
        is_yaml = path.suffix in (".yaml", ".yml")
        try:
            data = yaml.safe_load(path.read_text()) if is_yaml else json.loads(path.read_text())
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: not valid {'YAML' if is_yaml else 'JSON'}: {exc}") from None
        return cls.from_dict(data, source=str(path))
