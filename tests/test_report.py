"""The report's content without a browser: training curves from the model directory, gallery
marks, and a crop that vanished after evaluation."""

from __future__ import annotations

import json
import re
from pathlib import Path

from personvlm.data.msp60k import load_jsonl
from personvlm.evaluation.evaluate import compute_metrics, describe_records
from personvlm.evaluation.report import render_report
from test_evaluate import _oracle, make_dataset


def _evaluated(tmp_path: Path, right: int):
    records = load_jsonl(make_dataset(tmp_path / "data", copies=1))
    samples, skipped = describe_records(_oracle(right=right), records, batch_size=3)
    return samples, compute_metrics(samples, "oracle", skipped)


def test_training_curves_are_drawn_from_metrics_jsonl(tmp_path: Path) -> None:
    samples, metrics = _evaluated(tmp_path, right=3)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    without = render_report(samples, metrics, model_dir=model_dir)
    rows = [{"epoch": e, "train_loss": 3.0 / e, "val_loss": 3.2 / e, "val_head_ma": 0.5 + 0.1 * e, "lr": 1e-3}
            for e in (1, 2, 3)]
    (model_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with_curves = render_report(samples, metrics, model_dir=model_dir)
    assert with_curves.count("data:image/png;base64,") == without.count("data:image/png;base64,") + 1


def test_gallery_marks_right_wrong_and_abstained(tmp_path: Path) -> None:
    samples, metrics = _evaluated(tmp_path, right=1)  # first crop answered, two abstain everywhere
    html = render_report(samples, metrics)
    labelled_per_crop = len(samples[0].truth.known())
    assert len(re.findall(r'class="mark ok"', html)) == labelled_per_crop
    assert len(re.findall(r'class="mark abst"', html)) == 2 * labelled_per_crop
    assert "baseline: one fixed caption" in html
    assert "<script" not in html


def test_a_crop_deleted_after_evaluation_is_named_not_broken(tmp_path: Path) -> None:
    samples, metrics = _evaluated(tmp_path, right=3)
    samples[0].image.unlink()
    html = render_report(samples, metrics)
    assert html.count("data:image/jpeg;base64,") == len(samples) - 1
    assert samples[0].image.name in html and "not found" in html.lower()
