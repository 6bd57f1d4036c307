"""The caption decoder's ONNX graphs: the same tokens as PyTorch's decoder for every search, picked
up by ``Describer.from_pretrained`` only when they match the weights, with a warning when an export
lacks them."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from personvlm.describer import Describer
from personvlm.generation import GenerationConfig, generate
from personvlm.models import onnx_decoder
from personvlm.models.onnx_decoder import PREFILL_FILE, STEP_FILE
from personvlm.models.onnx_graphs import OnnxGraphError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _crops(n: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (int(rng.integers(60, 200)), int(rng.integers(30, 90)), 3),
                                         dtype=np.uint8)) for _ in range(n)]


@pytest.fixture(scope="module")
def both(exported_tiny: Path) -> tuple[Describer, Describer]:
    """The tiny exported model through its graphs, and through PyTorch."""
    return Describer.from_pretrained(exported_tiny), Describer.from_pretrained(exported_tiny, backend="torch")


def test_export_writes_decoder_graphs_that_auto_picks_up(exported_tiny: Path, both) -> None:
    fast, slow = both
    assert (exported_tiny / PREFILL_FILE).is_file() and (exported_tiny / STEP_FILE).is_file()
    assert fast.caption_backend == "onnxruntime" and slow.caption_backend == "torch"


@pytest.mark.parametrize("n", [1, 5])
def test_natural_captions_equal_torch_captions(both, n: int) -> None:
    fast, slow = both
    images = _crops(n, seed=n)
    a = [d.caption for d in fast.describe(images, style="natural")]
    b = [d.caption for d in slow.describe(images, style="natural")]
    assert a == b
    assert all(a)  # the random tiny model still says something


@pytest.mark.parametrize("config", [
    GenerationConfig(max_new_tokens=40),
    GenerationConfig(max_new_tokens=40, num_beams=3),
    GenerationConfig(max_new_tokens=40, do_sample=True, temperature=1.5, top_k=20, seed=7),
    GenerationConfig(max_new_tokens=40, repetition_penalty=1.3, no_repeat_ngram_size=2),
    GenerationConfig(max_new_tokens=20, use_cache=False),
], ids=["greedy", "beam", "sampling", "penalties", "no-cache"])
def test_every_search_decodes_the_same_tokens(both, config: GenerationConfig) -> None:
    """Rows leave the batch at <eos> and beams reorder the cache: the graphs' cache must follow."""
    fast, slow = both
    visual = torch.randn(4, slow.model.config.grid[0] * slow.model.config.grid[1], slow.model.config.width,
                         generator=torch.Generator().manual_seed(3))
    prompt = [slow.vocab.bos_id, slow.vocab.style_id("natural")]
    want = generate(slow.model, visual, prompt, config)
    got = generate(fast._onnx_decoder.decode, visual, prompt, config)
    assert got == want
    assert max(len(row) for row in want) > 5


def test_graph_logits_and_cache_equal_pytorch(both) -> None:
    fast, slow = both
    assert onnx_decoder.max_difference(fast._onnx_decoder, slow.model) < 1e-4


def test_decode_refuses_what_the_graphs_cannot_do(both) -> None:
    decoder = both[0]._onnx_decoder
    cfg = both[1].model.config
    visual = torch.zeros(1, cfg.grid[0] * cfg.grid[1], cfg.width)
    with pytest.raises(ValueError, match="exceeds the decoder's max_len"):
        decoder.decode(torch.zeros(1, cfg.max_len + 1, dtype=torch.long), visual)
    with pytest.raises(ValueError, match="prompt of 2 tokens"):
        decoder.decode(torch.zeros(1, 1, dtype=torch.long), visual)
    _, cache = decoder.decode(torch.zeros(1, 2, dtype=torch.long), visual)
    with pytest.raises(ValueError, match="one token per step"):
        decoder.decode(torch.zeros(1, 2, dtype=torch.long), visual, cache)


def test_an_export_without_decoder_graphs_warns_and_decodes_in_pytorch(exported_tiny: Path, tmp_path: Path,
                                                                      caplog) -> None:
    """A directory exported before the decoder graphs existed: captions still work, and the user is
    told how to get the faster ones."""
    directory = tmp_path / "model"
    shutil.copytree(exported_tiny, directory)
    (directory / STEP_FILE).unlink()
    with caplog.at_level(logging.WARNING, logger="personvlm.describer"):
        describer = Describer.from_pretrained(directory)
    assert describer.backend == "onnxruntime" and describer.caption_backend == "torch"
    assert "using PyTorch for captions" in caplog.text and "export-onnx" in caplog.text
    assert describer.describe(_crops(1, seed=9), style="natural")[0].caption
    with pytest.raises(OnnxGraphError, match="decoder_step.onnx: not found"):
        Describer.from_pretrained(directory, backend="onnx")


def test_decoder_graphs_of_other_weights_are_not_used(exported_tiny: Path, tmp_path: Path, caplog) -> None:
    directory = tmp_path / "model"
    shutil.copytree(exported_tiny, directory)
    other = Describer.tiny(seed=5).save_pretrained(tmp_path / "other")
    for name in (PREFILL_FILE, STEP_FILE):  # graphs of other weights beside this model's
        shutil.copy2(exported_tiny / name, other / name)
    shutil.copy2(exported_tiny / "visual.onnx", other / "visual.onnx")
    with caplog.at_level(logging.WARNING, logger="personvlm.describer"):
        assert Describer.from_pretrained(other).caption_backend == "torch"
    assert "exported from other weights" in caplog.text
    with pytest.raises(OnnxGraphError, match="exported from other weights"):
        Describer.from_pretrained(other, backend="onnx")


def test_export_refuses_decoder_graphs_that_disagree_and_keeps_the_old_ones(exported_tiny: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from personvlm.cli import app

    directory = tmp_path / "model"
    shutil.copytree(exported_tiny, directory)
    before = {p.name: p.read_bytes() for p in directory.glob("*.onnx")}
    monkeypatch.setattr(onnx_decoder, "max_difference", lambda graphs, model: 0.5)
    result = CliRunner().invoke(app, ["model", "export-onnx", str(directory)])
    assert result.exit_code == 1
    assert "differ from PyTorch by 5.00e-01" in result.output
    assert {p.name: p.read_bytes() for p in directory.glob("*.onnx")} == before  # all three kept
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []  # no staging file left
