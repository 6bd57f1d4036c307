"""``personvlm evaluate``: figures from a fake describer with known answers, then the real command
end to end on a tiny randomly initialised model, and its errors on bad input."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from personvlm.cli import app
from personvlm.data.msp60k import load_jsonl
from personvlm.describer import Describer
from personvlm.evaluation.evaluate import EvaluationError, compute_metrics, describe_records
from personvlm.schema import PersonDescription, to_compact

PEOPLE = [
    ({"gender": "male", "age": "adult", "upper_color": "red", "upper_type": "jacket", "lower_color": "blue",
      "lower_type": "jeans", "bags": ("backpack",), "motion": "walking"}, (200, 30, 30),
     "A man in a red jacket and blue jeans walks with a backpack."),
    ({"gender": "female", "age": "adult", "upper_color": "white", "upper_type": "coat", "lower_color": "black",
      "lower_type": "trousers", "bags": (), "motion": "standing"}, (235, 235, 235),
     "A woman in a white coat and black trousers is standing."),
    ({"gender": "male", "age": "child", "upper_color": "green", "upper_type": "t-shirt", "lower_color": "gray",
      "lower_type": "shorts", "bags": (), "motion": "running"}, (30, 160, 40),
     "A boy in a green t-shirt and gray shorts is running."),
]


def make_dataset(root: Path, copies: int = 2) -> Path:
    """Images (a coloured torso on a background) plus an MSP60K-format JSONL with full labels."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(copies):
        for j, (values, color, answer) in enumerate(PEOPLE):
            img = Image.new("RGB", (64, 128), (90, 90, 90))
            img.paste(color, (16, 20, 48, 70))
            name = f"images/p{i}_{j}.png"
            img.save(root / name)
            desc = PersonDescription.from_values(values)
            rows.append({"image": name, "answer": answer, "compact": to_compact(desc),
                         "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in desc.values().items()}})
    path = root / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class OracleDescriber:
    """Knows the truth of the first ``right`` images per call and says ``unknown`` for the rest."""

    model_version = "oracle"

    def __init__(self, truths: dict[tuple[int, int, int], tuple[PersonDescription, str]], right: int) -> None:
        self.truths, self.right = truths, right

    def describe(self, images: Sequence[Image.Image], style: str = "compact") -> list[PersonDescription]:
        out = []
        for i, img in enumerate(images):
            truth, answer = self.truths[img.getpixel((32, 40))]
            desc = truth if i < self.right else PersonDescription()
            caption = to_compact(desc) if style == "compact" else answer
            out.append(desc.replace(caption=caption, style=style))
        return out


def _oracle(right: int) -> OracleDescriber:
    return OracleDescriber({c: (PersonDescription.from_values(v), a) for v, c, a in PEOPLE}, right)


def test_perfect_describer_scores_perfectly(tmp_path: Path) -> None:
    records = load_jsonl(make_dataset(tmp_path))
    samples, skipped = describe_records(_oracle(right=99), records, batch_size=4)
    metrics = compute_metrics(samples, "oracle", skipped)
    assert metrics["n"] == 6 and metrics["skipped"] == 0
    assert metrics["parse_rate"] == 1.0
    assert metrics["mA_heads"] == pytest.approx(1.0)
    assert metrics["mA_caption"] == pytest.approx(1.0)
    assert metrics["BLEU-1"] == pytest.approx(1.0) and metrics["ROUGE-L"] == pytest.approx(1.0)
    assert metrics["CIDEr-D"] > metrics["baseline"]["CIDEr-D"]
    assert metrics["baseline"]["caption"] in {a for _, _, a in PEOPLE}
    gender = next(r for r in metrics["per_attribute"] if r["name"] == "gender")
    assert gender == {**gender, "labelled": 6, "correct": 6, "coverage": 1.0, "caption_accuracy": 1.0}
    # never labelled (e.g. hair colour): no accuracy at all rather than a made-up one
    hair = next(r for r in metrics["per_attribute"] if r["name"] == "hair_color")
    assert hair["labelled"] == 0 and hair["accuracy"] is None
    json.dumps(metrics, allow_nan=False)


def test_abstaining_describer_loses_coverage_not_accuracy_bookkeeping(tmp_path: Path) -> None:
    records = load_jsonl(make_dataset(tmp_path, copies=1))
    # batch of 3, describer answers only the first image of each batch
    samples, _ = describe_records(_oracle(right=1), records, batch_size=3)
    metrics = compute_metrics(samples)
    gender = next(r for r in metrics["per_attribute"] if r["name"] == "gender")
    assert (gender["labelled"], gender["answered"], gender["abstained"], gender["correct"]) == (3, 1, 2, 1)
    assert gender["accuracy"] == pytest.approx(1 / 3) and gender["selective_accuracy"] == 1.0
    assert metrics["mA_heads"] < 1.0


def test_unreadable_image_is_named_or_skipped(tmp_path: Path) -> None:
    records = load_jsonl(make_dataset(tmp_path, copies=1))
    records[1].image.write_bytes(b"this is not a png")
    with pytest.raises(EvaluationError, match=rf"line 2: {records[1].image}"):
        describe_records(_oracle(right=99), records)
    samples, skipped = describe_records(_oracle(right=99), records, skip_unreadable=True)
    assert len(samples) == 2 and len(skipped) == 1 and str(records[1].image) in skipped[0]
    with pytest.raises(EvaluationError, match="no samples"):
        compute_metrics([])


# --- the command, on a real (tiny, random) model ------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Describer.tiny(seed=0).save_pretrained(tmp_path_factory.mktemp("model") / "tiny")


def test_evaluate_command_writes_metrics_and_report(tmp_path: Path, tiny_model: Path) -> None:
    data = make_dataset(tmp_path / "data")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["evaluate", "--model", str(tiny_model), "--data", str(data),
                                      "--out", str(out), "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("mA_heads", "mA_caption", "parse_rate", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L",
                "CIDEr-D", "per_attribute", "baseline", "color_confusion", "reliability"):
        assert key in metrics, key
    assert metrics["n"] == 6
    assert metrics["parse_rate"] == 1.0  # compact decoding is grammar-constrained
    assert 0.0 <= metrics["mA_heads"] <= 1.0
    html = (out / "report.html").read_text()
    assert html.count("data:image/jpeg;base64,") == 6
    assert "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html


def test_missing_image_fails_naming_it_then_skip_missing_evaluates_the_rest(tmp_path: Path, tiny_model: Path) -> None:
    data = make_dataset(tmp_path / "data", copies=1)
    missing = tmp_path / "data" / "images" / "p0_2.png"
    missing.unlink()
    args = ["evaluate", "--model", str(tiny_model), "--data", str(data), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "p0_2.png" in result.output and "data.jsonl:3" in result.output
    result = CliRunner().invoke(app, [*args, "--skip-missing"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (metrics["n"], metrics["skipped"]) == (2, 1)
    assert "p0_2.png" in metrics["skipped_items"][0]


def test_model_directory_missing_a_file_is_named(tmp_path: Path, tiny_model: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "vocab.json"):
        (broken / name).write_bytes((tiny_model / name).read_bytes())
    data = make_dataset(tmp_path / "data", copies=1)
    result = CliRunner().invoke(app, ["evaluate", "--model", str(broken), "--data", str(data),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "model.safetensors" in result.output
    assert not (tmp_path / "out").exists()
