"""The public inference API: ``Describer.describe(images, style) -> list[PersonDescription]``.

Serving, video, evaluation and the CLI call only this, never model internals.

How caption and structure agree (the product promises they never contradict):

1. The attribute heads decide the structure: each attribute's value and confidence, ``unknown``
   below the attribute's calibrated threshold.
2. ``compact`` captions are the grammar's rendering of that structure (``to_compact``), so
   ``parse(caption)`` equals the structure by construction, for any weights. This is what
   decoding under the compact grammar restricted to phrases agreeing with the heads yields: that
   restriction leaves exactly one legal token at every step, so running the decoder through it
   would only spend ~1 ms per token to reach the same string.
3. ``natural`` captions are decoded freely, then read back with the natural-language parser; if
   the caption states a value that contradicts a known head value, it is replaced by the schema's
   rendering of the structure (``to_text(structure, "natural")``). A caption may stay silent on
   an attribute; it may never say something else.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

import personvlm
from personvlm.data.transforms import preprocess
from personvlm.data.vocab import STYLE_TOKENS, Vocab
from personvlm.generation import GenerationConfig, generate
from personvlm.models import onnx_decoder, onnx_visual
from personvlm.models.checkpoint import load_checkpoint, model_version, save_checkpoint, weights_digest
from personvlm.models.config import ModelConfig
from personvlm.models.encoders import ENCODE_CHUNK, fused_for_inference
from personvlm.models.heads import concat_logits, decide, value_probabilities
from personvlm.models.onnx_decoder import OnnxDecoder
from personvlm.models.onnx_graphs import OnnxGraphError
from personvlm.models.onnx_visual import OnnxVisual
from personvlm.models.personvlm import PersonVLM
from personvlm.schema import BY_NAME, UNKNOWN, PersonDescription, parse, to_compact, to_text
from personvlm.schema.compact import compact_slots

MODEL_ENV = "PERSONVLM_MODEL"
BACKENDS = ("auto", "onnx", "torch")

log = logging.getLogger(__name__)
T = TypeVar("T")


def default_model_dir() -> Path:
    """``$PERSONVLM_MODEL`` if set, else ``models/default`` at the repository root."""
    env = os.environ.get(MODEL_ENV)
    return Path(env) if env else Path(personvlm.__file__).resolve().parents[2] / "models" / "default"


class ModelNotFoundError(FileNotFoundError):
    """No model directory where one was expected; the message says how to get one."""


@dataclass
class StageTimes:
    """Seconds spent per stage, accumulated over ``describe`` calls (for ``personvlm bench``)."""

    preprocess: float = 0.0
    encode: float = 0.0
    decode: float = 0.0


def schema_vocab() -> Vocab:
    """A vocabulary covering every compact phrase (and the separator): what ``Describer.tiny`` uses."""
    phrases = [phrase for _, table, _ in compact_slots() for phrase in table]
    return Vocab.build([*phrases, ","])


class Describer:
    """A loaded model plus vocabulary, ready to describe decoded RGB images.

    ``onnx_visual``: an ONNX Runtime session that computes the visual tokens and head logits in
    place of PyTorch; ``onnx_decoder``: the caption decoder's graphs, which decode natural captions
    in place of PyTorch (both CPU only; ``from_pretrained`` picks them up from the model directory).
    """

    def __init__(self, model: PersonVLM, vocab: Vocab, device: str | torch.device = "cpu",
                 model_version: str = "unversioned", max_batch: int = 32,
                 generation: GenerationConfig | None = None, onnx_visual: OnnxVisual | None = None,
                 onnx_decoder: OnnxDecoder | None = None) -> None:
        self.device = torch.device(device)
        if (onnx_visual is not None or onnx_decoder is not None) and self.device.type != "cpu":
            raise ValueError(f"the ONNX graphs run on the CPU only, not on {self.device}; use backend 'torch'")
        self.model = model.to(self.device).eval()
        self._onnx_visual = onnx_visual
        self._onnx_decoder = onnx_decoder
        # Serving copy of the encoder with BatchNorm folded in; built once, so a Describer serves
        # the weights it was given (load a new one for new weights). On CPU it runs channels-last:
        # oneDNN then needs no layout reorder around each convolution (~15-20% less CPU, measured).
        self._memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self._encoder = (None if onnx_visual is not None
                         else fused_for_inference(self.model.encoder).to(memory_format=self._memory_format))
        self.vocab = vocab
        self.model_version = model_version
        self.max_batch = max_batch
        # How natural captions are decoded (compact ones come from the heads, see the module doc).
        self.generation = generation or GenerationConfig(max_new_tokens=160)
        self.times = StageTimes()

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def backend(self) -> str:
        """What computes the visual tokens: ``onnxruntime`` or ``torch``."""
        return "onnxruntime" if self._onnx_visual is not None else "torch"

    @property
    def caption_backend(self) -> str:
        """What decodes natural captions: ``onnxruntime`` or ``torch``."""
        return "onnxruntime" if self._onnx_decoder is not None else "torch"

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str = "cpu", backend: str = "auto") -> Describer:
        """Load a model directory (``None``: the bundled ``models/default``, or ``$PERSONVLM_MODEL``).

        ``backend``: ``onnx`` runs the visual half and the caption decoder with the directory's
        graphs (``personvlm model export-onnx``; an error when one is missing or was exported from
        other weights); ``torch`` runs them in PyTorch; ``auto`` (default) takes each graph on the
        CPU when the directory has an export (``visual.onnx``) and the graph matches the weights,
        else PyTorch, with a warning when a graph is missing from the export or cannot be used.
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        directory = Path(path) if path is not None else default_model_dir()
        if not directory.exists():
            raise ModelNotFoundError(
                f"{directory}: no model directory. Train one with `personvlm train --config FILE.yaml` "
                f"(writes config.json, model.safetensors, vocab.json), then pass --model DIR or set {MODEL_ENV}."
            )
        model, vocab = load_checkpoint(directory, device)
        digest = weights_digest(directory)
        visual = _onnx_graphs_for(directory, device, backend, "the visual tokens",
                                  lambda: onnx_visual.load(directory, digest))
        decoder = _onnx_graphs_for(directory, device, backend, "captions",
                                   lambda: onnx_decoder.load(directory, digest, model.config.max_len))
        return cls(model, vocab, device, model_version=model_version(directory, digest, model.config),
                   onnx_visual=visual, onnx_decoder=decoder)

    @classmethod
    def tiny(cls, seed: int = 0) -> Describer:
        """A randomly initialised tiny model (tiny CNN, 2 layers, width 64) for tests: no weights needed."""
        vocab = schema_vocab()
        config = ModelConfig(encoder="tiny_cnn", pretrained=False, width=64, layers=2, heads=4,
                             vocab_size=len(vocab), max_len=128, dropout=0.0)
        with torch.random.fork_rng():  # seed the weights without resetting the caller's RNG
            torch.manual_seed(seed)
            model = PersonVLM(config)
        return cls(model, vocab, model_version=f"tiny-seed{seed}", max_batch=8,
                   generation=GenerationConfig(max_new_tokens=32))

    def save_pretrained(self, directory: str | Path) -> Path:
        return save_checkpoint(directory, self.model, self.vocab)

    # --- inference ------------------------------------------------------------------------------
    @torch.inference_mode()
    def describe(self, images: Sequence[Image.Image], style: str = "compact") -> list[PersonDescription]:
        """Describe decoded RGB images (decode with ``personvlm.imageio.load_image``), ``max_batch`` at a time."""
        if style not in STYLE_TOKENS:
            raise ValueError(f"unknown caption style {style!r}; expected one of {tuple(STYLE_TOKENS)}")
        out: list[PersonDescription] = []
        for start in range(0, len(images), self.max_batch):
            out += self._describe_batch(images[start:start + self.max_batch], style)
        return out

    @torch.inference_mode()
    def head_probabilities(self, images: Sequence[Image.Image], attribute: str) -> np.ndarray:
        """``[B, K]`` probabilities of ``attribute``'s values (softmax; one sigmoid per value for
        multi-label attributes) as answers are decided on (``prior_correction`` applied), before any
        ``unknown`` threshold: for diagnostics such as
        ``personvlm data real-probe``, which need the head's leaning, not only its answer."""
        if attribute not in self.model.heads.names:
            raise ValueError(f"unknown attribute {attribute!r}; expected one of {self.model.heads.names}")
        logits = self.model.prior_corrected(self.head_logits(images))
        return value_probabilities(BY_NAME[attribute], logits[attribute]).cpu().numpy()

    @torch.inference_mode()
    def head_logits(self, images: Sequence[Image.Image]) -> dict[str, Tensor]:
        """The heads' raw logits (before ``prior_correction`` and thresholds), ``max_batch`` images
        at a time: computed once, they let a caller score every answer rule
        (``personvlm.models.answer_rules``) without encoding the images again."""
        return concat_logits([self._raw_encode(self._inputs(images[start:start + self.max_batch]))[1]
                              for start in range(0, len(images), self.max_batch)])

    def _inputs(self, images: Sequence[Image.Image]) -> Tensor:
        batch = preprocess(images, self.config.image_size)
        if self._onnx_visual is not None:
            return batch  # OnnxVisual lays it out itself, in NumPy (see models.onnx_visual)
        return batch.to(self.device, memory_format=self._memory_format)

    def _raw_encode(self, batch: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Visual tokens and the heads' raw logits."""
        # On CPU the encoder runs ENCODE_CHUNK images at a time: its early feature maps for a whole
        # batch of 32 overflow the caches and cost ~2x more CPU per image than chunks of 4 (measured).
        if self._onnx_visual is not None:
            return self._onnx_visual(batch)  # runs ENCODE_CHUNK images at a time too
        chunk = ENCODE_CHUNK if self.device.type == "cpu" else len(batch)
        visual = torch.cat([self.model.visual_tokens(self._encoder(part)) for part in batch.split(chunk)])
        return visual, self.model.head_logits(visual)

    def _encode(self, batch: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Visual tokens and the logits answers are decided on (``PersonVLM.answer_logits``)."""
        visual, logits = self._raw_encode(batch)
        return visual, self.model.prior_corrected(logits)

    def _describe_batch(self, images: Sequence[Image.Image], style: str) -> list[PersonDescription]:
        t0 = time.perf_counter()
        batch = self._inputs(images)
        t1 = time.perf_counter()
        visual, logits = self._encode(batch)
        thresholds = {a: self.config.unknown_threshold(a) for a in self.model.heads.names}
        structures = [PersonDescription(row) for row in decide(logits, thresholds)]
        t2 = time.perf_counter()
        captions = self._captions(visual, structures, style)
        t3 = time.perf_counter()
        self.times.preprocess += t1 - t0
        self.times.encode += t2 - t1
        self.times.decode += t3 - t2
        return [s.replace(caption=c, style=style) for s, c in zip(structures, captions, strict=True)]

    def _captions(self, visual: Tensor, structures: list[PersonDescription], style: str) -> list[str]:
        if style == "compact":
            return [to_compact(s) for s in structures]
        prompt = [self.vocab.bos_id, self.vocab.style_id(style)]
        budget = min(self.generation.max_new_tokens, self.config.max_len - len(prompt))
        decoder = self._onnx_decoder.decode if self._onnx_decoder is not None else self.model
        ids = generate(decoder, visual, prompt, replace(self.generation, max_new_tokens=budget))
        texts = [sentence_case(self.vocab.decode(row)) for row in ids]
        return [text if not contradicts(text, s) else to_text(s, "natural")
                for text, s in zip(texts, structures, strict=True)]


def _onnx_graphs_for(directory: Path, device: str, backend: str, what: str, load: Callable[[], T]) -> T | None:
    """``load()``, the graphs for ``what`` that ``backend`` asks for (see
    ``Describer.from_pretrained``), or None for PyTorch."""
    if backend == "torch":
        return None
    if backend == "onnx":
        return load()
    if torch.device(device).type != "cpu" or not (directory / onnx_visual.ONNX_FILE).is_file():
        return None  # no export in the directory: PyTorch, nothing to warn about
    try:
        return load()
    except OnnxGraphError as exc:
        log.warning("using PyTorch for %s: %s", what, exc)
        return None


def sentence_case(text: str) -> str:
    """Capitalise sentence starts (the vocabulary is lower-case): "the image shows. he" -> "The image shows. He"."""
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def contradicts(caption: str, structure: PersonDescription) -> bool:
    """True when ``caption`` reads back to a known value different from ``structure``'s known value."""
    said = parse(caption).values()
    return any(v != UNKNOWN and said[k] != UNKNOWN and said[k] != v for k, v in structure.values().items())
