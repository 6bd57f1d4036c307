"""Service settings: built-in defaults < a YAML config file < ``PERSONVLM_*`` environment
variables < command-line flags.

One flat settings object is shared by the HTTP server, the queue workers, ``publish`` and
``search`` so an operator writes one config file (or one set of env vars in a container) for
every process of a deployment. Every bad value fails at start-up with the file, the key and
what was expected, never half-way through a run.

Example ``personvlm.yaml``::

    redis_url: redis://queue.internal:6379/0
    stream: cameras
    store: postgresql://personvlm@db.internal/personvlm
    max_batch: 32
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "PERSONVLM_"
CONFIG_ENV = "PERSONVLM_CONFIG"


class ConfigError(ValueError):
    """A settings value that cannot be used; the message names where it came from."""


@dataclass(frozen=True)
class Settings:
    """Everything a PersonVLM service process can be told. Field names are the config-file keys;
    the environment variable for a field is ``PERSONVLM_`` + its name upper-cased."""

    # model
    model: str | None = None  # checkpoint directory; None = the bundled models/default
    device: str = "cpu"
    style: str = "compact"
    # store and queue
    store: str = "personvlm.db"  # SQLite file path or postgresql:// URL
    redis_url: str = "redis://127.0.0.1:6379/0"
    stream: str = "personvlm:events"
    group: str = "personvlm-workers"
    dead_letter: str = "personvlm:dead-letter"
    image_root: str | None = None  # events may name image files only under this folder
    # batching (worker and HTTP micro-batcher)
    max_batch: int = 16
    max_wait_ms: int = 50
    claim_idle_ms: int = 30_000
    max_deliveries: int = 5
    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_upload_bytes: int = 10 * 1024 * 1024
    queue_size: int = 256
    request_timeout_ms: int = 5_000
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_deliveries", "port", "max_upload_bytes", "queue_size", "request_timeout_ms"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        for name in ("max_wait_ms", "claim_idle_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: expected an integer >= 0, got {getattr(self, name)}")
        if self.style not in ("compact", "natural"):
            raise ConfigError(f"style: expected 'compact' or 'natural', got {self.style!r}")

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied; ``None`` values (flags not given) are ignored."""
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given) if given else self


_FIELDS = {f.name: f for f in fields(Settings)}


def _coerce(name: str, raw: Any, origin: str) -> Any:
    """Convert a config-file or environment value to the field's type, or say what was expected."""
    kind = _FIELDS[name].type
    if raw is None:
        if "None" in str(kind):
            return None
        raise ConfigError(f"{origin}: {name} may not be empty")
    if kind == "int":
        if isinstance(raw, bool):
            raise ConfigError(f"{origin}: {name}: expected an integer, got {raw!r}")
        try:
            return int(str(raw).strip())
        except ValueError:
            raise ConfigError(f"{origin}: {name}: expected an integer, got {raw!r}") from None
    if isinstance(raw, Mapping | list):
        raise ConfigError(f"{origin}: {name}: expected a string, got {type(raw).__name__}")
    text = str(raw)
    return None if text == "" and "None" in str(kind) else text


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Defaults, then the YAML file (``path`` or ``$PERSONVLM_CONFIG``), then ``PERSONVLM_*``
    environment variables, then ``overrides`` (command-line flags; ``None`` means not given)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = path or env.get(CONFIG_ENV) or None
    if path is not None:
        values.update(_read_file(Path(path)))
    for name in _FIELDS:
        key = ENV_PREFIX + name.upper()
        if key in env:
            values[name] = _coerce(name, env[key], f"environment variable {key}")
    for name, value in overrides.items():
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {name!r}; known: {', '.join(_FIELDS)}")
        if value is not None:
            values[name] = value
    try:
        return Settings(**values)
    except ConfigError as exc:
        origin = f" (config file {path})" if path else ""
        raise ConfigError(f"{exc}{origin}") from None


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path}: not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path}: expected a mapping of settings, got {type(data).__name__}")
    out = {}
    for key, raw in data.items():
        if key not in _FIELDS:
            raise ConfigError(f"config file {path}: unknown setting {key!r}; known: {', '.join(_FIELDS)}")
        out[key] = _coerce(key, raw, f"config file {path}")
    return out
