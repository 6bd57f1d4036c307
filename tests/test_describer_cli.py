"""``personvlm describe`` and ``personvlm model info`` from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from crops import marked
from personvlm.cli import app
from personvlm.describer import MODEL_ENV, Describer
from personvlm.models.checkpoint import model_version
from personvlm.schema import parse

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    Describer.tiny(seed=0).save_pretrained(path)
    return path


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / "person.jpg"
    Image.fromarray(rng.integers(0, 256, (120, 50, 3), dtype=np.uint8)).save(good)
    gray16 = tmp_path / "gray16.png"
    Image.fromarray(rng.integers(0, 65535, (90, 40), dtype=np.uint16)).save(gray16)
    rgba = tmp_path / "rgba.png"
    rgba_img = marked((40, 90), (200, 10, 10)).convert("RGBA")
    rgba_img.putalpha(128)
    rgba_img.save(rgba)
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("this is not a picture")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    blank = tmp_path / "lens-covered.jpg"
    Image.new("RGB", (64, 128), (0, 0, 0)).save(blank)
    return {"good": good, "gray16": gray16, "rgba": rgba, "not_image": not_image, "empty": empty,
            "blank": blank, "missing": tmp_path / "missing.jpg"}


def test_describe_prints_a_caption_per_image(model_dir, images):
    result = runner.invoke(app, ["describe", str(images["good"]), str(images["rgba"]), "--model", str(model_dir)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(images["good"]), str(images["rgba"])]
    assert all(parse(line.split("\t")[1]).known() for line in lines)


def test_bad_images_get_their_own_error_and_the_rest_are_described(model_dir, images):
    order = ["good", "not_image", "gray16", "empty", "blank", "missing", "rgba"]
    result = runner.invoke(app, ["describe", *(str(images[k]) for k in order), "--json", "--model", str(model_dir)])
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    by_image = {row["image"]: row for row in rows}
    assert len(by_image) == 7
    assert by_image[str(images["blank"])]["error"] == "image is blank (one flat colour, 64x128): nothing to describe"
    for key in ("not_image", "empty", "blank", "missing"):
        assert "error" in by_image[str(images[key])] and "caption" not in by_image[str(images[key])]
        assert str(images[key]) in result.stderr
    for key in ("good", "gray16", "rgba"):
        row = by_image[str(images[key])]
        assert row["style"] == "compact" and row["model_version"] == model_version(model_dir)
        assert parse(row["caption"]).values() == {k: (tuple(v["value"]) if isinstance(v["value"], list)
                                                      else v["value"]) for k, v in row["attributes"].items()}


def test_missing_model_says_how_to_get_one(tmp_path, images, monkeypatch):
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "no-model"))
    result = runner.invoke(app, ["describe", str(images["good"])])
    assert result.exit_code == 2
    assert "personvlm train" in result.stderr and "no-model" in result.stderr


def test_bad_style_is_refused(model_dir, images):
    result = runner.invoke(app, ["describe", str(images["good"]), "--style", "poem", "--model", str(model_dir)])
    assert result.exit_code != 0 and "compact or natural" in result.output


def test_model_info_prints_components_and_refuses_oversized_configs(tmp_path, model_dir):
    result = runner.invoke(app, ["model", "info", "--model", str(model_dir)])
    assert result.exit_code == 0, result.output
    for part in ("encoder", "visual_tokens", "heads", "decoder", "all"):
        assert part in result.stdout
    big = tmp_path / "train.yaml"
    big.write_text("model:\n  width: 2048\n  heads: 16\n  layers: 24\n")
    result = runner.invoke(app, ["model", "info", "--config", str(big)])
    assert result.exit_code == 1 and "over the" in result.stdout and "refused" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("widht: 3\n")
    result = runner.invoke(app, ["model", "info", "--config", str(bad)])
    assert result.exit_code == 2 and "widht" in result.stdout
