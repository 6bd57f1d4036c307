"""Store basics on both backends: idempotent upsert, round trip, clear errors when unusable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from personvlm.schema import PersonDescription
from personvlm.serving.store import DescriptionStore, StoredDescription, StoreError, open_store


def _record(i: int, caption: str = "a man", **values: object) -> StoredDescription:
    desc = PersonDescription.from_values({"gender": "male", "bags": ("backpack",), **values}, confidence=0.75,
                                         caption=caption, style="compact")
    return StoredDescription(f"ev-{i}", "cam", f"tr-{i}", datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
                             desc, "v1", 3.5)


@pytest.fixture
def store(any_store: DescriptionStore) -> DescriptionStore:
    return any_store


@pytest.mark.services
def test_round_trip_keeps_everything(store: DescriptionStore) -> None:
    rec = _record(1, upper_color="red", held=("phone", "cup"))
    store.upsert([rec])
    got = store.get("ev-1")
    assert got == rec
    assert got.description.attributes["upper_color"].confidence == 0.75
    assert store.get("missing") is None


@pytest.mark.services
def test_upsert_is_idempotent_and_replaces(store: DescriptionStore) -> None:
    batch = [_record(i) for i in range(50)]
    store.upsert(batch)
    store.upsert(batch)  # a redelivered batch
    assert store.count() == 50
    store.upsert([_record(3, caption="a man in a hat", headwear="hat")])
    assert store.count() == 50
    assert store.get("ev-3").description.value("headwear") == "hat"
    # the full-text index follows the update
    assert [h.record.event_id for h in store.search("hat")] == ["ev-3"]
    assert [h.record.event_id for h in store.search("hat", limit=1)] == ["ev-3"]


@pytest.mark.services
def test_two_handles_see_the_same_rows(store: DescriptionStore, tmp_path: Path) -> None:
    store.upsert([_record(1)])
    other = open_store(store.url, table=store.table)
    try:
        assert other.count() == 1
    finally:
        other.close()


def test_sqlite_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "no" / "such" / "store.db")


def test_unknown_scheme_and_bad_table_name(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="expected a file path"):
        open_store("mysql://user:secret@db/x")
    with pytest.raises(StoreError, match="plain SQL identifier"):
        open_store(tmp_path / "s.db", table="x; DROP TABLE y")


def test_unreachable_postgres_names_the_server_not_the_password() -> None:
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as err:
        open_store("postgresql://user:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(err.value)
    assert "127.0.0.1:1" in str(err.value)


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        StoredDescription("e", "c", "t", datetime(2026, 1, 1), PersonDescription())


@pytest.mark.services
def test_a_failing_batch_stores_nothing(postgres_url: str, unique_name: str) -> None:
    store = open_store(postgres_url, table=unique_name)
    try:
        batch = [_record(1), _record(2), _record(3, caption="bad \x00 byte")]  # PostgreSQL text rejects NUL
        with pytest.raises(StoreError, match="upsert of 3 records failed"):
            store.upsert(batch)
        assert store.count() == 0  # one transaction: the good records were rolled back too
        store.upsert(batch[:2])  # and the connection is still usable
        assert store.count() == 2
    finally:
        store.drop()
        store.close()
