"""``personvlm search``: filters, --camera/--since/--limit, JSON output, clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personvlm.cli import app
from personvlm.schema import PersonDescription
from personvlm.serving.store import StoredDescription, open_store

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "s.db"
    people = [
        ("a", "cam-1", {"gender": "female", "upper_type": "jacket", "upper_color": "red", "bags": ("backpack",)}),
        ("b", "cam-2", {"gender": "male", "upper_type": "jacket", "upper_color": "red", "bags": ()}),
        ("c", "cam-1", {"gender": "male", "upper_type": "coat", "upper_color": "blue", "bags": ("backpack",)}),
    ]
    with open_store(path) as s:
        s.upsert([StoredDescription(eid, cam, "t", T0 + timedelta(hours=i),
                                    PersonDescription.from_values(v, caption=f"person {eid}"), "v1", 1.0)
                  for i, (eid, cam, v) in enumerate(people)])
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["search", *args])
    return result.exit_code, result.output


def test_json_output_has_parsed_query_and_results(store_path: Path) -> None:
    code, out = run("red jacket, no backpack", "--store", str(store_path), "--json")
    assert code == 0
    data = json.loads(out)
    assert [r["event_id"] for r in data["results"]] == ["b"]
    assert [f["phrase"] for f in data["parsed"]["filters"]] == ["red jacket", "no backpack"]
    assert data["results"][0]["attributes"]["upper_color"]["value"] == "red"


def test_camera_since_limit_and_table(store_path: Path) -> None:
    code, out = run("red jacket", "--store", str(store_path), "--json", "--camera", "cam-1")
    assert [r["event_id"] for r in json.loads(out)["results"]] == ["a"]
    code, out = run("backpack", "--store", str(store_path), "--json", "--since", "2026-11-01T01:30:00Z")
    assert [r["event_id"] for r in json.loads(out)["results"]] == ["c"]
    code, out = run("", "--store", str(store_path), "--json", "--limit", "1")
    assert [r["event_id"] for r in json.loads(out)["results"]] == ["c"]
    code, out = run("backpack", "--store", str(store_path))
    assert code == 0 and "2 result(s)" in out and "filters: backpack" in out


def test_bad_since_and_missing_store(tmp_path: Path, store_path: Path) -> None:
    code, out = run("x", "--store", str(store_path), "--since", "last tuesday")
    assert code == 2 and "neither ISO 8601" in out
    code, out = run("x", "--store", str(tmp_path / "missing.db"))
    assert code == 2 and "no store at" in " ".join(out.split())
    assert not (tmp_path / "missing.db").exists()  # searching never creates an empty store
