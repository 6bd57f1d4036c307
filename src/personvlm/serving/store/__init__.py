"""Description store: where workers write described events and where search reads them.

``open_store("events.db")`` gives the embedded SQLite store, ``open_store("postgresql://...")``
the shared PostgreSQL one; both behave the same (same upsert semantics, same ranked search).
"""

from __future__ import annotations

from pathlib import Path

from personvlm.serving.store.base import (
    DEFAULT_TABLE,
    DescriptionStore,
    SearchHit,
    StoredDescription,
    StoreError,
    redact,
)

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(target: str | Path, table: str = DEFAULT_TABLE) -> DescriptionStore:
    """Open (creating the table if needed) the store at a SQLite path, ``sqlite:///path`` or a
    PostgreSQL URL. Raises ``StoreError`` saying which store and why when it cannot be used."""
    text = str(target)
    if text.startswith(_POSTGRES_SCHEMES):
        from personvlm.serving.store.postgres import PostgresStore

        return PostgresStore(text, table)
    if "://" in text and not text.startswith("sqlite:///"):
        raise StoreError(f"store {redact(text)}: expected a file path, sqlite:///path or postgresql:// URL")
    from personvlm.serving.store.sqlite import SQLiteStore

    return SQLiteStore(text.removeprefix("sqlite:///") if text.startswith("sqlite:///") else text, table)


__all__ = ["DEFAULT_TABLE", "DescriptionStore", "SearchHit", "StoreError", "StoredDescription", "open_store"]
