"""Turning an HTTP request into images the model may see, or a clear 4xx ``ApiError``.

The rules an operator relies on live here, in one place for the single and the batch route:
the body is read with a hard size limit (checked against Content-Length first, then while
streaming, so a liar cannot make the server buffer gigabytes); only multipart and JSON are
accepted; the declared content type of a part is ignored and the bytes are sniffed by
``personvlm.imageio.decode_bytes``, which also refuses truncated files, empty images and
decompression bombs before they are expanded.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from PIL import Image
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request

from personvlm.imageio import ImageError, decode_bytes
from personvlm.schema import STYLES

# A person crop is at most a few megapixels; bigger decoded images are refused, which bounds
# the memory of concurrent requests (4096x4096x3 = 48 MiB each) far below a bomb's.
MAX_IMAGE_PIXELS = 4096 * 4096
# base64 turns 3 bytes into 4; JSON and multipart framing add a little more.
_ENVELOPE_SLACK = 64 * 1024

ACCEPTED_TYPES = ("multipart/form-data", "application/json")

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An HTTP error with a stable code and a message for the client (rendered as ``ErrorBody``)."""

    def __init__(self, status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})


@dataclass
class Upload:
    """One image's encoded bytes, where they came from (for messages) and its event metadata."""

    data: bytes
    source: str
    event: dict[str, Any] = field(default_factory=dict)


def body_limit(max_upload_bytes: int, images: int = 1) -> int:
    """Largest request body that can carry ``images`` uploads of ``max_upload_bytes`` each."""
    return images * (max_upload_bytes * 4 // 3 + 4) + _ENVELOPE_SLACK


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, at_least=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int, at_least: bool = False) -> ApiError:
    what = f"at least {size}" if at_least else str(size)
    return ApiError(413, "payload_too_large", f"request body is {what} bytes; the limit is {limit} bytes")


def media_type(request: Request) -> str:
    """The declared body type, or 415 naming what is accepted."""
    declared = request.headers.get("content-type", "")
    kind = declared.split(";", 1)[0].strip().lower()
    if kind not in ACCEPTED_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {declared or '(none)'!r} is not accepted; send multipart/form-data with an "
            f"'image' file part, or application/json with 'image_base64'",
        )
    return kind


def parse_json(body: bytes, model: type[M]) -> M:
    """Validate a JSON body against ``model``; 400 with the first problems spelled out."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    return validate(data, model, "request body")


def validate(data: Any, model: type[M], what: str) -> M:
    """``model.model_validate(data)``, or 400 naming the first few fields that are wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise ApiError(400, "invalid_request", f"{what} does not match {model.__name__}: {problems}") from None


def decode_base64(text: str, source: str) -> bytes:
    """Strict standard base64 (whitespace tolerated), or 400 naming the field."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "invalid_base64", f"{source}: not valid base64 ({exc})") from None


async def parse_form(request: Request, body: bytes) -> tuple[list[Upload], dict[str, str]]:
    """Multipart body -> the ``image`` file parts (in order) and the other fields (last value wins)."""

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except Exception as exc:  # python-multipart raises several types for a malformed body
        raise ApiError(400, "invalid_multipart", f"cannot parse multipart/form-data body: {exc}") from None
    uploads: list[Upload] = []
    fields: dict[str, str] = {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "image":
                    raise ApiError(400, "invalid_request", f"unexpected file part {key!r}; send images as 'image'")
                uploads.append(Upload(await value.read(), f"upload 'image' ({value.filename or 'unnamed'})"))
            else:
                fields[key] = value
    finally:
        await form.close()
    if not uploads:
        what = "a text field" if "image" in fields else "no part"
        raise ApiError(400, "missing_image", f"multipart body has {what} named 'image'; send the image as a file part")
    return uploads, fields


def check_style(style: str | None, default: str) -> str:
    """The requested caption style, or 422 listing the legal ones."""
    chosen = default if style in (None, "") else style
    if chosen not in STYLES:
        raise ApiError(422, "unknown_style", f"style {chosen!r} is not one of: {', '.join(STYLES)}")
    return chosen


def check_size(upload: Upload, max_upload_bytes: int) -> None:
    if len(upload.data) > max_upload_bytes:
        raise ApiError(
            413, "payload_too_large", f"{upload.source} is {len(upload.data)} bytes; the limit is {max_upload_bytes}"
        )


async def decode_upload(upload: Upload, max_upload_bytes: int) -> Image.Image:
    """Sniff and decode one upload off the event loop; 413 when too big, 422 when not a usable image."""
    check_size(upload, max_upload_bytes)
    try:
        return await run_in_threadpool(decode_bytes, upload.data, upload.source, MAX_IMAGE_PIXELS)
    except ImageError as exc:
        raise ApiError(422, "invalid_image", str(exc)) from None
