"""What every ONNX graph of a model directory shares: export from a PyTorch module, an ONNX Runtime
session on the CPU threads PyTorch was given, and the checks that a graph matches the weights.

A model directory's graphs (``onnx_visual``: image -> visual tokens and head logits;
``onnx_decoder``: the caption decoder's first and later steps) are derived from its
``model.safetensors``, never shipped beside them. Each records the digest of the weights it came
from and the format of what it computes, so a graph left behind by older weights or an older
exporter is detected and not used.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

DIGEST_KEY = "personvlm.weights_digest"
FORMAT_KEY = "personvlm.graph_format"


class OnnxGraphError(ValueError):
    """A graph that is missing, stale or unreadable; the message says how to make a good one."""


def rebuild_hint(directory: Path) -> str:
    return f"rebuild it with `personvlm model export-onnx {directory}`"


def export_graph(module: nn.Module, args: tuple[Any, ...], path: str | Path, *, input_names: Sequence[str],
                 output_names: Sequence[str], dynamic_shapes: Any, digest: str, graph_format: str) -> Path:
    """Write ``module`` (in eval mode) traced on ``args`` to ``path``, tagged with the weights'
    ``digest`` and ``graph_format``."""
    import onnx

    path = Path(path)
    # The exporter's chatter is about its own internals (torchvision's detection ops not registered,
    # an optimiser pass skipping a Split node), nothing a user can act on; errors still show.
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecations
            # one Dim shared by several inputs (the decoder's cached keys/values) is named once
            warnings.filterwarnings("ignore", message="# The axis name: .* will not be used", category=UserWarning)
            program = torch.onnx.export(module.eval(), args, dynamo=True, input_names=list(input_names),
                                        output_names=list(output_names), dynamic_shapes=dynamic_shapes,
                                        verbose=False)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {DIGEST_KEY: digest, FORMAT_KEY: graph_format})
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


G = TypeVar("G", bound="Graph")


class Graph:
    """An ONNX Runtime CPU session of one graph, with the digest and format it records.

    ``arena=False`` for graphs whose input sizes change call by call (the decoder's growing KV
    cache): ONNX Runtime's memory arena keeps every size it was asked for, which held 100-160 MB more
    at batch 32 for no measurable speed (README, "Measured figures").
    """

    arena = True

    def __init__(self, path: str | Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # what `--threads` / OMP_NUM_THREADS set
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = self.arena
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
            # the same choice as PyTorch's OpenMP threads: on a shared CPU idle threads must sleep
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise OnnxGraphError(f"{path}: not a loadable ONNX graph ({exc}); {rebuild_hint(self.path.parent)}") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.digest, self.format = metadata.get(DIGEST_KEY), metadata.get(FORMAT_KEY)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, feeds: Mapping[str, Any]) -> list[Any]:
        """All outputs, in the graph's order, as NumPy arrays."""
        return self.session.run(None, dict(feeds))


def load_graph(directory: str | Path, name: str, digest: str, graph_format: str, kind: type[G]) -> G:
    """``directory/name`` as a ``kind`` (a ``Graph``), checked to compute ``graph_format`` from the
    weights whose digest is ``digest``."""
    directory = Path(directory)
    path = directory / name
    if not path.is_file():
        raise OnnxGraphError(f"{path}: not found; write it with `personvlm model export-onnx {directory}`")
    graph = kind(path)
    if graph.format != graph_format:
        raise OnnxGraphError(f"{path} holds graph format {graph.format}, this personvlm reads {graph_format}; "
                             f"{rebuild_hint(directory)}")
    if graph.digest != digest:
        raise OnnxGraphError(f"{path} was exported from other weights ({graph.digest}, these are {digest}); "
                             f"{rebuild_hint(directory)}")
    return graph
