"""What every description store does, and the one search-SQL builder both backends share.

The builder is written once against a small ``Dialect`` (how to read a JSON attribute, how to
test a full-text term) so SQLite and PostgreSQL rank the same query the same way: filters
are WHERE clauses, then results are ordered by (matched optional terms, mean confidence of
the filtered attributes, recency, event id).
"""

from __future__ import annotations

import json
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from personvlm.schema import BY_NAME, PersonDescription
from personvlm.serving.query import Condition, Filter, Query, parse_query

DEFAULT_TABLE = "descriptions"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class StoreError(RuntimeError):
    """The store cannot be opened or written; the message names the store (never its password)."""


@dataclass(frozen=True)
class StoredDescription:
    """One described event as stored: who/where/when, the description, and which model made it."""

    event_id: str
    camera_id: str
    track_id: str
    ts: datetime
    description: PersonDescription
    model_version: str = ""
    latency_ms: float = 0.0  # describe time: the batch it was in (worker) or the request (HTTP)

    def __post_init__(self) -> None:
        if not self.event_id:
            raise ValueError("event_id may not be empty")
        if self.ts.tzinfo is None:
            raise ValueError(f"event {self.event_id}: ts must be timezone-aware, got {self.ts.isoformat()}")

    def attributes_json(self) -> str:
        return json.dumps(self.description.to_dict()["attributes"], ensure_ascii=False, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        d = self.description.to_dict()
        return {
            "event_id": self.event_id, "camera_id": self.camera_id, "track_id": self.track_id,
            "ts": self.ts.astimezone(UTC).isoformat(), "attributes": d["attributes"], "caption": d["caption"],
            "style": d["style"], "model_version": self.model_version, "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True)
class SearchHit:
    """A search result with the two numbers it was ranked by."""

    record: StoredDescription
    matched_terms: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.record.to_dict(), "matched_terms": self.matched_terms, "score_confidence": self.confidence}


def check_table_name(name: str) -> str:
    """Table names are interpolated into SQL, so only plain identifiers are accepted."""
    if not _IDENTIFIER.match(name):
        raise StoreError(f"table name {name!r} must be a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return name


class Dialect(ABC):
    """SQL fragments that differ between backends; ``p`` is the parameter placeholder."""

    p: str
    # Byte-order tie-break on event_id: a database's locale collation must not reorder results.
    byte_order: str = ""

    @abstractmethod
    def value(self, attribute: str) -> str:
        """Text of a single-valued attribute's value (or the JSON text of a multi one)."""

    def equals(self, attribute: str) -> str:
        """True when a single-valued attribute equals the parameter."""
        return f"{self.value(attribute)} = {self.p}"

    @abstractmethod
    def has_member(self, attribute: str) -> str:
        """True when the multi-label attribute's set contains the parameter."""

    @abstractmethod
    def non_empty(self, attribute: str) -> str:
        """True when the multi-label attribute's set is known and not empty."""

    @abstractmethod
    def confidence(self, attribute: str) -> str:
        """The attribute's confidence as a float."""

    @abstractmethod
    def term_match(self) -> str:
        """True when the caption's full-text index matches the parameter (one word)."""

    @abstractmethod
    def round6(self, expr: str) -> str:
        """``expr`` rounded to 6 decimals, so float noise never reorders equal scores."""


def _condition_sql(d: Dialect, cond: Condition, params: list[Any]) -> str:
    if not BY_NAME[cond.attribute].multi:
        params.append(cond.value)
        return d.equals(cond.attribute)
    if cond.value is None:
        return d.non_empty(cond.attribute)
    params.append(cond.value)
    return d.has_member(cond.attribute)


def _filter_sql(d: Dialect, f: Filter, params: list[Any]) -> str:
    alts = " OR ".join(
        "(" + " AND ".join(_condition_sql(d, c, params) for c in alt) + ")" for alt in f.alternatives
    )
    if not f.negate:
        return f"({alts})"
    known = " AND ".join(f"{d.value(a)} <> 'unknown'" for a in f.attributes)
    return f"({known} AND NOT ({alts}))"


def build_search_sql(
    d: Dialect, table: str, query: Query, camera: str | None, since: Any, limit: int
) -> tuple[str, list[Any]]:
    """SELECT rows matching every filter, ranked as the module docstring says."""
    select_params: list[Any] = []
    where_params: list[Any] = []
    matched = " + ".join(
        f"(CASE WHEN {d.term_match()} THEN 1 ELSE 0 END)" for _ in query.terms
    ) or "0"
    select_params.extend(query.terms)
    conf_attrs = list(dict.fromkeys(a for f in query.filters if not f.negate for a in f.attributes))
    confidence = (
        d.round6("(" + " + ".join(d.confidence(a) for a in conf_attrs) + f") / {len(conf_attrs)}")
        if conf_attrs else "0"
    )
    where = [_filter_sql(d, f, where_params) for f in query.filters]
    for word in query.excluded:
        where.append(f"NOT ({d.term_match()})")
        where_params.append(word)
    if camera is not None:
        where.append(f"camera_id = {d.p}")
        where_params.append(camera)
    if since is not None:
        where.append(f"ts >= {d.p}")
        where_params.append(since)
    inner = (
        f"SELECT event_id, camera_id, track_id, ts, attributes, caption, style, model_version, latency_ms, "
        f"{matched} AS matched, {confidence} AS conf FROM {table} t"
        + (" WHERE " + " AND ".join(where) if where else "")
    )
    # With no filters the terms are the whole query: at least one must match.
    outer_where = " WHERE matched > 0" if query.terms and not query.filters else ""
    sql = (f"SELECT * FROM ({inner}) s{outer_where} "
           f"ORDER BY matched DESC, conf DESC, ts DESC, event_id{d.byte_order} ASC LIMIT {d.p}")
    return sql, [*select_params, *where_params, limit]


def row_to_record(row: Sequence[Any], ts: datetime) -> StoredDescription:
    """A (event_id, camera_id, track_id, ts, attributes, caption, style, model_version, latency_ms)
    row back into a record; ``ts`` is given already converted by the backend."""
    attrs = row[4] if isinstance(row[4], dict) else json.loads(row[4])
    desc = PersonDescription.from_dict({"attributes": attrs, "caption": row[5] or "", "style": row[6] or ""})
    return StoredDescription(row[0], row[1], row[2], ts, desc, row[7] or "", float(row[8] or 0.0))


class DescriptionStore(ABC):
    """A table of described events with idempotent upsert by ``event_id`` and ranked search.

    Safe to share between threads (calls are serialised); one instance per process is plenty.
    """

    url: str
    table: str

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @abstractmethod
    def upsert(self, records: Sequence[StoredDescription]) -> None:
        """Insert or replace ``records`` in one transaction: all are stored or none is."""

    @abstractmethod
    def get(self, event_id: str) -> StoredDescription | None:
        """The stored record for ``event_id``, or None."""

    @abstractmethod
    def count(self) -> int:
        """How many events are stored."""

    @abstractmethod
    def _search(self, query: Query, camera: str | None, since: datetime | None, limit: int) -> list[SearchHit]:
        ...

    @abstractmethod
    def drop(self) -> None:
        """Delete the table and its indexes (tests and benchmarks clean up with this)."""

    @abstractmethod
    def close(self) -> None:
        ...

    def search(
        self,
        query: Query | str,
        camera: str | None = None,
        since: datetime | None = None,
        limit: int = 20,
    ) -> list[SearchHit]:
        """Events matching every filter of ``query`` (a string is parsed with ``parse_query``),
        best first; an empty query lists the most recent events."""
        if isinstance(query, str):
            query = parse_query(query)
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return self._search(query, camera, since, limit)

    def __enter__(self) -> DescriptionStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def redact(url: str) -> str:
    """The URL with any password replaced, for error messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)
