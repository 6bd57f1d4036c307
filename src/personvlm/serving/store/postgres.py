"""The shared store for many hosts: PostgreSQL via psycopg 3, attributes as ``jsonb`` with a
GIN index (filters are ``@>`` containment so they use it), captions as a generated
``tsvector`` with a GIN index for the full-text fallback."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

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
    redact,
    row_to_record,
)

_COLUMNS = "event_id, camera_id, track_id, ts, attributes, caption, style, model_version, latency_ms"


class _PostgresDialect(Dialect):
    p = "%s"
    byte_order = ' COLLATE "C"'

    def value(self, attribute: str) -> str:
        return f"(t.attributes->'{attribute}'->>'value')"

    def equals(self, attribute: str) -> str:
        return f"t.attributes @> jsonb_build_object('{attribute}', jsonb_build_object('value', %s::text))"

    def has_member(self, attribute: str) -> str:
        return (f"t.attributes @> jsonb_build_object('{attribute}', "
                f"jsonb_build_object('value', jsonb_build_array(%s::text)))")

    def non_empty(self, attribute: str) -> str:
        return f"(t.attributes->'{attribute}'->'value') NOT IN ('[]'::jsonb, '\"unknown\"'::jsonb)"

    def confidence(self, attribute: str) -> str:
        return f"(t.attributes->'{attribute}'->>'confidence')::float8"

    def term_match(self) -> str:
        return "t.tsv @@ plainto_tsquery('english', %s)"

    def round6(self, expr: str) -> str:
        return f"round(({expr})::numeric, 6)"


class PostgresStore(DescriptionStore):
    """Descriptions in a PostgreSQL table; ``url`` is a libpq URL (``postgresql://user@host/db``)."""

    def __init__(self, url: str, table: str = DEFAULT_TABLE, connect_timeout: int = 5) -> None:
        super().__init__()
        self.url = url
        self.table = check_table_name(table)
        self._connect_timeout = connect_timeout
        self._dialect = _PostgresDialect()
        self._conn = self._connect()
        try:
            self._create()
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store {redact(url)}: cannot create table {table}: {exc}") from None

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.url, connect_timeout=self._connect_timeout)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL store {redact(self.url)}: {exc}".strip()) from None

    def _live(self) -> psycopg.Connection:
        """The connection, reopened if the server dropped it (a restart must not kill workers)."""
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def _create(self) -> None:
        t = self.table
        with self._conn.transaction():
            # Workers start together; serialise their CREATE IF NOT EXISTS (it is not race-free).
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (t,))
            self._conn.execute(f"""
                CREATE TABLE IF NOT EXISTS {t} (
                    event_id text PRIMARY KEY, camera_id text NOT NULL, track_id text NOT NULL,
                    ts timestamptz NOT NULL, attributes jsonb NOT NULL, caption text NOT NULL,
                    style text NOT NULL, model_version text NOT NULL, latency_ms double precision NOT NULL,
                    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', caption)) STORED)""")
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_tsv ON {t} USING GIN (tsv)")
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_attrs ON {t} USING GIN (attributes jsonb_path_ops)")
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_ts ON {t} (ts)")
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_camera_ts ON {t} (camera_id, ts)")

    def upsert(self, records: Sequence[StoredDescription]) -> None:
        if not records:
            return
        rows = [
            (r.event_id, r.camera_id, r.track_id, r.ts, Jsonb(r.description.to_dict()["attributes"]),
             r.description.caption, r.description.style, r.model_version, float(r.latency_ms))
            for r in records
        ]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS.split(", ")[1:])
        with self._lock:
            try:
                conn = self._live()
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO {self.table} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                        f"ON CONFLICT (event_id) DO UPDATE SET {updates}",
                        rows,
                    )
            except psycopg.Error as exc:
                raise StoreError(
                    f"PostgreSQL store {redact(self.url)}: upsert of {len(rows)} records failed: {exc}"
                ) from None

    def _fetch(self, sql: str, params: Sequence[object]) -> list[tuple]:
        with self._lock:
            try:
                conn = self._live()
                with conn.transaction():
                    return conn.execute(sql, params).fetchall()
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL store {redact(self.url)}: query failed: {exc}") from None

    def get(self, event_id: str) -> StoredDescription | None:
        rows = self._fetch(f"SELECT {_COLUMNS} FROM {self.table} WHERE event_id = %s", (event_id,))
        return row_to_record(rows[0], rows[0][3]) if rows else None

    def count(self) -> int:
        return int(self._fetch(f"SELECT count(*) FROM {self.table}", ())[0][0])

    def _search(self, query: Query, camera: str | None, since: datetime | None, limit: int) -> list[SearchHit]:
        sql, params = build_search_sql(self._dialect, self.table, query, camera, since, limit)
        return [SearchHit(row_to_record(r, r[3]), int(r[9]), float(r[10])) for r in self._fetch(sql, params)]

    def drop(self) -> None:
        with self._lock, self._live().transaction():
            self._conn.execute(f"DROP TABLE IF EXISTS {self.table}")

    def close(self) -> None:
        self._conn.close()
