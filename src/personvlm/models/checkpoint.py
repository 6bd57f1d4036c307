"""A model directory: ``config.json`` + ``model.safetensors`` + ``vocab.json`` (+ ``MODEL_CARD.md``).

safetensors rather than pickle: loading a model someone hands you must not execute code. Every
file is checked before anything is built, and a missing or mismatching file is named in the error.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from personvlm.data.vocab import Vocab
from personvlm.models.config import ModelConfig
from personvlm.models.personvlm import PersonVLM

CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE, CARD_FILE = "config.json", "model.safetensors", "vocab.json", "MODEL_CARD.md"


class CheckpointError(ValueError):
    """A model directory that cannot be loaded; the message names the directory/file and the problem."""


# Tensors at least this large are stored in float16 by ``save_checkpoint(half=True)``; small ones
# (biases, norm scales, BatchNorm statistics) stay float32, where fp16 rounding would matter most.
HALF_MIN_NUMEL = 1024


def save_checkpoint(directory: str | Path, model: PersonVLM, vocab: Vocab, half: bool = False) -> Path:
    """Write the three files (the directory is created); returns the directory.

    ``half`` stores the large float tensors as float16, halving the file (the shipped model must
    stay under 25 MB); loading casts them back to the model's float32 parameters.
    """
    directory = Path(directory)
    if len(vocab) != model.config.vocab_size:
        raise CheckpointError(f"vocabulary has {len(vocab)} tokens but the model's vocab_size is "
                              f"{model.config.vocab_size}")
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save(directory / CONFIG_FILE)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() and v.numel() >= HALF_MIN_NUMEL else v
                 for k, v in state.items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt", "producer": "personvlm"})
    vocab.save(directory / VOCAB_FILE)
    return directory


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> tuple[PersonVLM, Vocab]:
    """Build the model from ``config.json``, load the weights strictly, read the vocabulary."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: model directory not found")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE) if not (directory / name).is_file()]
    if missing:
        raise CheckpointError(f"{directory}: missing {', '.join(missing)} (a model directory holds "
                              f"{CONFIG_FILE}, {WEIGHTS_FILE} and {VOCAB_FILE})")
    config = ModelConfig.load(directory / CONFIG_FILE)
    vocab = Vocab.load(directory / VOCAB_FILE)
    if len(vocab) != config.vocab_size:
        raise CheckpointError(f"{directory / VOCAB_FILE}: {len(vocab)} tokens, but {CONFIG_FILE} says "
                              f"vocab_size={config.vocab_size}")
    try:
        state = load_file(str(directory / WEIGHTS_FILE), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{directory / WEIGHTS_FILE}: not a readable safetensors file ({exc})") from None
    model = PersonVLM(config, load_weights=False)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{directory / WEIGHTS_FILE}: weights do not match {CONFIG_FILE}: {exc}") from None
    return model.to(device), vocab


def weights_digest(directory: str | Path) -> str:
    """First 12 hex digits of the weights' SHA-256: identifies exactly which model wrote an output."""
    h = hashlib.sha256()
    with open(Path(directory) / WEIGHTS_FILE, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def config_digest(config: ModelConfig) -> str:
    """First 6 hex digits of the SHA-256 of ``config``'s canonical JSON (sorted keys)."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def model_version(directory: str | Path, digest: str | None = None, config: ModelConfig | None = None) -> str:
    """``<directory name>-<weights digest>.<config digest>``: the version every output of a model
    directory carries. The config part because calibration rewrites the answer rule and the
    ``unknown`` thresholds in ``config.json`` without touching the weights, and the answers change
    with them. ``digest`` and ``config``, when the caller already has them, save reading the files."""
    config = config or ModelConfig.load(Path(directory) / CONFIG_FILE)
    return f"{Path(directory).name}-{digest or weights_digest(directory)}.{config_digest(config)}"
