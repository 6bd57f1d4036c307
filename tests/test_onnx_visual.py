"""The ONNX Runtime path: ``personvlm model export-onnx`` writes a graph that gives PyTorch's answers,
``Describer.from_pretrained`` uses it only when it matches the weights, and says so when it cannot."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from personvlm.cli import app
from personvlm.describer import Describer, default_model_dir
from personvlm.models import onnx_visual
from personvlm.models.onnx_graphs import DIGEST_KEY, FORMAT_KEY, OnnxGraphError
from personvlm.models.onnx_visual import ONNX_FILE
from personvlm.schema import ATTRIBUTES

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _crops(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (int(rng.integers(40, 220)), int(rng.integers(20, 100)), 3),
                                         dtype=np.uint8)) for _ in range(n)]


def _export(directory: Path, *extra: str) -> str:
    result = CliRunner().invoke(app, ["model", "export-onnx", str(directory), *extra])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def exported(exported_tiny: Path) -> Path:
    """A tiny model directory with its graphs (conftest)."""
    return exported_tiny


def test_export_writes_a_graph_that_auto_picks_up(exported: Path) -> None:
    assert (exported / ONNX_FILE).is_file()
    assert Describer.from_pretrained(exported).backend == "onnxruntime"
    assert Describer.from_pretrained(exported, backend="torch").backend == "torch"


@pytest.mark.parametrize("n", [1, 9])  # 9: two full chunks and a partial one, so any batch size works
def test_onnx_answers_equal_torch_answers(exported: Path, n: int) -> None:
    images = _crops(n, seed=n)
    fast = Describer.from_pretrained(exported, backend="onnx")
    slow = Describer.from_pretrained(exported, backend="torch")
    a, b = fast.describe(images), slow.describe(images)
    assert [d.values() for d in a] == [d.values() for d in b]
    assert [d.caption for d in a] == [d.caption for d in b]
    for da, db in zip(a, b, strict=True):
        for name in da.attributes:
            assert da.attributes[name].confidence == pytest.approx(db.attributes[name].confidence, abs=1e-4)
    for attribute in ("gender", "bags", "upper_color"):
        np.testing.assert_allclose(fast.head_probabilities(images, attribute),
                                   slow.head_probabilities(images, attribute), atol=1e-4)


def test_graph_outputs_equal_the_model_parts(exported: Path) -> None:
    describer = Describer.from_pretrained(exported, backend="torch")
    images = torch.randn(5, 3, *describer.config.image_size)
    visual, logits = onnx_visual.OnnxVisual(exported / ONNX_FILE)(images)
    with torch.inference_mode():
        expected_visual = describer.model.encode_images(images)
        expected_logits = describer.model.head_logits(expected_visual)
    torch.testing.assert_close(visual, expected_visual, atol=1e-4, rtol=1e-4)
    assert list(logits) == [a.name for a in ATTRIBUTES]
    for name, x in expected_logits.items():
        torch.testing.assert_close(logits[name], x, atol=1e-4, rtol=1e-4, msg=name)


def test_natural_captions_run_on_the_graphs_visual_tokens(exported: Path) -> None:
    images = _crops(3, seed=5)
    a = Describer.from_pretrained(exported, backend="onnx").describe(images, style="natural")
    b = Describer.from_pretrained(exported, backend="torch").describe(images, style="natural")
    assert [d.caption for d in a] == [d.caption for d in b]


def test_a_graph_of_other_weights_is_not_used(exported: Path, tmp_path: Path, caplog) -> None:
    directory = tmp_path / "model"
    shutil.copytree(exported, directory)
    Describer.tiny(seed=5).save_pretrained(directory)  # new weights, old graph
    with caplog.at_level(logging.WARNING, logger="personvlm.describer"):
        assert Describer.from_pretrained(directory).backend == "torch"
    assert "exported from other weights" in caplog.text and "export-onnx" in caplog.text
    with pytest.raises(OnnxGraphError, match="exported from other weights"):
        Describer.from_pretrained(directory, backend="onnx")
    _export(directory)
    assert Describer.from_pretrained(directory).backend == "onnxruntime"


def test_a_graph_of_another_format_is_not_used(exported: Path, tmp_path: Path) -> None:
    import onnx

    directory = tmp_path / "model"
    shutil.copytree(exported, directory)
    proto = onnx.load(str(directory / ONNX_FILE))
    onnx.helper.set_model_props(proto, {DIGEST_KEY: onnx_visual.OnnxVisual(exported / ONNX_FILE).digest,
                                        FORMAT_KEY: "visual/0"})
    onnx.save(proto, str(directory / ONNX_FILE))
    with pytest.raises(OnnxGraphError, match="graph format visual/0"):
        Describer.from_pretrained(directory, backend="onnx")
    assert Describer.from_pretrained(directory).backend == "torch"


def test_an_unreadable_graph_is_named(exported: Path, tmp_path: Path, caplog) -> None:
    directory = tmp_path / "model"
    shutil.copytree(exported, directory)
    (directory / ONNX_FILE).write_bytes(b"not a graph")
    with caplog.at_level(logging.WARNING, logger="personvlm.describer"):
        assert Describer.from_pretrained(directory).backend == "torch"
    assert "not a loadable ONNX graph" in caplog.text
    with pytest.raises(OnnxGraphError, match="not a loadable ONNX graph"):
        Describer.from_pretrained(directory, backend="onnx")


def test_missing_graph_auto_is_torch_and_onnx_says_how_to_make_one(tmp_path: Path) -> None:
    directory = Describer.tiny(seed=6).save_pretrained(tmp_path / "model")
    assert Describer.from_pretrained(directory).backend == "torch"
    with pytest.raises(OnnxGraphError, match="export-onnx"):
        Describer.from_pretrained(directory, backend="onnx")
    with pytest.raises(ValueError, match="unknown backend"):
        Describer.from_pretrained(directory, backend="tensorrt")


def test_describe_cli_backend_errors_exit_2(tmp_path: Path) -> None:
    directory = Describer.tiny(seed=6).save_pretrained(tmp_path / "model")
    image = tmp_path / "crop.png"
    _crops(1)[0].save(image)
    result = CliRunner().invoke(app, ["describe", str(image), "--model", str(directory), "--backend", "onnx"])
    assert result.exit_code == 2
    assert "export-onnx" in result.output


def test_export_refuses_a_graph_that_disagrees_and_keeps_the_old_one(exported: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "model"
    shutil.copytree(exported, directory)
    before = (directory / ONNX_FILE).read_bytes()
    run = onnx_visual.OnnxVisual.__call__

    def off_by_one(self, images):
        visual, logits = run(self, images)
        return visual + 1.0, logits

    monkeypatch.setattr(onnx_visual.OnnxVisual, "__call__", off_by_one)
    result = CliRunner().invoke(app, ["model", "export-onnx", str(directory)])
    assert result.exit_code == 1
    assert "differ from PyTorch" in result.output
    assert (directory / ONNX_FILE).read_bytes() == before
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []  # no staging file left


def test_a_failing_export_is_named_and_leaves_nothing(exported: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "model"
    shutil.copytree(exported, directory)
    before = (directory / ONNX_FILE).read_bytes()

    def broken(model, path, digest):
        Path(path).write_bytes(b"half a graph")
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnx_visual, "export", broken)
    result = CliRunner().invoke(app, ["model", "export-onnx", str(directory)])
    assert result.exit_code == 1
    assert "cannot export" in result.output and "unsupported operator" in result.output
    assert (directory / ONNX_FILE).read_bytes() == before
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []


def test_export_of_a_missing_model_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["model", "export-onnx", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "no model directory" in result.output


@pytest.mark.slow
def test_bundled_model_gives_the_same_answers_through_onnx(tmp_path: Path) -> None:
    """The shipped path: the bundled model exported afresh answers like PyTorch on rendered people."""
    from personvlm.data.synth import render_person

    directory = tmp_path / "default"
    directory.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.json"):
        shutil.copy2(default_model_dir() / name, directory / name)
    _export(directory)
    images = [render_person({}, seed=21, index=i).image for i in range(12)]
    a = Describer.from_pretrained(directory, backend="onnx").describe(images)
    b = Describer.from_pretrained(directory, backend="torch").describe(images)
    assert [d.values() for d in a] == [d.values() for d in b]
    gaps = [abs(x.attributes[k].confidence - y.attributes[k].confidence) for x, y in zip(a, b, strict=True)
            for k in x.attributes]
    assert max(gaps) < 1e-3
