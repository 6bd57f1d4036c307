"""HTTP API: valid requests, every kind of bad input (each followed by a valid request, so the
server demonstrably keeps serving), auth, overload, health and metrics. The bad-input table runs
both in-process (TestClient) and against a real uvicorn server on a loopback port."""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image

from crops import encoded
from personvlm.describer import Describer
from personvlm.schema import NAMES, PersonDescription, parse, to_compact
from personvlm.serving.api import Job, create_app, describe_jobs
from personvlm.serving.config import Settings
from personvlm.serving.store import open_store

API_KEY = "test-key-123"
MAX_UPLOAD = 200_000
AUTH = {"Authorization": f"Bearer {API_KEY}"}


class FakeDescriber:
    """Deterministic stand-in for the model: the upper colour is the image's dominant channel."""

    model_version = "fake-1"
    backend = "torch"
    caption_backend = "onnxruntime"
    max_batch = 32

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[tuple[int, str]] = []

    def describe(self, images: Sequence[Image.Image], style: str = "compact") -> list[PersonDescription]:
        self.calls.append((len(images), style))
        time.sleep(self.delay)
        out = []
        for img in images:
            r, g, b = img.convert("RGB").resize((1, 1)).getpixel((0, 0))
            colour = {0: "red", 1: "green", 2: "blue"}[max(range(3), key=(r, g, b).__getitem__)]
            desc = PersonDescription.from_values({"gender": "male", "upper_color": colour}, confidence=0.8)
            out.append(desc.replace(caption=to_compact(desc), style=style))
        return out


# --- inputs ------------------------------------------------------------------------------------
def jpeg(colour: tuple[int, int, int] = (200, 20, 20), size: tuple[int, int] = (64, 128)) -> bytes:
    return encoded(size, colour, "JPEG", quality=90)


def png_bytes(colour: tuple[int, int, int] = (20, 20, 200)) -> bytes:
    return encoded((48, 96), colour, "PNG")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, idat: bytes, bit_depth: int = 8) -> bytes:
    """A grayscale PNG assembled by hand, so it can claim any size."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def png_bomb(side: int = 20_000) -> bytes:
    """A real 1-bit side x side PNG of zeros: ~50 KB on the wire, 400 M pixels (1.2 GB RGB) decoded.
    Compressed row by row so the test never holds the 50 MB of raw scanlines."""
    row = bytes(1 + side // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    return raw_png(side, side, idat, bit_depth=1)


BOMB = png_bomb()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def multipart(data: bytes, name: str = "person.jpg", ctype: str = "image/jpeg", **fields: str) -> dict[str, Any]:
    return {"files": {"image": (name, data, ctype)}, "data": fields}


# (id, request kwargs, headers, status, error code, text the detail must contain)
BAD_INPUTS: list[tuple[str, dict[str, Any], dict[str, str], int, str, str]] = [
    ("non-image bytes", multipart(b"%PDF-1.4 definitely not a picture"), AUTH, 422, "invalid_image",
     "not an image"),
    ("truncated jpeg", multipart(jpeg()[:300]), AUTH, 422, "invalid_image", "truncated"),
    ("0x0 png", multipart(raw_png(0, 0, zlib.compress(b"")), "empty.png", "image/png"), AUTH, 422,
     "invalid_image", "upload 'image' (empty.png)"),
    ("png bomb", multipart(BOMB, "bomb.png", "image/png"), AUTH, 422, "invalid_image", "decompression bomb"),
    ("blank png", multipart(raw_png(4, 2, zlib.compress(b"\0" * 10)), "black.png", "image/png"), AUTH, 422,
     "invalid_image", "image is blank"),
    ("oversize upload", multipart(b"\xff\xd8" + bytes(MAX_UPLOAD + 10)), AUTH, 413, "payload_too_large",
     f"the limit is {MAX_UPLOAD}"),
    ("oversize json", {"json": {"image_base64": b64(bytes(MAX_UPLOAD * 2))}}, AUTH, 413, "payload_too_large",
     "request body is"),
    ("wrong content type", {"content": jpeg()}, {**AUTH, "Content-Type": "image/jpeg"}, 415,
     "unsupported_media_type", "'image/jpeg' is not accepted"),
    ("no content type", {"content": b"abc"}, AUTH, 415, "unsupported_media_type", "'(none)' is not accepted"),
    ("bad base64", {"json": {"image_base64": "not base64!!"}}, AUTH, 400, "invalid_base64",
     "image_base64: not valid base64"),
    ("malformed json", {"content": b'{"image_base64": ', "headers": {"Content-Type": "application/json"}},
     AUTH, 400, "invalid_json", "not valid JSON"),
    ("json without image", {"json": {"style": "compact"}}, AUTH, 400, "invalid_request", "image_base64: Field required"),
    ("multipart without image", {"files": {"photo": ("a.jpg", jpeg(), "image/jpeg")}}, AUTH, 400,
     "invalid_request", "unexpected file part 'photo'"),
    ("unknown style", multipart(jpeg(), style="poetic"), AUTH, 422, "unknown_style",
     "style 'poetic' is not one of: compact, natural"),
    ("unknown style json", {"json": {"image_base64": b64(jpeg()), "style": "haiku"}}, AUTH, 422, "unknown_style",
     "'haiku'"),
    ("missing api key", multipart(jpeg()), {}, 401, "unauthorized", "missing 'Authorization: Bearer"),
    ("wrong api key", multipart(jpeg()), {"Authorization": "Bearer nope"}, 401, "unauthorized", "invalid API key"),
    ("unknown multipart field", multipart(jpeg(), eventid="x"), AUTH, 400, "invalid_request",
     "eventid: Extra inputs are not permitted"),
    ("bad event time", multipart(jpeg(), event_id="x", ts="yesterday"), AUTH, 400, "invalid_request",
     "ts: Input should be a valid datetime"),
    ("wrong auth scheme", multipart(jpeg()), {"Authorization": f"Basic {API_KEY}"}, 401, "unauthorized",
     "missing 'Authorization: Bearer"),
]


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {"api_key": API_KEY, "max_upload_bytes": MAX_UPLOAD, "max_batch": 8, "max_wait_ms": 5}
    return Settings(**{**base, **kw})


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """Run ``app`` under a real uvicorn server on a free loopback port, in a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start within 10 s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module", params=["asgi", "uvicorn"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx2.Client | TestClient]:
    """The app with a fresh SQLite store, in-process (``asgi``) or behind real uvicorn."""
    with open_store(tmp_path_factory.mktemp("store") / "events.db") as store:
        app = create_app(FakeDescriber(), settings(), store)
        if request.param == "asgi":
            with TestClient(app) as tc:
                yield tc
        else:
            with uvicorn_server(app) as url, httpx2.Client(base_url=url, timeout=30) as hc:
                yield hc


def assert_valid_result(body: dict[str, Any], style: str = "compact") -> None:
    assert set(body["attributes"]) == set(NAMES)
    assert body["attributes"]["gender"] == {"value": "male", "confidence": 0.8}
    assert body["caption"].startswith("male")
    assert body["style"] == style
    assert body["model_version"] == "fake-1"
    assert body["latency_ms"] > 0


def test_describe_multipart(client: httpx2.Client) -> None:
    r = client.post("/v1/describe", headers=AUTH, **multipart(jpeg((220, 30, 30))))
    assert r.status_code == 200, r.text
    body = r.json()
    assert_valid_result(body)
    assert body["attributes"]["upper_color"]["value"] == "red"
    assert body["event_id"] is None and body["stored"] is False


def test_event_id_stores_result_for_lookup_and_search(client: httpx2.Client) -> None:
    r = client.post("/v1/describe", headers=AUTH,
                    **multipart(jpeg((220, 30, 30)), event_id="cam7-001", camera_id="cam7", track_id="12", ts="1700000000"))
    assert r.status_code == 200, r.text
    assert r.json()["stored"] is True and r.json()["event_id"] == "cam7-001"
    blue = {"image_base64": b64(png_bytes()), "event_id": "cam8-001", "camera_id": "cam8", "track_id": 5,
            "ts": "2026-11-23T14:00:00"}
    assert client.post("/v1/describe", headers=AUTH, json=blue).json()["stored"] is True

    got = client.get("/v1/descriptions/cam7-001", headers=AUTH)
    assert got.status_code == 200, got.text
    record = got.json()
    assert (record["camera_id"], record["track_id"], record["ts"]) == ("cam7", "12", "2023-11-14T22:13:20+00:00")
    assert record["attributes"]["upper_color"] == {"value": "red", "confidence": 0.8}

    hits = client.get("/v1/search", headers=AUTH, params={"q": "man in a red top"})
    assert hits.status_code == 200, hits.text
    assert [h["event_id"] for h in hits.json()["results"]] == ["cam7-001"]
    assert hits.json()["parsed"]["filters"]
    by_camera = client.get("/v1/search", headers=AUTH, params={"q": "", "camera": "cam8"}).json()["results"]
    assert [(h["event_id"], h["track_id"], h["ts"]) for h in by_camera] == [
        ("cam8-001", "5", "2026-11-23T14:00:00+00:00")]

    missing = client.get("/v1/descriptions/nope", headers=AUTH)
    assert missing.status_code == 404 and missing.json() == {
        "error": "not_found", "detail": "no stored description for event 'nope'"}
    bad_limit = client.get("/v1/search", headers=AUTH, params={"q": "red", "limit": 0})
    assert bad_limit.status_code == 422 and "limit" in bad_limit.json()["detail"]
    assert client.get("/v1/search", params={"q": "red"}).status_code == 401


def test_describe_json_base64_natural_style(client: httpx2.Client) -> None:
    r = client.post("/v1/describe", headers=AUTH, json={"image_base64": b64(png_bytes()), "style": "natural"})
    assert r.status_code == 200, r.text
    assert_valid_result(r.json(), style="natural")
    assert r.json()["attributes"]["upper_color"]["value"] == "blue"


def test_content_is_sniffed_not_trusted(client: httpx2.Client) -> None:
    """A PNG declared as text/plain named .jpg is still a PNG and is accepted."""
    r = client.post("/v1/describe", headers=AUTH, **multipart(png_bytes((10, 200, 10)), "x.jpg", "text/plain"))
    assert r.status_code == 200, r.text
    assert r.json()["attributes"]["upper_color"]["value"] == "green"


@pytest.mark.parametrize(("request_kw", "headers", "status", "error", "text"),
                         [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_gets_clear_error_and_server_keeps_serving(
    client: httpx2.Client, request_kw: dict[str, Any], headers: dict[str, str], status: int, error: str, text: str
) -> None:
    kw = dict(request_kw)
    headers = {**headers, **kw.pop("headers", {})}
    r = client.post("/v1/describe", headers=headers, **kw)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == error
    assert text in body["detail"], body["detail"]
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    ok = client.post("/v1/describe", headers=AUTH, **multipart(jpeg()))
    assert ok.status_code == 200, ok.text


def test_batch_json_reports_each_bad_image_alone(client: httpx2.Client) -> None:
    items = [
        {"image_base64": b64(jpeg((200, 0, 0))), "event_id": "a"},
        {"image_base64": b64(b"plain text")},
        {"image_base64": b64(png_bytes((0, 0, 200)))},
    ]
    r = client.post("/v1/describe/batch", headers=AUTH, json={"items": items, "style": "compact"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [res["index"] for res in results] == [0, 1, 2]
    assert results[0]["result"]["attributes"]["upper_color"]["value"] == "red"
    assert results[0]["result"]["event_id"] == "a"
    assert results[1]["result"] is None
    assert results[1]["error"] == {"error": "invalid_image", "detail": "items[1]: not an image (content is not a "
                                   "format Pillow can read)"}
    assert results[2]["result"]["attributes"]["upper_color"]["value"] == "blue"


def test_batch_multipart_and_its_limits(client: httpx2.Client) -> None:
    files = [("image", (f"{i}.jpg", jpeg(), "image/jpeg")) for i in range(3)]
    r = client.post("/v1/describe/batch", headers=AUTH, files=files, data={"style": "natural"})
    assert r.status_code == 200, r.text
    assert [res["result"]["style"] for res in r.json()["results"]] == ["natural"] * 3
    empty = client.post("/v1/describe/batch", headers=AUTH, json={"items": []})
    assert empty.status_code == 400 and "items: List should have at least 1 item" in empty.json()["detail"]
    many = client.post("/v1/describe/batch", headers=AUTH, json={"items": [{"image_base64": "AA=="}] * 65})
    assert many.status_code == 413 and "at most 64" in many.json()["detail"]


def test_health_readiness_metrics_and_docs_need_no_key(client: httpx2.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == "fake-1"
    assert ready.json()["backend"] == "torch" and ready.json()["caption_backend"] == "onnxruntime"
    client.post("/v1/describe", headers=AUTH, **multipart(jpeg()))
    client.post("/v1/describe", headers=AUTH, content=b"x")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert "personvlm_batch_size_bucket" in text
    assert "personvlm_queue_depth" in text
    assert 'personvlm_http_requests_total{route="/v1/describe",status="200"}' in text
    assert 'personvlm_http_requests_total{route="/v1/describe",status="415"}' in text
    assert 'personvlm_http_request_seconds_count{route="/v1/describe"}' in text
    assert "process_resident_memory_bytes" in text and "process_cpu_seconds_total" in text
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/v1/describe"]["post"]["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "application/json"}
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["paths"]["/v1/describe"]["post"]["security"] == [{"HTTPBearer": []}]
    assert client.get("/docs").status_code == 200
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_no_api_key_configured_means_open_and_no_store_means_no_search() -> None:
    with TestClient(create_app(FakeDescriber(), settings(api_key=None))) as tc:
        r = tc.post("/v1/describe", **multipart(jpeg(), event_id="e9"))
        assert r.status_code == 200 and r.json()["stored"] is False
        search = tc.get("/v1/search", params={"q": "red"})
        assert search.status_code == 503 and search.json()["error"] == "no_store"


def test_overload_answers_503_with_retry_after_then_recovers() -> None:
    """A slow model, a queue of 2 and 12 simultaneous clients: the excess get 503 at once."""
    slow = FakeDescriber(delay=0.3)
    app = create_app(slow, settings(api_key=None, max_batch=1, max_wait_ms=0, queue_size=2))

    async def burst(url: str) -> list[httpx2.Response]:
        async with httpx2.AsyncClient(base_url=url, timeout=30) as ac:
            return await asyncio.gather(*(ac.post("/v1/describe", **multipart(jpeg())) for _ in range(12)))

    with uvicorn_server(app) as url:
        responses = asyncio.run(burst(url))
        codes = sorted(r.status_code for r in responses)
        assert codes.count(200) >= 3 and codes.count(503) >= 1, codes
        rejected = next(r for r in responses if r.status_code == 503)
        assert rejected.json()["error"] == "overloaded" and "queue full" in rejected.json()["detail"]
        assert int(rejected.headers["retry-after"]) >= 1
        assert httpx2.post(f"{url}/v1/describe", **multipart(jpeg()), timeout=30).status_code == 200


def test_deadline_passed_in_queue_is_503_and_not_computed() -> None:
    slow = FakeDescriber(delay=0.4)
    app = create_app(slow, settings(api_key=None, max_batch=1, max_wait_ms=0, request_timeout_ms=100))

    async def two(url: str) -> list[httpx2.Response]:
        async with httpx2.AsyncClient(base_url=url, timeout=30) as ac:
            first = asyncio.create_task(ac.post("/v1/describe", **multipart(jpeg())))
            await asyncio.sleep(0.15)
            return [await ac.post("/v1/describe", **multipart(jpeg())), await first]

    with uvicorn_server(app) as url:
        late, first = asyncio.run(two(url))
    assert first.status_code == 200
    assert late.status_code == 503 and "past its deadline of 100 ms; not computed" in late.json()["detail"]
    assert len(slow.calls) == 1


def test_describe_jobs_groups_styles_and_keeps_order() -> None:
    fake = FakeDescriber()
    red, blue = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    jobs = [Job(red, "compact"), Job(blue, "natural"), Job(blue, "compact")]
    out = describe_jobs(fake, jobs)
    assert [(d.value("upper_color"), d.style) for d in out] == [("red", "compact"), ("blue", "natural"),
                                                                ("blue", "compact")]
    assert fake.calls == [(2, "compact"), (1, "natural")]


def test_real_tiny_model_behind_uvicorn_describes_in_both_styles(tmp_path: Path) -> None:
    """The actual Describer (randomly initialised tiny model) end to end: every attribute present,
    compact captions parse back to the structure, and stored events are searchable."""
    describer = Describer.tiny(seed=0)
    with open_store(tmp_path / "events.db") as store:
        app = create_app(describer, settings(api_key=None, max_batch=8, max_wait_ms=20), store)
        with uvicorn_server(app) as url, httpx2.Client(base_url=url, timeout=60) as hc:
            compact = hc.post("/v1/describe", **multipart(jpeg(), event_id="t1", camera_id="c1"))
            natural = hc.post("/v1/describe", json={"image_base64": b64(png_bytes()), "style": "natural"})
            batch = hc.post("/v1/describe/batch", files=[("image", (f"{i}.jpg", jpeg(), "image/jpeg")) for i in range(3)])
            stored = hc.get("/v1/descriptions/t1")
    assert compact.status_code == 200 and natural.status_code == 200 and batch.status_code == 200
    body = compact.json()
    assert body["model_version"] == "tiny-seed0" and body["stored"] is True
    assert set(body["attributes"]) == set(NAMES)
    values = {k: tuple(v["value"]) if isinstance(v["value"], list) else v["value"] for k, v in body["attributes"].items()}
    assert parse(body["caption"]).values() == PersonDescription.from_values(values).values()
    assert natural.json()["style"] == "natural" and natural.json()["caption"]
    assert [r["result"]["caption"] for r in batch.json()["results"]] == [body["caption"]] * 3
    assert stored.json()["caption"] == body["caption"]


def test_before_start_up_not_ready_and_requests_get_503_unavailable() -> None:
    tc = TestClient(create_app(FakeDescriber(), settings(api_key=None)))  # no `with`: lifespan never ran
    ready = tc.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    r = tc.post("/v1/describe", **multipart(jpeg()))
    assert r.status_code == 503 and r.json()["error"] == "unavailable"
    assert "not running" in r.json()["detail"] and r.headers["retry-after"] == "1"
    assert tc.get("/healthz").status_code == 200  # alive, just not ready


def test_shutdown_finishes_requests_in_flight() -> None:
    """What SIGTERM does to `personvlm serve`: stop accepting, finish what is running, then exit."""
    slow = FakeDescriber(delay=0.5)
    app = create_app(slow, settings(api_key=None, max_batch=4, max_wait_ms=0))
    responses: list[httpx2.Response] = []
    with uvicorn_server(app) as url:
        sender = threading.Thread(
            target=lambda: responses.append(httpx2.post(f"{url}/v1/describe", **multipart(jpeg()), timeout=30))
        )
        sender.start()
        deadline = time.monotonic() + 20
        while not slow.calls and time.monotonic() < deadline:  # wait until the model is computing it
            time.sleep(0.01)
    sender.join(10)
    assert slow.calls and [r.status_code for r in responses] == [200]
    assert not app.state.service.batcher.running


class PoisonDescriber(FakeDescriber):
    """Fails any model call that contains a pure-green image, read at its top-left pixel, clear of the
    test crops' mark (a stand-in for a model bug)."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts: list[int] = []  # batch size of every call, failed ones included

    def describe(self, images: Sequence[Image.Image], style: str = "compact") -> list[PersonDescription]:
        self.attempts.append(len(images))
        if any(img.getpixel((0, 0)) == (0, 255, 0) for img in images):
            raise RuntimeError("model blew up")
        return super().describe(images, style)


def test_model_failure_on_one_image_fails_only_that_image() -> None:
    poison = PoisonDescriber()
    with TestClient(create_app(poison, settings(api_key=None, max_batch=8, max_wait_ms=50))) as tc:
        items = [{"image_base64": b64(png_bytes(c))} for c in ((200, 0, 0), (0, 255, 0), (0, 0, 200))]
        r = tc.post("/v1/describe/batch", json={"items": items})
        single = tc.post("/v1/describe", **multipart(png_bytes((0, 255, 0)), "green.png"))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [res["error"]["error"] if res["error"] else res["result"]["attributes"]["upper_color"]["value"]
            for res in results] == ["red", "inference_failed", "blue"]
    assert "model blew up" in results[1]["error"]["detail"]
    assert poison.attempts[:4] == [3, 1, 1, 1]  # batched together first, then retried one by one
    assert single.status_code == 500 and single.json()["error"] == "inference_failed"
    assert "upload 'image' (green.png)" in single.json()["detail"]
