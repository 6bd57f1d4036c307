"""The image -> visual tokens and head logits part of a model as an ONNX graph, run by ONNX
Runtime on the CPU.

Why: that part (encoder, visual-token projection, attribute heads) is all of a compact
description's model cost, and ONNX Runtime's CPU kernels (blocked-layout convolutions with the
ReLU6 fused in) ran it ~1.8x faster than PyTorch's on 2 cores (1.5-2x end to end: README,
"Measured figures"). The heads are in the graph too so that a compact description runs no PyTorch
operator big enough to wake PyTorch's OpenMP threads, which keep spinning after their work and took
the cores from ONNX Runtime's (batch-1 p99 ~100 ms, measured). The answer rule
(``prior_correction``, thresholds) stays in PyTorch: calibration rewrites it without touching the
graph. The caption decoder has graphs of its own (``onnx_decoder``).

The graph is derived from the weights, never shipped beside them: ``personvlm model export-onnx
DIR`` (and ``make``, for the bundled model) writes ``DIR/visual.onnx`` and records in it the digest
of the ``model.safetensors`` it came from, so a graph left behind by older weights is detected and
not used (``load``; ``onnx_graphs``).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from personvlm.models.encoders import ENCODE_CHUNK, fused_for_inference
from personvlm.models.onnx_graphs import Graph, export_graph, load_graph
from personvlm.models.personvlm import PersonVLM
from personvlm.schema import ATTRIBUTES

ONNX_FILE = "visual.onnx"
# What the graph computes and how its outputs are laid out; bump it when ``_VisualAndHeads`` changes,
# so graphs written by an older exporter are rebuilt rather than misread.
FORMAT = "visual+head_logits/2"  # 2: visual tokens by ``VisualTokens.from_maps``
INPUT, VISUAL, LOGITS = "images", "visual", "head_logits"


class _VisualAndHeads(nn.Module):
    """What the graph computes: ``encode_images`` (in the form ``VisualTokens.from_maps`` computes
    faster) and ``head_logits``, the logits concatenated in schema order (ONNX outputs are tensors,
    not dicts)."""

    def __init__(self, model: PersonVLM) -> None:
        super().__init__()
        self.encoder = fused_for_inference(model.encoder)
        self.visual_tokens = copy.deepcopy(model.visual_tokens)
        self.heads = copy.deepcopy(model.heads)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        maps = self.encoder.maps(images)
        visual = self.visual_tokens.from_maps(maps, self.encoder.output_size(maps))
        logits = self.heads(visual)
        return visual, torch.cat([logits[a.name] for a in ATTRIBUTES], dim=1)


def export(model: PersonVLM, path: str | Path, digest: str) -> Path:
    """Write the model's images -> (visual tokens, head logits) graph to ``path`` (any batch size,
    the config's image size), tagged with ``digest``, the weights it came from (``weights_digest``)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    return export_graph(_VisualAndHeads(model), (torch.zeros(2, 3, *model.config.image_size),), path,
                        input_names=[INPUT], output_names=[VISUAL, LOGITS], dynamic_shapes=({0: batch},),
                        digest=digest, graph_format=FORMAT)


class OnnxVisual(Graph):
    """An ONNX Runtime session computing ``PersonVLM.encode_images`` and ``head_logits`` from
    float32 NCHW images."""

    def __call__(self, images: Tensor, chunk: int = ENCODE_CHUNK) -> tuple[Tensor, dict[str, Tensor]]:
        """``(visual [B, N, D], {attribute: head logits [B, len(values)]})``, ``chunk`` images per run.

        Batch layout, chunks and their concatenation are done in NumPy, not PyTorch, whose OpenMP
        threads would wake for them and then spin (module doc).
        """
        pixels = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        runs = [self.run({INPUT: pixels[i:i + chunk]}) for i in range(0, len(pixels), chunk)]
        visual, logits = (np.concatenate(parts) if len(parts) > 1 else parts[0] for parts in zip(*runs, strict=True))
        heads = torch.from_numpy(logits).split([len(a.values) for a in ATTRIBUTES], dim=1)
        return torch.from_numpy(visual), {a.name: part for a, part in zip(ATTRIBUTES, heads, strict=True)}


def load(directory: str | Path, digest: str) -> OnnxVisual:
    """``directory``'s graph, checked to come from the weights whose digest is ``digest``."""
    return load_graph(directory, ONNX_FILE, digest, FORMAT, OnnxVisual)


def max_difference(graph: OnnxVisual, model: PersonVLM, batch: int = 3) -> float:
    """Largest absolute difference between the graph's and PyTorch's visual tokens and head logits
    on random images (``export-onnx`` checks it)."""
    images = torch.rand(batch, 3, *model.config.image_size, generator=torch.Generator().manual_seed(0))
    got_visual, got_logits = graph(images)
    with torch.inference_mode():
        visual = model.encode_images(images)
        logits = model.head_logits(visual)
    return max(float((got_visual - visual).abs().max()),
               *(float((got_logits[name] - x).abs().max()) for name, x in logits.items()))
