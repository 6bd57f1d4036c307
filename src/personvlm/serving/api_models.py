"""The HTTP API's contract: request and response bodies as pydantic models.

They are what FastAPI validates and what the OpenAPI document (``/docs``) shows, so a client
author reads this file (or ``/openapi.json``) and nothing else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from personvlm.schema import PersonDescription


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a stable machine-readable ``error`` code and a human ``detail``."""

    error: str = Field(examples=["invalid_image"])
    detail: str = Field(examples=["upload 'image': not an image (content is not a format Pillow can read)"])


class EventFields(BaseModel):
    """Optional tracker metadata; with ``event_id`` and a configured store the result is stored."""

    # Trackers often number their tracks and cameras: 12 is accepted as "12".
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    event_id: str | None = Field(None, max_length=200, description="Store the result under this id (upsert)")
    camera_id: str | None = Field(None, max_length=200)
    track_id: str | None = Field(None, max_length=200)
    ts: datetime | None = Field(None, description="Event time: ISO 8601 (naive = UTC) or Unix seconds; default now")


class DescribeJSON(EventFields):
    """``POST /v1/describe`` with ``Content-Type: application/json``."""

    image_base64: str = Field(description="The encoded image (JPEG, PNG, WebP, ...) in standard base64")
    style: str | None = Field(None, description="Caption style: compact or natural (default: server's style)")


class BatchItemJSON(EventFields):
    image_base64: str


class BatchDescribeJSON(BaseModel):
    """``POST /v1/describe/batch`` with ``Content-Type: application/json``."""

    model_config = ConfigDict(extra="forbid")

    items: list[BatchItemJSON] = Field(min_length=1)
    style: str | None = None


class AttributeOut(BaseModel):
    value: str | list[str] = Field(description="A schema value, 'unknown', or a list for multi-label attributes")
    confidence: float


class DescribeResult(BaseModel):
    """One image's structured description and caption."""

    attributes: dict[str, AttributeOut]
    caption: str
    style: str
    model_version: str
    latency_ms: float = Field(description="Server time for this request: decode, queue and inference")
    event_id: str | None = None
    stored: bool = Field(False, description="True when the result was written to the store")

    @classmethod
    def build(cls, desc: PersonDescription, **fields: Any) -> DescribeResult:
        data = desc.to_dict()
        return cls(attributes=data["attributes"], caption=desc.caption, style=desc.style, **fields)


class BatchItemResult(BaseModel):
    """A batch entry: ``result`` or ``error``, so one bad image does not fail the others."""

    index: int
    result: DescribeResult | None = None
    error: ErrorBody | None = None


class BatchDescribeResponse(BaseModel):
    results: list[BatchItemResult]
    latency_ms: float
    model_version: str


class Health(BaseModel):
    status: str
    model_version: str | None = None
    backend: str | None = Field(None, description="What computes the visual tokens: onnxruntime or torch")
    caption_backend: str | None = Field(None, description="What decodes natural captions: onnxruntime or torch")
    queue_depth: int | None = None
    detail: str | None = None


class StoredOut(BaseModel):
    """A described event as the store holds it."""

    event_id: str
    camera_id: str
    track_id: str
    ts: str = Field(description="ISO 8601, UTC")
    attributes: dict[str, AttributeOut]
    caption: str
    style: str
    model_version: str
    latency_ms: float


class SearchHitOut(StoredOut):
    matched_terms: int = Field(description="How many free-text words of the query the caption matched")
    score_confidence: float = Field(description="Mean confidence of the attributes the query filtered on")


class SearchResponse(BaseModel):
    query: str
    parsed: dict[str, Any] = Field(description="How the query was read: attribute filters, free-text terms")
    results: list[SearchHitOut]
