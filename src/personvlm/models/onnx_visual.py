"""The image -> visual tokens and head logits part of a model as an ONNX graph, run by ONNX
Runtime on the CPU.

Why: that part (encoder, visual-token projection, attribute heads) is all of a compact
description's model cost, and ONNX Runtime's CPU kernels (blocked-layout convolutions with the
ReLU6 fused in) ran it ~1.8x faster than PyTorch's on 2 cores (1.5-2x end to end: README,
"Measured figures"). The heads are in the graph too so that a compact description runs no PyTorch
operator big enough to wake PyTorch's OpenMP threads, which keep spinning after their work and took
the cores from ONNX Runtime's (batch-1 p99 ~100 ms, measured). The answer rule
(``prior_correction``, thresholds) and the caption decoder stay in PyTorch: calibration rewrites
them without touching the graph.

The graph is derived from the weights, never shipped beside them: ``personvlm model export-onnx
DIR`` (and ``make``, for the bundled model) writes ``DIR/visual.onnx`` and records in it the digest
of the ``model.safetensors`` it came from, so a graph left behind by older weights is detected and
not used (``load``).
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from personvlm.models.encoders import ENCODE_CHUNK, fused_for_inference
from personvlm.models.personvlm import PersonVLM
from personvlm.schema import ATTRIBUTES

ONNX_FILE = "visual.onnx"
DIGEST_KEY = "personvlm.weights_digest"
# What the graph computes and how its outputs are laid out; bump it when ``_VisualAndHeads`` changes,
# so graphs written by an older exporter are rebuilt rather than misread.
FORMAT_KEY, FORMAT = "personvlm.graph_format", "visual+head_logits/1"
INPUT, VISUAL, LOGITS = "images", "visual", "head_logits"


class _VisualAndHeads(nn.Module):
    """What the graph computes: ``encode_images`` and ``head_logits``, the logits concatenated in
    schema order (ONNX outputs are tensors, not dicts)."""

    def __init__(self, model: PersonVLM) -> None:
        super().__init__()
        self.encoder = fused_for_inference(model.encoder)
        self.visual_tokens = copy.deepcopy(model.visual_tokens)
        self.heads = copy.deepcopy(model.heads)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        visual = self.visual_tokens(self.encoder(images))
        logits = self.heads(visual)
        return visual, torch.cat([logits[a.name] for a in ATTRIBUTES], dim=1)


class OnnxVisualError(ValueError):
    """A graph that is missing, stale or unreadable; the message says how to make a good one."""


def export(model: PersonVLM, path: str | Path, digest: str) -> Path:
    """Write the model's images -> (visual tokens, head logits) graph to ``path`` (any batch size,
    the config's image size), tagged with ``digest``, the weights it came from (``weights_digest``)."""
    import onnx

    path = Path(path)
    module = _VisualAndHeads(model).eval()
    example = torch.zeros(2, 3, *model.config.image_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter's chatter is about its own internals (torchvision's detection ops not registered,
    # an optimiser pass skipping a Split node), nothing a user can act on; errors still show.
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecations
            program = torch.onnx.export(module, (example,), dynamo=True, input_names=[INPUT],
                                        output_names=[VISUAL, LOGITS], dynamic_shapes=({0: batch},), verbose=False)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {DIGEST_KEY: digest, FORMAT_KEY: FORMAT})
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


class OnnxVisual:
    """An ONNX Runtime session computing ``PersonVLM.encode_images`` and ``head_logits`` from
    float32 NCHW images."""

    def __init__(self, path: str | Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # what `--threads` / OMP_NUM_THREADS set
        options.inter_op_num_threads = 1
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
            # the same choice as PyTorch's OpenMP threads: on a shared CPU idle threads must sleep
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise OnnxVisualError(f"{path}: not a loadable ONNX graph ({exc}); rebuild it with "
                                  f"`personvlm model export-onnx {self.path.parent}`") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.digest, self.format = metadata.get(DIGEST_KEY), metadata.get(FORMAT_KEY)

    def __call__(self, images: Tensor, chunk: int = ENCODE_CHUNK) -> tuple[Tensor, dict[str, Tensor]]:
        """``(visual [B, N, D], {attribute: head logits [B, len(values)]})``, ``chunk`` images per run.

        Batch layout, chunks and their concatenation are done in NumPy, not PyTorch, whose OpenMP
        threads would wake for them and then spin (module doc).
        """
        pixels = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        runs = [self.session.run([VISUAL, LOGITS], {INPUT: pixels[i:i + chunk]}) for i in range(0, len(pixels), chunk)]
        visual, logits = (np.concatenate(parts) if len(parts) > 1 else parts[0] for parts in zip(*runs, strict=True))
        heads = torch.from_numpy(logits).split([len(a.values) for a in ATTRIBUTES], dim=1)
        return torch.from_numpy(visual), {a.name: part for a, part in zip(ATTRIBUTES, heads, strict=True)}


def load(directory: str | Path, digest: str) -> OnnxVisual:
    """``directory``'s graph, checked to come from the weights whose digest is ``digest``."""
    path = Path(directory) / ONNX_FILE
    if not path.is_file():
        raise OnnxVisualError(f"{path}: not found; write it with `personvlm model export-onnx {directory}`")
    visual = OnnxVisual(path)
    if visual.format != FORMAT:
        raise OnnxVisualError(f"{path} holds graph format {visual.format}, this personvlm reads {FORMAT}; "
                              f"rebuild it with `personvlm model export-onnx {directory}`")
    if visual.digest != digest:
        raise OnnxVisualError(f"{path} was exported from other weights ({visual.digest}, these are {digest}); "
                              f"rebuild it with `personvlm model export-onnx {directory}`")
    return visual
