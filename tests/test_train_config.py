"""TrainConfig: YAML in, clear errors naming the file, section and key for anything wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from personvlm.models.config import ConfigError
from personvlm.training.config import TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _load(tmp_path: Path, text: str) -> TrainConfig:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return TrainConfig.load(p)


def test_defaults_and_paths_relative_to_the_config(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "data:\n  train: d/data.jsonl\ntrain:\n  lr: 0.0005\n  betas: [0.9, 0.95]\n")
    assert cfg.resolve(cfg.data.train) == tmp_path / "d" / "data.jsonl"
    assert cfg.train.lr == 0.0005 and cfg.train.betas == (0.9, 0.95)
    assert cfg.model.encoder == "efficientnet_lite0" and cfg.augment.flip == 0.5


@pytest.mark.parametrize(("text", "message"), [
    ("data:\n  train: x\ntrian:\n  lr: 1\n", "unknown section(s) ['trian']"),
    ("data:\n  train: x\ntrain:\n  learnig_rate: 1\n", "unknown key(s) ['learnig_rate']"),
    ("data:\n  train: x\ntrain:\n  epochs: many\n", "train.epochs: expected int"),
    ("data:\n  train: x\ntrain:\n  batch_size: 0\n", "train.batch_size: expected a positive integer"),
    ("data:\n  train: x\naugment:\n  flip: 2\n", "augment.flip"),
    ("data:\n  train: x\nmodel:\n  encoder: resnet\n", "unknown encoder 'resnet'"),
    ("data:\n  train: x\nmodel:\n  widht: 3\n", "unknown ModelConfig field(s) ['widht']"),
    ("data: {}\n", "data.train: required"),
    ("data: [1, 2]\n", "expected a mapping"),
    ("data:\n  train: x\n  bad: : :\n", "not valid YAML"),
])
def test_bad_configs_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as ei:
        _load(tmp_path, text)
    assert message in str(ei.value)
    assert str(tmp_path / "c.yaml") in str(ei.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        TrainConfig.load(tmp_path / "nope.yaml")


def test_shipped_configs_load() -> None:
    configs = sorted(CONFIGS.glob("*.yaml"))
    assert configs, f"no configs in {CONFIGS}"
    for path in configs:
        cfg = TrainConfig.load(path)
        assert cfg.data.train


def test_train_command_reports_bad_config_and_data(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from personvlm.cli import app

    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  train: x.jsonl\ntrain:\n  lr: -1\n")
    result = runner.invoke(app, ["train", "--config", str(bad), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "train.lr: expected > 0" in result.output
    bad.write_text("data:\n  train: x.jsonl\ntrain:\n  encoder_lr: 0\n")
    result = runner.invoke(app, ["train", "--config", str(bad), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "train.encoder_lr: expected > 0 or null" in result.output
    bad.write_text("data:\n  train: x.jsonl\ntrain:\n  select_on: val_acc\n")
    result = runner.invoke(app, ["train", "--config", str(bad), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "train.select_on: expected one of ['val_head_ma', 'val_loss']" in result.output
    missing = tmp_path / "missing.yaml"
    missing.write_text("data:\n  train: nowhere.jsonl\n")
    result = runner.invoke(app, ["train", "--config", str(missing), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and f"{tmp_path / 'nowhere.jsonl'}: dataset file not found" in result.output


def test_set_overrides_values_as_if_written_in_the_file(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  train: d/data.jsonl\ntrain:\n  epochs: 4\n  lr: 0.001\n")
    cfg = TrainConfig.load(p, ["data.train=../other/data.jsonl", "train.epochs=3", "train.init_from=../runs/a",
                               "model.freeze_stages=5", "augment.flip=0"])
    assert cfg.resolve(cfg.data.train) == tmp_path / ".." / "other" / "data.jsonl"  # relative to the file
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.init_from) == (3, 0.001, "../runs/a")
    assert cfg.model.freeze_stages == 5 and cfg.augment.flip == 0.0
    assert p.read_text().count("epochs: 4") == 1  # the file itself is untouched
    assert TrainConfig.load(p, []).train.epochs == 4


@pytest.mark.parametrize(("item", "message"), [
    ("train.epochs", "expected section.key=value"),
    ("epochs=3", "expected section.key=value"),
    ("train.optim.lr=1", "expected section.key=value"),
    ("train.lr=[1, ", "not valid YAML"),
    ("trian.lr=1", "unknown section(s) ['trian']"),
    ("train.learnig_rate=1", "unknown key(s) ['learnig_rate']"),
    ("train.epochs=many", "train.epochs: expected int"),
])
def test_bad_set_overrides_are_refused(tmp_path: Path, item: str, message: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  train: d/data.jsonl\n")
    with pytest.raises(ConfigError) as ei:
        TrainConfig.load(p, [item])
    assert message in str(ei.value)


def test_train_command_set_reaches_the_config(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from personvlm.cli import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  train: x.jsonl\n")
    result = CliRunner().invoke(app, ["train", "--config", str(cfg), "--out", str(tmp_path / "run"),
                                      "--set", "data.train=elsewhere.jsonl"])
    assert result.exit_code == 2 and f"{tmp_path / 'elsewhere.jsonl'}: dataset file not found" in result.output
    result = CliRunner().invoke(app, ["train", "--config", str(cfg), "--set", "train.lr=-1"])
    assert result.exit_code == 2 and "train.lr: expected > 0" in result.output
