"""``personvlm bench``: runs end to end and reports the figures the README quotes (no timing bars
here: speed is measured by running the command, not asserted by tests)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from personvlm.cli import app
from personvlm.describer import Describer

KEYS = {"p50_ms", "p99_ms", "images_per_s", "peak_rss_mb", "preprocess_ms", "encode_ms", "decode_ms"}


@pytest.mark.parametrize(("style", "batch"), [("compact", 1), ("natural", 3)])
def test_bench_json_last_line(tmp_path, style, batch):
    Describer.tiny(seed=0).save_pretrained(tmp_path / "m")
    result = CliRunner().invoke(app, ["bench", "--model", str(tmp_path / "m"), "--n", "3", "--warmup", "1",
                                      "--batch-size", str(batch), "--style", style, "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures) >= KEYS
    assert figures["batch_size"] == batch and figures["style"] == style and figures["calls"] == 3
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert figures["images_per_s"] > 0 and figures["peak_rss_mb"] > 50
    stages = figures["preprocess_ms"] + figures["encode_ms"] + figures["decode_ms"]
    assert stages <= figures["p99_ms"] * 1.1  # the mean split fits inside the measured calls
