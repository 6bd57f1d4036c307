"""The real-crop scorer: value mapping, unknown handling and exact accuracies with a fake describer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from crops import marked
from personvlm.cli import app
from personvlm.evaluation.real_eval import (
    FIELDS,
    LabelsError,
    evaluate_real,
    load_labels,
    map_description,
    summary_json,
)
from personvlm.schema import PersonDescription

SHARED = Path(__file__).resolve().parents[2] / "shared"


def _labels_file(tmp_path: Path, rows: list[dict]) -> Path:
    (tmp_path / "images").mkdir(exist_ok=True)
    for i, row in enumerate(rows):
        row.setdefault("image", f"images/c{i}.png")
        marked((40, 100), (i * 40, 0, 0)).save(tmp_path / row["image"])
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_mapping_to_the_label_vocabulary() -> None:
    desc = PersonDescription.from_values({
        "headwear": "cap", "upper_type": "cotton-padded coat", "lower_type": "long skirt", "hair_length": "bald",
        "upper_sleeve": "sleeveless", "bags": (), "held": ("umbrella",), "gender": "female",
    })
    mapped = map_description(desc)
    assert set(mapped) == set(FIELDS)
    assert mapped["hat"] == "yes" and mapped["upper_type"] == "coat" and mapped["lower_type"] == "skirt"
    assert mapped["hair_length"] == "short" and mapped["upper_sleeve"] == "short"
    assert mapped["bag"] == "none" and mapped["holding"] == "umbrella" and mapped["gender"] == "female"
    assert mapped["age"] == "unknown"
    assert map_description(PersonDescription.from_values({"headwear": "none", "bags": ("backpack", "handbag")}))[
        "hat"] == "no"
    assert map_description(PersonDescription.from_values({"bags": ("backpack", "handbag")}))["bag"] == "backpack + handbag"


def test_exact_accuracies_and_coverage_with_a_fake_describer(tmp_path: Path) -> None:
    rows = [
        {"gender": "male", "upper_color": "black", "hat": "no", "bag": "none"},
        {"gender": "female", "upper_color": "red", "hat": "yes", "bag": "handbag"},
        {"gender": "male", "upper_color": "unknown", "hat": "no", "bag": "backpack"},
        {"gender": "unknown", "upper_color": "blue", "hat": "unknown", "bag": "unknown"},
    ]
    crops = load_labels(_labels_file(tmp_path, rows))
    answers = [
        {"gender": "male", "upper_color": "black", "headwear": "none", "bags": ()},        # all right
        {"gender": "male", "upper_color": "unknown", "headwear": "hat", "bags": ("handbag",)},  # gender wrong, colour abstains
        {"gender": "unknown", "upper_color": "white", "headwear": "helmet", "bags": ("backpack", "handbag")},
        {"gender": "female", "upper_color": "blue", "headwear": "none", "bags": ()},
    ]
    calls = []

    def fake_describe(images: list[Image.Image]) -> list[PersonDescription]:
        calls.append(len(images))
        return [PersonDescription.from_values(a) for a in answers]

    scores, _ = evaluate_real(fake_describe, crops)
    by = {s.field: s for s in scores}
    assert calls == [4]
    # gender: labelled 3 (row 4 unknown); right on row 1 only; row 3 abstained
    assert (by["gender"].labelled, by["gender"].correct, by["gender"].answered) == (3, 1, 2)
    assert by["gender"].accuracy == pytest.approx(1 / 3) and by["gender"].coverage == pytest.approx(2 / 3)
    # upper colour: labelled rows 1, 2, 4; right on 1 and 4; row 2 abstained
    assert by["upper_color"].accuracy == pytest.approx(2 / 3) and by["upper_color"].coverage == pytest.approx(2 / 3)
    # hat: rows 1-3 labelled; hat -> yes is right, but helmet -> yes is wrong for row 3's "no"
    assert by["hat"].accuracy == pytest.approx(2 / 3) and by["hat"].coverage == 1.0
    # bag: row 3's two bags cannot equal one "backpack"
    assert by["bag"].accuracy == pytest.approx(2 / 3)
    # a field nobody labelled has no accuracy
    assert by["age"].labelled == 0 and by["age"].accuracy is None
    summary = summary_json(scores, len(crops))
    assert summary["n"] == 4 and summary["gender"] == pytest.approx(1 / 3)
    assert summary["coverage"]["upper_color"] == pytest.approx(2 / 3)


def test_bad_labels_are_listed_with_line_numbers(tmp_path: Path) -> None:
    path = _labels_file(tmp_path, [{"gender": "male", "person_id": [1]}, {"gender": "robot"}])
    path.write_text(path.read_text() + "{not json\n" + json.dumps({"image": "images/nope.png"}) + "\n")
    with pytest.raises(LabelsError) as err:
        load_labels(path)
    text = str(err.value)
    assert "labels.jsonl:1: person_id=[1] is not an integer or a string" in text
    assert "labels.jsonl:2: gender='robot'" in text
    assert "labels.jsonl:3: malformed JSON" in text
    assert "labels.jsonl:4: image not found" in text and "nope.png" in text
    with pytest.raises(LabelsError, match="not found"):
        load_labels(tmp_path / "missing.jsonl")


def test_shared_real_crops_load() -> None:
    labels = SHARED / "realcrops" / "labels.jsonl"
    if not labels.is_file():
        pytest.skip(f"shared real crops not present at {labels}")
    crops = load_labels(labels)
    assert len(crops) >= 30
    assert all(c.image.is_file() for c in crops)
    assert all(c.person != "unknown" for c in crops)  # every shared crop names its person


def test_real_eval_command_json_last_line(tmp_path: Path) -> None:
    from personvlm.describer import Describer

    model = Describer.tiny(seed=1).save_pretrained(tmp_path / "model")
    path = _labels_file(tmp_path, [{"gender": "male", "upper_color": "black"}, {"gender": "female"}])
    result = CliRunner().invoke(app, ["data", "real-eval", "--labels", str(path), "--model", str(model), "--json"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert set(last) == {*FIELDS, "coverage", "n"}
    assert last["n"] == 2 and set(last["coverage"]) == set(FIELDS)
    assert last["age"] is None and 0.0 <= last["gender"] <= 1.0


def test_a_labels_file_that_is_not_utf8_is_named_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_bytes(b'{"image": "a.png", "gender": "m\xe4le"}\n')
    with pytest.raises(LabelsError, match=r"labels\.jsonl: not UTF-8 text"):
        load_labels(path)
