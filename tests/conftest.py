"""Fixtures for tests that need the loopback servers (Redis, PostgreSQL).

Outside CI a missing server skips those tests with the reason; with ``CI`` set it fails them,
so a broken CI machine can never pass by silently skipping the integration tests.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

# The suite shares 2 cores between the test process and the servers/workers it starts: idle
# OpenMP threads must sleep, not spin (spinning made 2-thread inference 3-10x slower under load).
# On an idle dedicated machine spinning is faster (batch-1 p50 28 ms vs 77 ms), so the package
# itself leaves OpenMP's default alone. Set before torch is imported by any test module.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

REDIS_URL = os.environ.get("PERSONVLM_TEST_REDIS", "redis://127.0.0.1:6379/0")
POSTGRES_URLS = (
    [os.environ["PERSONVLM_TEST_POSTGRES"]] if "PERSONVLM_TEST_POSTGRES" in os.environ
    else ["postgresql://root@127.0.0.1:5432/test", "postgresql://postgres@127.0.0.1:5432/test"]
)


def service_missing(what: str, why: str) -> None:
    """Skip (developer machine) or fail (CI) a test whose server is not there."""
    message = f"{what} is not reachable: {why}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: integration tests must run, start the server)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a live Redis server (``PERSONVLM_TEST_REDIS`` or 127.0.0.1:6379)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL}", str(exc))
    return REDIS_URL


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a live PostgreSQL database (``PERSONVLM_TEST_POSTGRES`` or root/postgres @ 127.0.0.1/test)."""
    import psycopg

    errors = []
    for url in POSTGRES_URLS:
        try:
            psycopg.connect(url, connect_timeout=3).close()
            return url
        except psycopg.Error as exc:
            errors.append(f"{url}: {str(exc).strip()}")
    service_missing("PostgreSQL", "; ".join(errors))
    raise AssertionError("unreachable")


@pytest.fixture
def unique_name() -> str:
    """A fresh identifier (table, stream, group) so parallel and repeated runs never collide."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path, unique_name: str) -> Iterator:
    """An empty description store on each backend (SQLite file by URL, PostgreSQL in a fresh
    table), dropped afterwards: store behaviour must be the same on both."""
    from personvlm.serving.store import open_store

    if request.param == "sqlite":
        store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        store = open_store(request.getfixturevalue("postgres_url"), table=unique_name)
    try:
        yield store
    finally:
        store.drop()
        store.close()


@pytest.fixture
def one_torch_thread():
    """Run a test on one intra-op thread: on a shared 2-core machine, two OpenMP threads per test
    process spin against each other and make small models tens of times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def exported_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model directory with its ONNX graphs (``personvlm model export-onnx``, ~35 s on
    the slow 2-core host), shared by the ONNX tests; they copy it before changing anything."""
    import torch
    from typer.testing import CliRunner

    from personvlm.cli import app
    from personvlm.describer import Describer

    directory = Describer.tiny(seed=4).save_pretrained(tmp_path_factory.mktemp("tiny") / "model")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = CliRunner().invoke(app, ["model", "export-onnx", str(directory)])
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    return directory


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """Put the root logger back after each test. ``serve``/``worker`` run under CliRunner set up JSON
    logging: the root handler they install writes to the stderr CliRunner swapped in, which is closed
    after the test, and the root level becomes INFO; any later INFO line (from any test) then prints
    a "Logging error" into whatever output that test is reading."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
