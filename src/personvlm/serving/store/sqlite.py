"""The embedded default store: one SQLite file, an FTS5 index over captions kept in sync by
triggers, WAL mode so several worker processes on one host can write to the same file."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from personvlm.serving.query import Query
from personvlm.serving.store.base import (
    DEFAULT_TABLE,
    DescriptionStore,
    Dialect,
    SearchHit,
    StoredDescription,
    StoreError,
    build_search_sql,
    check_table_name,
    row_to_record,
)

_COLUMNS = "event_id, camera_id, track_id, ts, attributes, caption, style, model_version, latency_ms"


def _ts_text(ts: datetime) -> str:
    """Fixed-width UTC text, so string order is time order in SQL."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ts_parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class _SQLiteDialect(Dialect):
    p = "?"

    def __init__(self, table: str) -> None:
        self.table = table

    def value(self, attribute: str) -> str:
        return f"json_extract(t.attributes, '$.{attribute}.value')"

    def has_member(self, attribute: str) -> str:
        return f"EXISTS (SELECT 1 FROM json_each(t.attributes, '$.{attribute}.value') j WHERE j.value = ?)"

    def non_empty(self, attribute: str) -> str:
        return f"{self.value(attribute)} NOT IN ('[]', 'unknown')"

    def confidence(self, attribute: str) -> str:
        return f"json_extract(t.attributes, '$.{attribute}.confidence')"

    def term_match(self) -> str:
        # Terms are [a-z0-9-] words (see query.py); quoting makes FTS5 read each as one token.
        return f"t.rowid IN (SELECT rowid FROM {self.table}_fts WHERE {self.table}_fts MATCH '\"' || ? || '\"')"

    def round6(self, expr: str) -> str:
        return f"round({expr}, 6)"


class SQLiteStore(DescriptionStore):
    """Descriptions in a SQLite file (``":memory:"`` for a throw-away store)."""

    def __init__(self, path: str | Path, table: str = DEFAULT_TABLE) -> None:
        super().__init__()
        self.table = check_table_name(table)
        self.url = str(path)
        if self.url != ":memory:" and not Path(path).parent.is_dir():
            raise StoreError(f"SQLite store {path}: folder {Path(path).parent} does not exist")
        try:
            self._conn = sqlite3.connect(self.url, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._create()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {path}: cannot open: {exc}") from None
        self._dialect = _SQLiteDialect(self.table)

    def _create(self) -> None:
        t = self.table
        self._conn.executescript(f"""
            BEGIN IMMEDIATE;
            CREATE TABLE IF NOT EXISTS {t} (
                event_id TEXT PRIMARY KEY, camera_id TEXT NOT NULL, track_id TEXT NOT NULL,
                ts TEXT NOT NULL, attributes TEXT NOT NULL, caption TEXT NOT NULL, style TEXT NOT NULL,
                model_version TEXT NOT NULL, latency_ms REAL NOT NULL);
            CREATE INDEX IF NOT EXISTS {t}_ts ON {t}(ts);
            CREATE INDEX IF NOT EXISTS {t}_camera_ts ON {t}(camera_id, ts);
            CREATE VIRTUAL TABLE IF NOT EXISTS {t}_fts USING fts5(
                caption, content='{t}', content_rowid='rowid', tokenize='porter unicode61');
            CREATE TRIGGER IF NOT EXISTS {t}_ai AFTER INSERT ON {t} BEGIN
                INSERT INTO {t}_fts(rowid, caption) VALUES (new.rowid, new.caption); END;
            CREATE TRIGGER IF NOT EXISTS {t}_ad AFTER DELETE ON {t} BEGIN
                INSERT INTO {t}_fts({t}_fts, rowid, caption) VALUES ('delete', old.rowid, old.caption); END;
            CREATE TRIGGER IF NOT EXISTS {t}_au AFTER UPDATE ON {t} BEGIN
                INSERT INTO {t}_fts({t}_fts, rowid, caption) VALUES ('delete', old.rowid, old.caption);
                INSERT INTO {t}_fts(rowid, caption) VALUES (new.rowid, new.caption); END;
            COMMIT;
        """)

    def upsert(self, records: Sequence[StoredDescription]) -> None:
        if not records:
            return
        rows = [
            (r.event_id, r.camera_id, r.track_id, _ts_text(r.ts), r.attributes_json(), r.description.caption,
             r.description.style, r.model_version, float(r.latency_ms))
            for r in records
        ]
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", ")[1:])
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    f"INSERT INTO {self.table} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    f"ON CONFLICT(event_id) DO UPDATE SET {updates}",
                    rows,
                )
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(f"SQLite store {self.url}: upsert of {len(rows)} records failed: {exc}") from None

    def get(self, event_id: str) -> StoredDescription | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM {self.table} WHERE event_id = ?", (event_id,)
            ).fetchone()
        return None if row is None else row_to_record(row, _ts_parse(row[3]))

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0])

    def _search(self, query: Query, camera: str | None, since: datetime | None, limit: int) -> list[SearchHit]:
        sql, params = build_search_sql(
            self._dialect, self.table, query, camera, None if since is None else _ts_text(since), limit
        )
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [SearchHit(row_to_record(r, _ts_parse(r[3])), int(r[9]), float(r[10])) for r in rows]

    def drop(self) -> None:
        with self._lock:
            self._conn.executescript(
                f"DROP TABLE IF EXISTS {self.table}_fts; DROP TABLE IF EXISTS {self.table};"
            )

    def close(self) -> None:
        self._conn.close()
