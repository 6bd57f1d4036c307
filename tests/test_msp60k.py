"""The MSP60K-format loader: every bad row reported with file:line, missing images never replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from personvlm.cli import app
from personvlm.data.msp60k import DatasetError, load_jsonl, scan_jsonl
from personvlm.schema import ONE_HOT_LEN, PersonDescription, to_compact, to_one_hot

SHARED = Path(__file__).resolve().parents[2] / "shared"
DESC = PersonDescription.from_values({"gender": "female", "age": "adult", "upper_color": "red",
                                      "upper_type": "jacket", "bags": ("backpack",), "motion": "walking"})


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 64), (200, 10, 10)).save(path)


def _row(image: str, **extra: object) -> str:
    return json.dumps({"image": image, "answer": "A woman in a red jacket.", **extra})


def test_valid_rows_load_with_all_fields(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "a_001.jpg")
    _image(tmp_path / "images" / "b_001.jpg")
    one_hot = to_one_hot(DESC)
    lines = [
        _row("images/a_001.jpg", one_hot=one_hot, compact=to_compact(DESC),
             attributes={k: list(v) if isinstance(v, tuple) else v for k, v in DESC.values().items()}),
        "",  # blank lines are allowed
        _row("images/b_001.jpg"),
    ]
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    recs = load_jsonl(tmp_path / "data.jsonl")
    assert [r.line for r in recs] == [1, 3]
    assert recs[0].image == tmp_path / "images" / "a_001.jpg"
    assert recs[0].one_hot == one_hot
    assert recs[0].attributes is not None and recs[0].attributes.values() == DESC.values()
    assert recs[0].compact == to_compact(DESC)
    assert recs[1].one_hot is None and recs[1].attributes is None and recs[1].labels() is None


def test_every_problem_is_reported_with_file_and_line(tmp_path: Path) -> None:
    _image(tmp_path / "ok.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    lines = [
        _row("ok.jpg"),
        "{not json",
        _row("ok.jpg", one_hot=[0, 1]),
        _row("ok.jpg", one_hot=[2] * ONE_HOT_LEN),
        _row("gone.jpg"),
        json.dumps({"image": "ok.jpg"}),
        _row("ok.jpg", attributes={"gender": "robot"}),
        _row("ok.jpg", compact="this is not compact grammar !!"),
        _row("empty.jpg"),
        "[1, 2]",
    ]
    f = tmp_path / "bad.jsonl"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as ei:
        load_jsonl(f)
    errs = ei.value.errors
    text = "\n".join(errs)
    expected = {2: "malformed JSON", 3: "58 entries, got 2", 4: "0 or 1", 5: "image not found",
                6: "'answer'", 7: "robot", 8: "compact grammar", 9: "empty", 10: "JSON object"}
    for line, what in expected.items():
        assert any(e.startswith(f"{f}:{line}:") and what in e for e in errs), (line, what, text)
    assert not any(e.startswith(f"{f}:1:") for e in errs)
    assert str(ei.value).startswith(f"{f}: 9 problem(s)")


def test_skip_missing_counts_instead_of_failing(tmp_path: Path) -> None:
    _image(tmp_path / "ok.jpg")
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join([_row("ok.jpg"), _row("gone1.jpg"), _row("gone2.jpg")]) + "\n")
    with pytest.raises(DatasetError) as ei:
        load_jsonl(f)
    assert len(ei.value.errors) == 2
    res = scan_jsonl(f, skip_missing=True)
    assert [r.line for r in res.records] == [1]
    assert len(res.skipped_missing) == 2 and "gone2.jpg" in res.skipped_missing[1]


def test_skip_missing_still_fails_on_other_problems(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text(_row("gone.jpg", one_hot=[0]) + "\n")
    with pytest.raises(DatasetError, match="58 entries"):
        load_jsonl(f, skip_missing=True)


def test_image_root_and_msp60k_absolute_paths(tmp_path: Path) -> None:
    _image(tmp_path / "imgs" / "part1_2_003.jpg")
    f = tmp_path / "meta" / "d.jsonl"
    f.parent.mkdir()
    f.write_text(_row("/workspace/data/MSP60k/SUBMIT/images/part1_2_003.jpg") + "\n")
    with pytest.raises(DatasetError, match="image not found"):
        load_jsonl(f)
    recs = load_jsonl(f, image_root=tmp_path / "imgs")
    assert recs[0].image == tmp_path / "imgs" / "part1_2_003.jpg"


def test_missing_file_and_root_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_jsonl(tmp_path / "nope.jsonl")
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(DatasetError, match="empty"):
        load_jsonl(tmp_path / "e.jsonl")
    with pytest.raises(DatasetError, match="not a directory"):
        load_jsonl(tmp_path / "e.jsonl", image_root=tmp_path / "nodir")


def test_real_msp60k_val_reports_all_missing_images() -> None:
    val = SHARED / "msp60k" / "val.jsonl"
    if not val.is_file():
        pytest.skip(f"shared MSP60K sample not found at {val}")
    with pytest.raises(DatasetError) as ei:
        load_jsonl(val)
    assert len(ei.value.errors) == 3000
    assert all("image not found" in e for e in ei.value.errors)
    res = scan_jsonl(val, skip_missing=True)
    assert res.records == [] and len(res.skipped_missing) == 3000


def test_validate_command(tmp_path: Path) -> None:
    _image(tmp_path / "ok.jpg")
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join([_row("ok.jpg", one_hot=to_one_hot(DESC)), _row("gone.jpg")]) + "\n")
    runner = CliRunner()
    bad = runner.invoke(app, ["data", "validate", str(f)])
    assert bad.exit_code == 1
    assert f"{f}:2: image not found" in bad.output and "INVALID: 1 problem" in bad.output
    ok = runner.invoke(app, ["data", "validate", str(f), "--skip-missing"])
    assert ok.exit_code == 0, ok.output
    assert "1 valid record(s), 1 skipped" in ok.output and "one_hot 1/1" in ok.output
