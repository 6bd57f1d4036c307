"""Settings precedence and start-up errors: a bad config must fail naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from personvlm.serving.config import ConfigError, Settings, load_settings


def test_defaults_file_env_flags_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "personvlm.yaml"
    cfg.write_text("stream: from-file\nmax_batch: 8\nstore: file.db\n")
    env = {"PERSONVLM_MAX_BATCH": "32", "PERSONVLM_CONFIG": str(cfg)}
    s = load_settings(env=env, store="flag.db", group=None)
    assert s.stream == "from-file"  # file beats default
    assert s.max_batch == 32  # env beats file
    assert s.store == "flag.db"  # flag beats file
    assert s.group == Settings().group  # a flag not given changes nothing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_batch: lots\n", "max_batch: expected an integer"),
        ("no_such_key: 1\n", "unknown setting 'no_such_key'"),
        ("- a list\n", "expected a mapping"),
        ("max_batch: [1\n", "not valid YAML"),
        ("max_batch: 0\n", "max_batch: expected an integer >= 1"),
    ],
)
def test_bad_config_file_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert expected in str(err.value)
    assert str(cfg) in str(err.value)


def test_bad_env_value_names_variable() -> None:
    with pytest.raises(ConfigError, match="PERSONVLM_CLAIM_IDLE_MS"):
        load_settings(env={"PERSONVLM_CLAIM_IDLE_MS": "soon"})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", env={})
