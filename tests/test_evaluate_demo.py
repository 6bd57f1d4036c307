"""``personvlm demo``: renders a synthetic sample, describes it, prints the table, writes one
self-contained HTML page (run here with a tiny random model; ``make demo`` uses the bundled one)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personvlm.cli import app
from personvlm.describer import Describer


@pytest.mark.slow
def test_demo_writes_a_self_contained_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    model = Describer.tiny(seed=0).save_pretrained(tmp_path / "model")
    out = tmp_path / "demo_results.html"
    result = CliRunner().invoke(app, ["demo", "--n", "3", "--out", str(out), "--model", str(model)])
    assert result.exit_code == 0, result.output
    assert "PersonVLM descriptions" in result.output and "CIDEr-D" in result.output
    html = out.read_text()
    assert html.count("data:image/jpeg;base64,") == 3
    assert "src='http" not in html and 'src="http' not in html
    assert not list(scratch.iterdir()), "the temporary sample must not be left behind"


def test_demo_without_a_model_says_how_to_get_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--n", "2", "--out", str(tmp_path / "x.html"),
                                      "--model", str(tmp_path / "no-model")])
    assert result.exit_code == 2
    assert "no-model" in result.output and not (tmp_path / "x.html").exists()
