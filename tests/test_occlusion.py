"""Band occlusion (``personvlm data real-probe``): masking, the per-band means with a scorer whose
evidence sits in a known band, head probabilities, and the command on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from personvlm.cli import app
from personvlm.evaluation.occlusion import band_effects, equal_bands, mask_band
from personvlm.schema import BY_NAME


def _two_tone(top: tuple[int, int, int], rest: tuple[int, int, int], h: int = 100) -> Image.Image:
    """A 40 x h crop coloured ``top`` in its top fifth and ``rest`` below."""
    pixels = np.empty((h, 40, 3), np.uint8)
    pixels[:] = rest
    pixels[: h // 5] = top
    return Image.fromarray(pixels)


def test_mask_band_fills_only_the_band_with_the_mean_colour() -> None:
    image = _two_tone((200, 0, 0), (0, 0, 100))
    masked = np.asarray(mask_band(image, 0.0, 0.2)).astype(int)
    mean = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert np.abs(masked[:20] - mean).max() <= 0.5
    assert (masked[20:] == np.asarray(image)[20:]).all()


def test_band_effects_find_the_band_that_holds_the_evidence() -> None:
    # The score is the redness of the top fifth: only masking that band may change it.
    def redness_on_top(images: list[Image.Image]) -> np.ndarray:
        return np.array([np.asarray(im)[: im.height // 5, :, 0].mean() / 255 for im in images])

    groups = {"red top": [_two_tone((255, 0, 0), (0, 0, 0))], "plain": [_two_tone((0, 0, 0), (0, 0, 0))]}
    rows = band_effects(redness_on_top, groups, equal_bands(5))
    assert [r.band for r in rows] == [None, *equal_bands(5)]
    assert rows[0].means == {"red top": 1.0, "plain": 0.0}
    assert rows[1].means["red top"] == pytest.approx(0.2, abs=0.01)  # top masked: mean red is 255/5
    assert all(r.means == rows[0].means for r in rows[2:])


def test_equal_bands_refuses_zero() -> None:
    with pytest.raises(ValueError, match="at least one band"):
        equal_bands(0)


def test_head_probabilities_are_what_the_description_answers() -> None:
    from personvlm.describer import Describer

    describer = Describer.tiny(seed=3)
    images = [_two_tone((255, 0, 0), (0, 0, 90)), _two_tone((10, 200, 10), (240, 240, 240))]
    gender = describer.head_probabilities(images, "gender")
    assert gender.shape == (2, len(BY_NAME["gender"].values))
    assert np.allclose(gender.sum(axis=1), 1.0, atol=1e-5)
    answers = [d.value("gender") for d in describer.describe(images)]  # the tiny model has no thresholds
    assert answers == [BY_NAME["gender"].values[i] for i in gender.argmax(axis=1)]
    bags = describer.head_probabilities(images, "bags")  # multi-label: one sigmoid per value
    assert bags.shape == (2, len(BY_NAME["bags"].values)) and ((bags > 0) & (bags < 1)).all()
    with pytest.raises(ValueError, match="unknown attribute"):
        describer.head_probabilities(images, "shoe size")


def _labels(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    rows = []
    for i, (gender, person) in enumerate([("male", 7), ("male", 7), ("female", "a"), ("unknown", None)]):
        _two_tone((i * 60, 0, 0), (0, 0, 200 - i * 40)).save(tmp_path / f"images/c{i}.png")
        rows.append({"image": f"images/c{i}.png", "gender": gender} | ({} if person is None else {"person_id": person}))
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_real_probe_command_json(tmp_path: Path) -> None:
    from personvlm.describer import Describer

    model = Describer.tiny(seed=1).save_pretrained(tmp_path / "model")
    labels = _labels(tmp_path)
    result = CliRunner().invoke(app, ["data", "real-probe", "--labels", str(labels), "--attribute", "gender",
                                      "--value", "female", "--bands", "4", "--model", str(model), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["groups"] == {"female": 1, "male": 2}  # the unknown-labelled crop is left out
    assert [r["band"] for r in out["rows"]] == [None, [0.0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1.0]]
    loaded = Describer.from_pretrained(model)
    males = [Image.open(tmp_path / f"images/c{i}.png").convert("RGB") for i in (0, 1)]
    female = BY_NAME["gender"].values.index("female")
    expected = float(loaded.head_probabilities(males, "gender")[:, female].mean())
    assert out["rows"][0]["means"]["male"] == pytest.approx(expected, abs=1e-5)


def test_real_probe_groups_by_person(tmp_path: Path) -> None:
    from personvlm.describer import Describer

    model = Describer.tiny(seed=1).save_pretrained(tmp_path / "model")
    args = ["data", "real-probe", "--labels", str(_labels(tmp_path)), "--attribute", "gender", "--value", "female",
            "--group-by", "person_id", "--bands", "2", "--model", str(model), "--json"]
    by_gender = json.loads(CliRunner().invoke(app, args[:8] + args[10:]).output.strip().splitlines()[-1])
    by_person = json.loads(CliRunner().invoke(app, args).output.strip().splitlines()[-1])
    assert by_person["group_by"] == "person_id"
    assert by_person["groups"] == {"7": 2, "a": 1}  # the crop without a person_id is left out
    for row_p, row_g in zip(by_person["rows"], by_gender["rows"], strict=True):  # person 7 = the two men
        assert row_p["means"]["7"] == pytest.approx(row_g["means"]["male"])
        assert row_p["means"]["a"] == pytest.approx(row_g["means"]["female"])


@pytest.mark.parametrize(("args", "message"), [
    (["--attribute", "shoe size", "--value", "x"], "not a schema attribute"),
    (["--attribute", "gender", "--value", "robot"], "not a value of gender"),
    (["--attribute", "headwear", "--value", "hat"], "not a labels field"),
])
def test_real_probe_names_a_bad_option(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["data", "real-probe", "--labels", str(_labels(tmp_path)), *args])
    assert result.exit_code == 2 and message in result.output


def test_real_probe_names_a_missing_labels_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "real-probe", "--labels", str(tmp_path / "none.jsonl"),
                                      "--attribute", "gender", "--value", "male"])
    assert result.exit_code == 1 and "labels file not found" in result.output


def test_real_probe_names_a_corrupt_image(tmp_path: Path) -> None:
    labels = _labels(tmp_path)
    (tmp_path / "images/c1.png").write_bytes(b"not a png")
    result = CliRunner().invoke(app, ["data", "real-probe", "--labels", str(labels),
                                      "--attribute", "gender", "--value", "male"])
    assert result.exit_code == 1 and "c1.png" in result.output and "Traceback" not in result.output
