"""The caption decoder as two ONNX graphs run by ONNX Runtime on the CPU: the prompt, then one token
per step.

Why: a natural caption is ~80 decoder steps; each step of the 4-layer, width-256 decoder is ~30
matrix-vector products and ~100 other tiny operators, so per-operator cost (PyTorch's dispatch and
Python, ~20 us per operator on the slow 2-core host), not arithmetic, sets the speed: ~8 ms per step
in PyTorch against ~3 ms for the same step in ONNX Runtime there (2026-12-05, README "Measured
figures").

Two graphs, the usual split for a KV-cached decoder:

* ``decoder_prefill.onnx``: prompt ids ``[B, T >= 2]`` and visual tokens -> logits ``[B, T, V]``,
  then per layer the self-attention keys/values of the prompt and the cross-attention keys/values
  of the visual tokens (computed once per caption);
* ``decoder_step.onnx``: one new id per row ``[B, 1]`` and per layer the cached keys/values ->
  logits ``[B, 1, V]`` and the self-attention keys/values grown by that token.

Between steps the cache is the PyTorch decoder's own ``KVCache`` (ONNX Runtime's arrays wrapped
without a copy), so the search code (rows leaving at ``<eos>``, beams reordered) is the same for
both backends; a test shows both decode the same tokens. Both graphs record the weights' digest
(``onnx_graphs``), like ``visual.onnx``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from personvlm.models.decoder import CaptionDecoder, KVCache, LayerCache
from personvlm.models.onnx_graphs import Graph, export_graph, load_graph
from personvlm.models.personvlm import PersonVLM

PREFILL_FILE, STEP_FILE = "decoder_prefill.onnx", "decoder_step.onnx"
# What each graph computes and how its inputs and outputs are laid out; bump them when ``_Prefill``
# or ``_Step`` change, so graphs written by an older exporter are rebuilt rather than misread.
PREFILL_FORMAT, STEP_FORMAT = "decoder_prefill/1", "decoder_step/1"
CACHE_PARTS = ("self_k", "self_v", "cross_k", "cross_v")  # per layer, in this order


def _cache_names(prefix: str, layers: int, parts: tuple[str, ...] = CACHE_PARTS) -> list[str]:
    return [f"{prefix}_{i}_{part}" for i in range(layers) for part in parts]


def _flatten(cache: KVCache, parts: tuple[str, ...] = CACHE_PARTS) -> list[Tensor]:
    return [getattr(layer, part) for layer in cache.layers for part in parts]


def _unflatten(tensors: Sequence[Tensor]) -> KVCache:
    """``_flatten``'s inverse: a cache from its tensors, layer by layer in ``CACHE_PARTS`` order."""
    n = len(CACHE_PARTS)
    return KVCache([LayerCache(*tensors[i:i + n]) for i in range(0, len(tensors), n)])


class _Prefill(nn.Module):
    """Prompt ids and visual tokens -> logits and the whole cache (layer by layer, ``CACHE_PARTS``)."""

    def __init__(self, decoder: CaptionDecoder) -> None:
        super().__init__()
        self.decoder = copy.deepcopy(decoder)

    def forward(self, input_ids: Tensor, visual: Tensor) -> tuple[Tensor, ...]:
        logits, cache = self.decoder(input_ids, visual, None)
        return (logits, *_flatten(cache))


class _Step(nn.Module):
    """One id per row and the cache -> logits and the grown self-attention keys/values."""

    def __init__(self, decoder: CaptionDecoder) -> None:
        super().__init__()
        self.decoder = copy.deepcopy(decoder)

    def forward(self, input_ids: Tensor, *past: Tensor) -> tuple[Tensor, ...]:
        cache = _unflatten(past)
        # The cross-attention keys/values are in the cache, so the visual tokens are not needed.
        logits, cache = self.decoder(input_ids, None, cache)  # type: ignore[arg-type]
        return (logits, *_flatten(cache, ("self_k", "self_v")))


def export(model: PersonVLM, prefill_path: str | Path, step_path: str | Path, digest: str) -> tuple[Path, Path]:
    """Write the decoder's prefill and step graphs, tagged with ``digest``, the weights they came
    from. Any batch size, prompts of 2 tokens or more (``<bos>`` and the style token), captions up
    to the config's ``max_len``."""
    decoder, cfg = model.decoder, model.config
    layers, max_len = len(decoder.blocks), cfg.max_len
    batch = torch.export.Dim("batch", min=1, max=4096)
    prompt = torch.export.Dim("prompt", min=2, max=max_len)
    past = torch.export.Dim("past", min=1, max=max_len - 1)
    rng = torch.Generator().manual_seed(0)  # the caller's random state is left alone
    ids = torch.randint(0, cfg.vocab_size, (2, 3), generator=rng)
    visual = torch.randn(2, cfg.grid[0] * cfg.grid[1], cfg.width, generator=rng)
    prefill_module = _Prefill(decoder).eval()
    prefill = export_graph(
        prefill_module, (ids, visual), prefill_path,
        input_names=["input_ids", "visual"], output_names=["logits", *_cache_names("present", layers)],
        dynamic_shapes=({0: batch, 1: prompt}, {0: batch}), digest=digest, graph_format=PREFILL_FORMAT)
    with torch.no_grad():  # example keys/values for the step graph (not inference tensors: export traces them)
        _, cache = prefill_module.decoder(ids, visual, None)
    cached = _flatten(cache)
    past_shapes = tuple({0: batch, 2: past} if part.startswith("self") else {0: batch}
                        for _ in range(layers) for part in CACHE_PARTS)
    step = export_graph(
        _Step(decoder), (ids[:, :1], *cached), step_path,
        input_names=["input_ids", *_cache_names("past", layers)],
        output_names=["logits", *_cache_names("present", layers, ("self_k", "self_v"))],
        dynamic_shapes=({0: batch}, past_shapes), digest=digest, graph_format=STEP_FORMAT)
    return prefill, step


class DecoderGraph(Graph):
    """A decoder graph: its inputs grow by a token per step, so no memory arena (``Graph``)."""

    arena = False


def _array(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())


class OnnxDecoder:
    """``decode(input_ids, visual, cache) -> (logits, cache)`` like ``PersonVLM.decode``, computed by
    the prefill and step graphs; pass ``decode`` to ``generation.generate``."""

    def __init__(self, prefill: DecoderGraph, step: DecoderGraph, max_len: int) -> None:
        self.prefill, self.step, self.max_len = prefill, step, max_len

    def decode(self, input_ids: Tensor, visual: Tensor, cache: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """Logits ``[B, T, V]`` for ``input_ids`` after the tokens in ``cache`` (None: ``input_ids``
        is the prompt, at least 2 tokens; then one token per call)."""
        past, new = (0 if cache is None else cache.length), input_ids.shape[1]
        if past + new > self.max_len:
            raise ValueError(f"sequence of {past + new} tokens exceeds the decoder's max_len {self.max_len}")
        ids = _array(input_ids.long())
        if cache is None:
            if new < 2:
                raise ValueError("the ONNX decoder starts from a prompt of 2 tokens or more (<bos> and the style)")
            logits, *parts = self.prefill.run({"input_ids": ids, "visual": _array(visual.float())})
            return torch.from_numpy(logits), _unflatten([torch.from_numpy(p) for p in parts])
        if new != 1:
            raise ValueError(f"the ONNX decoder takes one token per step after the prompt, not {new}")
        feeds = dict(zip(self.step.input_names, [ids, *(_array(t) for t in _flatten(cache))], strict=True))
        logits, *grown = self.step.run(feeds)
        for layer, k, v in zip(cache.layers, grown[0::2], grown[1::2], strict=True):
            layer.self_k, layer.self_v = torch.from_numpy(k), torch.from_numpy(v)
        return torch.from_numpy(logits), cache


def load(directory: str | Path, digest: str, max_len: int) -> OnnxDecoder:
    """``directory``'s decoder graphs, checked to come from the weights whose digest is ``digest``."""
    return OnnxDecoder(load_graph(directory, PREFILL_FILE, digest, PREFILL_FORMAT, DecoderGraph),
                       load_graph(directory, STEP_FILE, digest, STEP_FORMAT, DecoderGraph), max_len)


def max_difference(graphs: OnnxDecoder, model: PersonVLM, batch: int = 3, prompt: int = 3) -> float:
    """Largest absolute difference between the graphs' and PyTorch's logits and keys/values over the
    prompt and one step, on random visual tokens and ids (``export-onnx`` checks it)."""
    cfg = model.config
    rng = torch.Generator().manual_seed(1)
    visual = torch.randn(batch, cfg.grid[0] * cfg.grid[1], cfg.width, generator=rng)
    ids = torch.randint(0, cfg.vocab_size, (batch, prompt + 1), generator=rng)
    # A step replaces a layer's keys/values with new tensors, so the prompt's stay as they were.
    got_first, got_cache = graphs.decode(ids[:, :prompt], visual)
    got_prompt_kv = _flatten(got_cache)
    got_next, got_cache = graphs.decode(ids[:, prompt:], visual, got_cache)
    with torch.inference_mode():
        first, cache = model.decode(ids[:, :prompt], visual)
        prompt_kv = _flatten(cache)
        nxt, cache = model.decode(ids[:, prompt:], visual, cache)
    pairs = [(got_first, first), (got_next, nxt), *zip(got_prompt_kv, prompt_kv, strict=True),
             *zip(_flatten(got_cache), _flatten(cache), strict=True)]
    return max(float((a - b).abs().max()) for a, b in pairs)
