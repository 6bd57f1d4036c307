"""The HTTP API (FastAPI): describe images, search stored descriptions, health and metrics.

``create_app(describer, settings)`` builds the app; ``personvlm serve`` runs it under uvicorn.
Routes stay thin: they read the request with ``personvlm.serving.uploads`` (size limit,
content sniffing, 4xx errors), push each image through the shared ``MicroBatcher`` so that
concurrent requests share model calls, and answer with the pydantic models of
``personvlm.serving.api_models`` (which are also the OpenAPI contract at ``/docs``).
Every error is JSON ``{"error": code, "detail": message}``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from personvlm.schema import STYLES, PersonDescription
from personvlm.serving.api_models import (
    BatchDescribeJSON,
    BatchDescribeResponse,
    BatchItemResult,
    DescribeJSON,
    DescribeResult,
    ErrorBody,
    EventFields,
    Health,
    SearchResponse,
    StoredOut,
)
from personvlm.serving.batcher import BatcherClosed, BatcherError, MicroBatcher
from personvlm.serving.config import Settings
from personvlm.serving.metrics import BatcherMetrics, HttpMetrics, render
from personvlm.serving.query import parse_query
from personvlm.serving.store import DescriptionStore, StoredDescription, StoreError
from personvlm.serving.uploads import (
    ApiError,
    Upload,
    body_limit,
    check_style,
    decode_base64,
    decode_upload,
    media_type,
    parse_form,
    parse_json,
    read_body,
    validate,
)

log = logging.getLogger(__name__)

# Images per /v1/describe/batch request; larger sets should be split (or sent to the queue).
MAX_BATCH_ITEMS = 64


class DescriberLike(Protocol):
    """The part of ``personvlm.describer.Describer`` the service uses."""

    model_version: str
    max_batch: int

    def describe(self, images: Sequence[Image.Image], style: str = "compact") -> list[PersonDescription]: ...


@dataclass(frozen=True)
class Job:
    """One image waiting in the batcher, with the caption style its request asked for."""

    image: Image.Image
    style: str


def describe_jobs(describer: DescriberLike, jobs: list[Job]) -> list[PersonDescription]:
    """The batch function: one model call per caption style present, results in input order."""
    by_index: dict[int, PersonDescription] = {}
    for style in dict.fromkeys(job.style for job in jobs):
        index = [i for i, job in enumerate(jobs) if job.style == style]
        descriptions = describer.describe([jobs[i].image for i in index], style=style)
        by_index.update(zip(index, descriptions, strict=True))
    return [by_index[i] for i in range(len(jobs))]


@dataclass
class Service:
    """Everything the routes share; one per app, reachable as ``request.app.state.service``."""

    describer: DescriberLike
    settings: Settings
    batcher: MicroBatcher[Job, PersonDescription]
    http_metrics: HttpMetrics
    store: DescriptionStore | None = None


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]

_bearer = HTTPBearer(auto_error=False, description="Required when the server has PERSONVLM_API_KEY set")


def require_api_key(
    service: ServiceDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """401 unless the request carries ``Authorization: Bearer <key>`` matching the configured key."""
    expected = service.settings.api_key
    if not expected:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(401, "unauthorized", "missing 'Authorization: Bearer <API key>' header", challenge)
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "invalid API key", challenge)


# --- request handling, as plain functions the routes call ------------------------------------------
async def run_job(service: Service, upload: Upload, style: str, started: float) -> DescribeResult:
    """Decode, describe through the batcher, and package one upload (raising ``ApiError``)."""
    image = await decode_upload(upload, service.settings.max_upload_bytes)
    try:
        desc = await service.batcher.submit(Job(image, style), timeout_s=service.settings.request_timeout_ms / 1000.0)
    except BatcherError as exc:
        code = "unavailable" if isinstance(exc, BatcherClosed) else "overloaded"
        raise ApiError(503, code, str(exc), {"Retry-After": str(int(exc.retry_after))}) from None
    except Exception as exc:
        log.exception("inference failed", extra={"fields": {"source": upload.source, **upload.event}})
        raise ApiError(500, "inference_failed", f"the model failed on {upload.source}: {exc}") from None
    latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
    event_id = upload.event.get("event_id")
    stored = False
    if event_id and service.store is not None:
        await store_result(service.store, upload.event, desc, service.describer.model_version, latency_ms)
        stored = True
    return DescribeResult.build(
        desc, model_version=service.describer.model_version, latency_ms=latency_ms, event_id=event_id, stored=stored
    )


async def store_result(
    store: DescriptionStore, event: dict[str, Any], desc: PersonDescription, model_version: str, latency_ms: float
) -> None:
    """Upsert one described event (idempotent by ``event_id``); 503 when the store is down."""
    ts: datetime = event.get("ts") or datetime.now(UTC)
    record = StoredDescription(
        event_id=event["event_id"],
        camera_id=event.get("camera_id") or "",
        track_id=event.get("track_id") or "",
        ts=ts if ts.tzinfo else ts.replace(tzinfo=UTC),
        description=desc,
        model_version=model_version,
        latency_ms=latency_ms,
    )
    try:
        await run_in_threadpool(store.upsert, [record])
    except StoreError as exc:
        log.error("store write failed", extra={"fields": {"event_id": record.event_id, "error": str(exc)}})
        raise ApiError(503, "store_unavailable", f"described, but not stored: {exc}", {"Retry-After": "5"}) from None


async def read_describe_request(request: Request, settings: Settings) -> tuple[Upload, str]:
    kind = media_type(request)
    body = await read_body(request, body_limit(settings.max_upload_bytes))
    if kind == "application/json":
        req = parse_json(body, DescribeJSON)
        event = req.model_dump(exclude={"image_base64", "style"}, exclude_none=True)
        return Upload(decode_base64(req.image_base64, "image_base64"), "image_base64", event), check_style(
            req.style, settings.style
        )
    uploads, fields = await parse_form(request, body)
    if len(uploads) > 1:
        raise ApiError(400, "invalid_request", f"{len(uploads)} 'image' parts; use /v1/describe/batch for several")
    style = fields.pop("style", None)
    upload = uploads[0]
    upload.event = validate(fields, EventFields, "multipart fields").model_dump(exclude_none=True)
    return upload, check_style(style, settings.style)


async def read_batch_request(request: Request, settings: Settings) -> tuple[list[Upload], str]:
    kind = media_type(request)
    body = await read_body(request, body_limit(settings.max_upload_bytes, MAX_BATCH_ITEMS))
    if kind == "application/json":
        req = parse_json(body, BatchDescribeJSON)
        _check_count(len(req.items))
        uploads = [
            Upload(
                decode_base64(item.image_base64, f"items[{i}].image_base64"),
                f"items[{i}]",
                item.model_dump(exclude={"image_base64"}, exclude_none=True),
            )
            for i, item in enumerate(req.items)
        ]
        style = req.style
    else:
        uploads, fields = await parse_form(request, body)
        style = fields.pop("style", None)
        if fields:
            raise ApiError(400, "invalid_request", f"unexpected multipart fields {sorted(fields)}; only 'style'")
        _check_count(len(uploads))
    return uploads, check_style(style, settings.style)


def _check_count(images: int) -> None:
    if images > MAX_BATCH_ITEMS:
        raise ApiError(413, "too_many_images", f"{images} images; at most {MAX_BATCH_ITEMS} per batch request")


async def describe_many(service: Service, uploads: list[Upload], style: str, started: float) -> list[BatchItemResult]:
    """Every upload through the batcher at once; a failing image gets an error entry, not a 4xx."""

    async def one(i: int, upload: Upload) -> BatchItemResult:
        try:
            return BatchItemResult(index=i, result=await run_job(service, upload, style, started))
        except ApiError as exc:
            return BatchItemResult(index=i, error=ErrorBody(error=exc.error, detail=exc.detail))

    return list(await asyncio.gather(*(one(i, u) for i, u in enumerate(uploads))))


def require_store(service: Service) -> DescriptionStore:
    if service.store is None:
        raise ApiError(503, "no_store", "this server has no description store configured (start it with --store)")
    return service.store


async def search_store(
    service: Service, q: str, camera: str | None, since: datetime | None, limit: int
) -> SearchResponse:
    store = require_store(service)
    query = parse_query(q)
    try:
        hits = await run_in_threadpool(store.search, query, camera, since, limit)
    except StoreError as exc:
        raise ApiError(503, "store_unavailable", str(exc), {"Retry-After": "5"}) from None
    return SearchResponse.model_validate(
        {"query": q, "parsed": query.explain(), "results": [hit.to_dict() for hit in hits]}
    )


async def get_description(service: Service, event_id: str) -> StoredOut:
    store = require_store(service)
    try:
        record = await run_in_threadpool(store.get, event_id)
    except StoreError as exc:
        raise ApiError(503, "store_unavailable", str(exc), {"Retry-After": "5"}) from None
    if record is None:
        raise ApiError(404, "not_found", f"no stored description for event {event_id!r}")
    return StoredOut.model_validate(record.to_dict())


def readiness(service: Service) -> tuple[int, Health]:
    if not service.batcher.running:
        return 503, Health(status="unavailable", detail="the batcher is not running (starting or shutting down)")
    return 200, Health(
        status="ready", model_version=service.describer.model_version, backend=service.describer.backend,
        caption_backend=service.describer.caption_backend, queue_depth=service.batcher.queue_depth,
    )


# --- the app ---------------------------------------------------------------------------------------
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Malformed JSON, multipart or base64, or a missing image",
        401: "Missing or wrong API key",
        413: "Body, image file or image dimensions too large",
        415: "Content-Type is not multipart/form-data or application/json",
        422: "Not a usable image (not an image, truncated, empty, decompression bomb) or unknown style",
        503: "Overloaded (queue full or deadline passed) or not ready; see Retry-After",
    }.items()
}


def _upload_body(json_model: type, many: bool) -> dict[str, Any]:
    """OpenAPI for a body that is multipart or JSON (FastAPI cannot infer both for one route)."""
    image = {"type": "string", "format": "binary"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["image"],
                        "properties": {
                            "image": {"type": "array", "items": image} if many else image,
                            "style": {"type": "string", "enum": list(STYLES)},
                            **({} if many else {k: {"type": "string"} for k in ("event_id", "camera_id", "track_id")}),
                        },
                    }
                },
                "application/json": {"schema": json_model.model_json_schema(ref_template="#/components/schemas/{model}")},
            },
        }
    }


def _error_response(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=error, detail=detail).model_dump(), status_code=status, headers=headers)


def create_app(
    describer: DescriberLike, settings: Settings | None = None, store: DescriptionStore | None = None
) -> FastAPI:
    """A ready-to-run app around ``describer``; the batcher starts and drains with the app's lifespan.

    With a ``store``, requests that carry an ``event_id`` are stored and the search routes work;
    the caller owns the store (opens and closes it).
    """
    settings = settings or Settings()
    batcher_metrics = BatcherMetrics()
    service = Service(
        describer=describer,
        settings=settings,
        batcher=MicroBatcher(
            lambda jobs: describe_jobs(describer, jobs),
            max_batch=max(1, min(settings.max_batch, describer.max_batch)),
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.queue_size,
            timeout_s=settings.request_timeout_ms / 1000.0,
            metrics=batcher_metrics,
            name="describe-batcher",
        ),
        http_metrics=HttpMetrics(batcher_metrics.registry),
        store=store,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.batcher.start()
        fields = {
            "model_version": describer.model_version, "backend": describer.backend,
            "caption_backend": describer.caption_backend, "max_batch": service.batcher.max_batch,
            "max_wait_ms": settings.max_wait_ms, "queue_size": settings.queue_size, "auth": bool(settings.api_key),
            "store": store is not None,
        }
        log.info("http api ready", extra={"fields": fields})  # personvlm.serving.jsonlog puts fields in the line
        try:
            yield
        finally:
            await service.batcher.stop(drain=True)

    app = FastAPI(
        title="PersonVLM",
        version="1",
        summary="Structured descriptions and captions of people in surveillance crops",
        lifespan=lifespan,
    )
    app.state.service = service
    _install_error_handlers(app)
    app.add_middleware(HttpMetricsMiddleware, metrics=service.http_metrics)
    auth = [Depends(require_api_key)]

    @app.post(
        "/v1/describe", response_model=DescribeResult, dependencies=auth, responses=_ERRORS,
        openapi_extra=_upload_body(DescribeJSON, many=False), summary="Describe one image",
    )
    async def describe(request: Request, service: ServiceDep) -> DescribeResult:
        """Multipart (`image` file part) or JSON (`image_base64`); optional `style` and event metadata."""
        started = time.perf_counter()
        upload, style = await read_describe_request(request, service.settings)
        return await run_job(service, upload, style, started)

    @app.post(
        "/v1/describe/batch", response_model=BatchDescribeResponse, dependencies=auth, responses=_ERRORS,
        openapi_extra=_upload_body(BatchDescribeJSON, many=True), summary="Describe several images",
    )
    async def describe_batch(request: Request, service: ServiceDep) -> BatchDescribeResponse:
        """Up to 64 images; each result has `result` or its own `error`, so one bad image fails alone."""
        started = time.perf_counter()
        uploads, style = await read_batch_request(request, service.settings)
        results = await describe_many(service, uploads, style, started)
        return BatchDescribeResponse(
            results=results,
            latency_ms=round((time.perf_counter() - started) * 1000.0, 3),
            model_version=service.describer.model_version,
        )

    @app.get("/v1/search", response_model=SearchResponse, dependencies=auth, responses=_ERRORS,
             summary="Search stored descriptions")
    async def search(
        service: ServiceDep,
        q: Annotated[str, Query(max_length=500, description='e.g. "woman in a red coat with a suitcase, no hat"')] = "",
        camera: Annotated[str | None, Query(max_length=200)] = None,
        since: Annotated[datetime | None, Query(description="ISO 8601; naive times are UTC")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 20,
    ) -> SearchResponse:
        """Colours+garments, bags, held objects, gender, age, headwear and negations become attribute
        filters; other words are full-text terms. An empty query lists the most recent events."""
        return await search_store(service, q, camera, since, limit)

    @app.get("/v1/descriptions/{event_id}", response_model=StoredOut, dependencies=auth,
             responses={**_ERRORS, 404: {"model": ErrorBody, "description": "No such event"}},
             summary="One stored description")
    async def description(event_id: str, service: ServiceDep) -> StoredOut:
        return await get_description(service, event_id)

    @app.get("/healthz", response_model=Health, response_model_exclude_none=True, summary="Liveness: the process answers")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}}, summary="Readiness")
    async def readyz(service: ServiceDep) -> JSONResponse:
        status, health = readiness(service)
        return JSONResponse(health.model_dump(exclude_none=True), status_code=status)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(service: ServiceDep) -> Response:
        payload, content_type = render(service.http_metrics.registry)
        return Response(payload, media_type=content_type)

    return app


def _install_error_handlers(app: FastAPI) -> None:
    """One JSON error shape for our errors, FastAPI's validation errors and Starlette's 404/405."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        )
        return _error_response(422, "invalid_request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


class HttpMetricsMiddleware:
    """Counts requests by route template and status, and times them.

    Plain ASGI rather than ``@app.middleware("http")``: that wrapper adds a task and two memory
    streams to every request, a measurable cost at hundreds of requests per second.
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")  # the router sets "route" on a match
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.seconds.labels(path).observe(time.perf_counter() - start)
