"""``personvlm data parse-eval``: the caption parser scored against one_hot labels."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personvlm.cli import app
from personvlm.data.captions import natural_caption
from personvlm.data.parse_eval import ParseEvalError, parse_row_range
from personvlm.schema import ONE_HOT_NAMES, PersonDescription, to_one_hot

SHARED_VAL = Path(__file__).resolve().parents[2] / "shared" / "msp60k" / "val.jsonl"
runner = CliRunner()


def _row(desc: PersonDescription, answer: str, image: str = "/nowhere/crop.jpg") -> str:
    return json.dumps({"image": image, "answer": answer, "one_hot": to_one_hot(desc)})


def _write_jsonl(path: Path, n: int = 30) -> Path:
    """Rows whose labels are exactly what their synthetic caption says: the parser should score 1.0."""
    rng = random.Random(1)
    lines = []
    for i in range(n):
        desc = PersonDescription.from_values({
            "gender": rng.choice(["male", "female"]), "age": rng.choice(["child", "adult", "elderly"]),
            "body": "normal", "orientation": rng.choice(["front", "back", "side"]),
            "upper_type": rng.choice(["jacket", "cotton-padded coat", "vest"]), "upper_sleeve": "long",
            "lower_type": rng.choice(["trousers", "shorts"]), "shoes_type": rng.choice(["casual", "boots"]),
            "headwear": rng.choice(["none", "hat", "helmet"]), "glasses": rng.choice(["no", "yes"]),
            "mask": "no", "scarf": "no", "gloves": "no", "bags": rng.choice([(), ("backpack",), ("handbag",)]),
            "held": (), "pose": (), "motion": rng.choice(["walking", "standing"]),
        })
        lines.append(_row(desc, natural_caption(desc, random.Random(i), {"background": "a plain wall"})))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_scores_a_jsonl_and_prints_table_and_json(tmp_path: Path) -> None:
    data = _write_jsonl(tmp_path / "data.jsonl")
    result = runner.invoke(app, ["data", "parse-eval", str(data), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["n"] == 30
    assert summary["mA"] == pytest.approx(1.0)
    assert set(summary["per_attribute"]) == set(ONE_HOT_NAMES)
    assert summary["per_attribute"]["Backpack"]["positive_recall"] == 1.0
    assert "Hands behind back" in summary["rare"]          # no positives at all: flagged as noise
    assert "label-based mA" in result.output and "noise" in result.output


def test_row_range_scores_a_part_of_the_file(tmp_path: Path) -> None:
    data = _write_jsonl(tmp_path / "data.jsonl")
    result = runner.invoke(app, ["data", "parse-eval", str(data), "--rows", "-10:", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["n"] == 10
    assert parse_row_range("0:2000", 3000) == slice(0, 2000)
    with pytest.raises(ParseEvalError, match="START:END"):
        parse_row_range("12", 30)
    with pytest.raises(ParseEvalError, match="selects no rows"):
        parse_row_range("40:50", 30)


def test_wrong_caption_lowers_the_score(tmp_path: Path) -> None:
    desc = PersonDescription.from_values({"gender": "female", "bags": ("backpack",)})
    lines = [_row(desc, "The image shows a man walking. He is not carrying anything.")] * 3
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["data", "parse-eval", str(tmp_path / "bad.jsonl"), "--json"])
    per = json.loads(result.output.strip().splitlines()[-1])["per_attribute"]
    assert per["Female"]["positive_recall"] == 0.0 and per["Backpack"]["positive_recall"] == 0.0


def test_bad_lines_are_reported_with_file_and_line(tmp_path: Path) -> None:
    good = _row(PersonDescription.from_values({"gender": "male"}), "The image shows a man.")
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join([good, "{not json", good, json.dumps({"image": "x.jpg", "answer": "a man",
                                                                   "one_hot": [1, 0]})]) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["data", "parse-eval", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2: malformed JSON" in result.output
    assert f"{path}:4: 'one_hot' must have 58 entries" in result.output


def test_missing_file_and_unlabelled_file_are_clear_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "parse-eval", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1 and "not found" in result.output
    path = tmp_path / "unlabelled.jsonl"
    path.write_text(json.dumps({"image": "a.jpg", "answer": "The image shows a man."}) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["data", "parse-eval", str(path)])
    assert result.exit_code == 2 and "no row has a 'one_hot'" in result.output


# Issue 2 targets mA >= 0.94 on val.jsonl; the parser measures 0.940 (the rest is mostly label
# noise, e.g. MSP60K's Dress label on rows whose caption names trousers). The floor is the target.
VAL_MA_FLOOR = 0.94


@pytest.mark.slow
def test_msp60k_val_score_does_not_regress() -> None:
    if not SHARED_VAL.is_file():
        pytest.skip(f"MSP60K caption sample not found at {SHARED_VAL} (shared data beside the repo)")
    result = runner.invoke(app, ["data", "parse-eval", str(SHARED_VAL), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["n"] == 3000
    assert summary["mA"] >= VAL_MA_FLOOR, f"parser mA {summary['mA']:.4f} on {SHARED_VAL}"
