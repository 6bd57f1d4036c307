"""PersonVLM: image -> encoder feature map -> visual tokens -> (attribute heads, caption decoder).

The public surface is what training, generation and the Describer use:
``encode_images``, ``encode_features``/``visual_from_features`` (so the frozen part of the encoder can be cached),
``head_logits`` (and ``answer_logits``, what answers are decided on), ``decode`` (KV-cached) and
``compute_loss``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from personvlm.models.config import MAX_PARAMETERS, ConfigError, ModelConfig
from personvlm.models.decoder import CaptionDecoder, KVCache
from personvlm.models.encoders import Encoder, build_encoder
from personvlm.models.heads import IGNORE_INDEX, AttributeHeads, balance_weights, head_losses, prior_offsets
from personvlm.models.visual_tokens import VisualTokens
from personvlm.schema import ATTRIBUTES

COMPONENTS = ("encoder", "visual_tokens", "heads", "decoder")


def _build_components(config: ModelConfig, load_weights: bool) -> dict[str, nn.Module]:
    encoder = build_encoder(
        config.encoder,
        pretrained=config.pretrained and load_weights,
        weights=config.encoder_weights if load_weights else None,
        taps=config.feature_taps,
        map_size=config.grid,
    )
    if config.freeze_stages:
        encoder.freeze(config.freeze_stages)
    return {
        "encoder": encoder,
        "visual_tokens": VisualTokens(encoder.out_channels, config.width, config.grid, config.dropout),
        "heads": AttributeHeads(config.width, config.heads, config.dropout, config.head_layers, config.mlp_ratio),
        "decoder": CaptionDecoder(config.vocab_size, config.width, config.layers, config.heads, config.mlp_ratio,
                                  config.max_len, config.dropout),
    }


def _count(module: nn.Module) -> tuple[int, int]:
    params = list(module.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def parameter_report(config: ModelConfig) -> dict[str, tuple[int, int]]:
    """``{component: (total, trainable)}`` for ``config``, counted on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        parts = _build_components(config, load_weights=False)
    return {name: _count(module) for name, module in parts.items()}


def check_parameter_budget(total: int) -> None:
    """Refuse models over the product's 100M-parameter bound, saying which knobs to turn."""
    if total > MAX_PARAMETERS:
        raise ConfigError(
            f"configuration has {total:,} parameters, over the limit of {MAX_PARAMETERS:,}; "
            "reduce width, layers, vocab_size or choose a smaller encoder"
        )


class PersonVLM(nn.Module):
    """The whole model; ``load_weights=False`` skips the encoder's pretrained weights (checkpoint loads)."""

    def __init__(self, config: ModelConfig, load_weights: bool = True) -> None:
        super().__init__()
        self.config = config
        parts = _build_components(config, load_weights)
        check_parameter_budget(sum(_count(module)[0] for module in parts.values()))
        self.encoder: Encoder = parts["encoder"]  # type: ignore[assignment]
        self.visual_tokens: VisualTokens = parts["visual_tokens"]  # type: ignore[assignment]
        self.heads: AttributeHeads = parts["heads"]  # type: ignore[assignment]
        self.decoder: CaptionDecoder = parts["decoder"]  # type: ignore[assignment]
        self.head_loss_weights = (balance_weights(config.head_priors, config.head_balance)
                                  if config.head_balance > 0 else None)
        self.set_prior_correction(config.prior_correction, config.prior_corrections)

    def set_prior_correction(self, value: float, per_attribute: Mapping[str, float] | None = None) -> None:
        """Set the answer rule, ``config.prior_correction`` and its per-attribute overrides
        ``config.prior_corrections`` (replaced by ``per_attribute``, none when ``None``), and the answer
        offsets they imply; an invalid rule raises ConfigError and leaves the model as it was."""
        overrides = dict(per_attribute or {})
        replace(self.config, prior_correction=value, prior_corrections=overrides)  # validates a copy first
        self.config.prior_correction, self.config.prior_corrections = value, overrides
        undo = {attr.name: self.config.correction(attr.name) * self.config.head_balance for attr in ATTRIBUTES}
        self.answer_offsets = prior_offsets(self.config.head_priors, undo) if any(undo.values()) else None

    def encode_features(self, images: Tensor) -> list[Tensor]:
        """The frozen encoder part's output (``Encoder.frozen_part``): what a feature cache stores."""
        return self.encoder.frozen_part(images)

    def visual_from_features(self, features: list[Tensor]) -> Tensor:
        """Visual tokens from ``encode_features``' output: the encoder's trainable stages, then the grid."""
        return self.visual_tokens(self.encoder.trainable_part(list(features)))

    def visual_of(self, batch: dict[str, Any]) -> Tensor:
        """Visual tokens of a training batch holding ``images`` or cached ``features``."""
        if "features" in batch:
            return self.visual_from_features(batch["features"])
        if "images" in batch:
            return self.encode_images(batch["images"])
        raise KeyError("batch needs 'images' [B,3,H,W] or cached encoder 'features' (a list of maps)")

    def encode_images(self, images: Tensor) -> Tensor:
        """ImageNet-normalised ``[B, 3, H, W]`` -> visual tokens ``[B, N, D]``."""
        return self.visual_tokens(self.encoder(images))

    def head_logits(self, visual: Tensor) -> dict[str, Tensor]:
        return self.heads(visual)

    def answer_logits(self, visual: Tensor) -> dict[str, Tensor]:
        """The head logits answers are decided on: ``head_logits`` shifted by ``prior_correction``
        (``heads.prior_offsets``); training and its validation use ``head_logits`` itself."""
        return self.prior_corrected(self.heads(visual))

    def prior_corrected(self, logits: dict[str, Tensor]) -> dict[str, Tensor]:
        """``head_logits`` output -> ``answer_logits`` output (for head logits computed elsewhere,
        such as by the ONNX graph)."""
        if self.answer_offsets is None:
            return logits
        return {name: x + self.answer_offsets[name].to(x.device, x.dtype) for name, x in logits.items()}

    def decode(self, input_ids: Tensor, visual: Tensor, cache: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """Logits for ``input_ids`` given the tokens already in ``cache`` (a new cache when ``None``).

        With a cache, pass only the new tokens; cross-attention keys/values of ``visual`` are
        computed on the first call and kept in the cache.
        """
        return self.decoder(input_ids, visual, cache)

    def styles_loss(self, batches: list[dict[str, Any]]) -> tuple[Tensor, Tensor]:
        """Mean total loss over the per-style batches of one step, and their shared visual tokens
        (every style's batch holds the same images, so they are encoded once)."""
        visual = self.visual_of(batches[0])
        return torch.stack([self.compute_loss(b, visual)["loss"] for b in batches]).mean(), visual

    def compute_loss(self, batch: dict[str, Any], visual: Tensor | None = None) -> dict[str, Tensor]:
        """Caption cross-entropy (label smoothing) + attribute head losses, weighted by the config.

        ``batch``: ``images`` [B,3,H,W] or ``features`` (``encode_features``' list of maps);
        ``input_ids``/``target_ids`` [B,T] (``-100`` targets ignored); ``head_targets`` (see
        ``heads.head_losses``). ``visual``: the batch's tokens when the caller already has them (the
        per-style batches of one step share their images). Returns ``loss`` (total), ``caption``,
        ``heads`` and ``head/<attribute>`` parts.
        """
        if visual is None:
            visual = self.visual_of(batch)
        logits, _ = self.decode(batch["input_ids"], visual)
        caption = F.cross_entropy(
            logits.flatten(0, 1), batch["target_ids"].flatten(), ignore_index=IGNORE_INDEX,
            label_smoothing=self.config.label_smoothing,
        )
        parts = head_losses(self.head_logits(visual), batch.get("head_targets", {}), self.head_loss_weights)
        heads = torch.stack(list(parts.values())).mean() if parts else caption.new_zeros(())
        out = {
            "loss": self.config.caption_weight * caption + self.config.head_weight * heads,
            "caption": caption.detach(),
            "heads": heads.detach(),
        }
        out.update({f"head/{name}": value.detach() for name, value in parts.items()})
        return out
