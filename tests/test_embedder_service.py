"""The Embedder gRPC service end to end: a real server on 127.0.0.1 (port 0),
loaded once per module, called through the generated stubs.

The statuses asserted are the ones documented in
proto/likeness/v1/embedder.proto; the awkward inputs and what each must get
are listed in tests/data/README.md.
"""

from __future__ import annotations

import importlib.util
import io
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from pydantic import ValidationError

from embedder.align import TEMPLATES, align_face
from embedder.backends import DEFAULT_MODEL
from embedder.decode import decode_image
from embedder.pipeline import EmbedResult, FacePipeline
from embedder.server import EmbedderServer, create_server
from embedder.servicer import MAX_BATCH_ITEMS, EmbedderServicer
from embedder.settings import EmbedderSettings
from likeness.errors import DeadlineExceeded
from likeness.selection import FaceSelection as Selection
from likeness.v1 import common_pb2, embedder_pb2, embedder_pb2_grpc

DATA = Path(__file__).resolve().parent / "data"
LFW = DATA / "lfw"
BAD = DATA / "bad"
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
LARGEST = common_pb2.FACE_SELECTION_LARGEST
ALL = common_pb2.FACE_SELECTION_ALL
REQUIRE_SINGLE = common_pb2.FACE_SELECTION_REQUIRE_SINGLE
UNKNOWN = cast("common_pb2.FaceSelection", 99)  # no such FaceSelection value

# What Embed (default selection) answers for each file of tests/data/bad, as
# documented in tests/data/README.md: a status code, or OK with the number of
# faces returned and the decoded image's (width, height).
OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXPECTED: dict[str, tuple[grpc.StatusCode, str]] = {
    "empty.bin": (INVALID, "image is empty (0 bytes)"),
    "random.bin": (INVALID, "not a supported image"),
    "text.txt": (INVALID, "not a supported image"),
    "truncated.jpg": (INVALID, "truncated or corrupt"),
    "corrupt_idat.png": (INVALID, "truncated or corrupt"),
    "tiny_1x1.png": (INVALID, "each side must be at least 32"),
    "bomb_20000x20000.png": (INVALID, "more than 40000000 pixels"),
    "oversized_8000x6000.png": (INVALID, "8000x6000 = 48000000 pixels"),
    "face.gif": (INVALID, "format GIF is not supported"),
    "no_face.jpg": (grpc.StatusCode.NOT_FOUND, "no face"),
    "three_faces.jpg": (OK, "528x200"),
    "face_cmyk.jpg": (OK, "200x200"),
    "face_gray.png": (OK, "200x200"),
    "face_rgba.png": (OK, "200x200"),
    "face.webp": (OK, "200x200"),
    "face.bmp": (OK, "200x200"),
    "exif_rotated.jpg": (OK, "250x200"),
}


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_bad_inputs", DATA / "make_bad_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server() -> Iterator[EmbedderServer]:
    settings = EmbedderSettings(
        host="127.0.0.1",
        port=0,
        backend="likeness-mobilenet",
        model_dir=None,
        max_message_bytes=MAX_MESSAGE_BYTES,
        workers=4,
    )
    srv = create_server(settings)
    srv.start()
    yield srv
    srv.stop(0)


@pytest.fixture(scope="module")
def channel(server: EmbedderServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(
        server.address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> embedder_pb2_grpc.EmbedderStub:
    return embedder_pb2_grpc.EmbedderStub(channel)


def _image(name: str) -> bytes:
    folder = LFW if (LFW / name).exists() else BAD
    return (folder / name).read_bytes()


def _iou(a: Any, b: Any) -> float:
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    inter = max(0, width) * max(0, height)
    area = (a.right - a.left) * (a.bottom - a.top) + (b.right - b.left) * (b.bottom - b.top)
    return inter / (area - inter)


def _vector(face: Any) -> np.ndarray:
    return np.array(face.embedding.values, dtype=np.float32)


class _Failure:
    """A failed call's status code and message."""

    def __init__(self, error: grpc.RpcError) -> None:
        self._code: grpc.StatusCode = error.code()
        self._details: str = error.details() or ""

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def _error(call: Any) -> _Failure:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    failure = _Failure(caught.value)
    assert "Traceback" not in failure.details()
    return failure


def _still_serves(stub: embedder_pb2_grpc.EmbedderStub) -> None:
    reply = stub.Embed(embedder_pb2.EmbedRequest(image=_image("Emma_Watson_0001.jpg")), timeout=60)
    assert len(reply.faces) == 1


def test_info_matches_the_manifest(stub: embedder_pb2_grpc.EmbedderStub) -> None:
    manifest = json.loads((DEFAULT_MODEL / "manifest.json").read_text())
    info = stub.Info(embedder_pb2.InfoRequest(), timeout=10)
    assert info.backend == "likeness-mobilenet" == manifest["backend"]
    assert info.model_id == manifest["model_id"]
    assert info.model_fingerprint == manifest["fingerprint"]
    assert info.dim == manifest["dim"]
    assert info.input_size == manifest["input_size"]
    assert info.default_threshold == pytest.approx(manifest["default_threshold"])


def test_embed_returns_box_landmarks_quality_and_unit_embedding(
    stub: embedder_pb2_grpc.EmbedderStub, server: EmbedderServer
) -> None:
    data = _image("Emma_Watson_0001.jpg")
    info = stub.Info(embedder_pb2.InfoRequest(), timeout=10)
    reply = stub.Embed(embedder_pb2.EmbedRequest(image=data), timeout=60)
    assert (reply.image_width, reply.image_height) == (250, 250)
    [face] = reply.faces
    box = face.box
    assert 0 <= box.left < box.right <= 250 and 0 <= box.top < box.bottom <= 250
    assert len(face.landmarks) == 68
    points = np.array([(p.x, p.y) for p in face.landmarks])
    assert (points[36:48, 0] > box.left).all() and (points[36:48, 0] < box.right).all()
    assert face.detection_score > 0
    assert 25 < face.quality.face_size_px < 70
    assert face.quality.sharpness > 30
    assert abs(face.quality.yaw_deg) < 45 and abs(face.quality.roll_deg) < 20
    vector = _vector(face)
    assert vector.shape == (info.dim,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-3)
    assert face.embedding.model_fingerprint == info.model_fingerprint
    # The wire carries exactly what the pipeline computed.
    local = server.pipeline.process(data).faces[0]
    assert (box.left, box.top, box.right, box.bottom) == local.box
    np.testing.assert_allclose(points, local.landmarks, atol=1e-4)
    np.testing.assert_allclose(vector, local.vector, atol=1e-5)


def test_faces_are_aligned_with_the_models_own_template(
    stub: embedder_pb2_grpc.EmbedderStub, server: EmbedderServer
) -> None:
    # The model was trained on crops of one template; serving another would
    # quietly cost accuracy. The served vector is the model applied to a crop
    # aligned with the manifest's template, and differs from another crop's.
    manifest = json.loads((DEFAULT_MODEL / "manifest.json").read_text())
    template = manifest["config"].get("template", "arcface")
    assert server.backend.manifest.crop_template == template
    data = _image("Emma_Watson_0001.jpg")
    [face] = stub.Embed(embedder_pb2.EmbedRequest(image=data), timeout=60).faces
    image = decode_image(data)
    landmarks = np.array([(p.x, p.y) for p in face.landmarks], dtype=np.float32)

    def embedded(name: str) -> np.ndarray:
        crop = align_face(image, landmarks, manifest["input_size"], name)
        backend = cast(Any, server.backend)
        return np.asarray(backend.embed_arrays(crop.crop[None], crop.landmarks[None])[0])

    np.testing.assert_allclose(_vector(face), embedded(template), atol=1e-4)
    other = next(t for t in sorted(TEMPLATES) if t != template)
    assert float(_vector(face) @ embedded(other)) < 0.999


def test_selection_largest_is_the_default_and_returns_the_largest_face(
    stub: embedder_pb2_grpc.EmbedderStub,
) -> None:
    data = _image("three_faces.jpg")
    default = stub.Embed(embedder_pb2.EmbedRequest(image=data), timeout=60)
    largest = stub.Embed(embedder_pb2.EmbedRequest(image=data, selection=LARGEST), timeout=60)
    everything = stub.Embed(embedder_pb2.EmbedRequest(image=data, selection=ALL), timeout=60)
    assert len(default.faces) == len(largest.faces) == 1
    assert default.faces[0].box == largest.faces[0].box
    np.testing.assert_allclose(_vector(default.faces[0]), _vector(largest.faces[0]), atol=1e-4)
    # LARGEST is served by the cascade's fast pass, ALL by the upsampled
    # HOG step (embedder.cascade): the same face, boxed a few pixels apart.
    assert largest.faces[0].detector == "hog-fast"
    assert everything.faces[0].detector == "hog-upsampled"
    assert _iou(largest.faces[0].box, everything.faces[0].box) > 0.7
    assert float(_vector(largest.faces[0]) @ _vector(everything.faces[0])) > 0.9


def test_selection_all_returns_every_face_largest_first(
    stub: embedder_pb2_grpc.EmbedderStub,
) -> None:
    reply = stub.Embed(
        embedder_pb2.EmbedRequest(image=_image("three_faces.jpg"), selection=ALL), timeout=60
    )
    assert len(reply.faces) == 3
    areas = [(f.box.right - f.box.left) * (f.box.bottom - f.box.top) for f in reply.faces]
    assert areas == sorted(areas, reverse=True) and areas[0] > areas[2]
    # The generator placed the faces left to right at decreasing scale.
    assert [f.box.left for f in reply.faces] == sorted(f.box.left for f in reply.faces)
    vectors = np.stack([_vector(f) for f in reply.faces])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert all(len(f.landmarks) == 68 for f in reply.faces)
    assert len({f.embedding.model_fingerprint for f in reply.faces}) == 1


def test_selection_require_single(stub: embedder_pb2_grpc.EmbedderStub) -> None:
    single = stub.Embed(
        embedder_pb2.EmbedRequest(image=_image("Emma_Watson_0001.jpg"), selection=REQUIRE_SINGLE),
        timeout=60,
    )
    assert len(single.faces) == 1
    several = _error(
        lambda: stub.Embed(
            embedder_pb2.EmbedRequest(image=_image("three_faces.jpg"), selection=REQUIRE_SINGLE),
            timeout=60,
        )
    )
    assert several.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "found 3 faces" in several.details()
    none = _error(
        lambda: stub.Embed(
            embedder_pb2.EmbedRequest(image=_image("no_face.jpg"), selection=REQUIRE_SINGLE),
            timeout=60,
        )
    )
    assert none.code() == grpc.StatusCode.NOT_FOUND


def test_unknown_selection_is_invalid_argument(stub: embedder_pb2_grpc.EmbedderStub) -> None:
    error = _error(
        lambda: stub.Embed(
            embedder_pb2.EmbedRequest(image=_image("Emma_Watson_0001.jpg"), selection=UNKNOWN),
            timeout=60,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "selection" in error.details()


def test_every_awkward_input_has_a_documented_expectation() -> None:
    assert {p.name for p in BAD.iterdir()} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_awkward_input_gets_its_documented_status(
    name: str, stub: embedder_pb2_grpc.EmbedderStub
) -> None:
    code, detail = EXPECTED[name]
    request = embedder_pb2.EmbedRequest(image=(BAD / name).read_bytes())
    if code is OK:
        reply = stub.Embed(request, timeout=60)
        assert f"{reply.image_width}x{reply.image_height}" == detail
        [face] = reply.faces
        assert 0 <= face.box.left < face.box.right <= reply.image_width
        assert 0 <= face.box.top < face.box.bottom <= reply.image_height
        assert np.linalg.norm(_vector(face)) == pytest.approx(1.0, abs=1e-3)
    else:
        error = _error(lambda: stub.Embed(request, timeout=60))
        assert error.code() == code
        assert detail in error.details()
    _still_serves(stub)


@pytest.mark.parametrize("name", ["face.bmp", "face_rgba.png"])
def test_lossless_variants_embed_like_the_original(
    name: str, stub: embedder_pb2_grpc.EmbedderStub
) -> None:
    buf = io.BytesIO()
    _load_generator().face_reference().save(buf, "PNG")
    original = stub.Embed(embedder_pb2.EmbedRequest(image=buf.getvalue()), timeout=60)
    variant = stub.Embed(embedder_pb2.EmbedRequest(image=_image(name)), timeout=60)
    assert variant.faces[0].box == original.faces[0].box
    np.testing.assert_allclose(_vector(variant.faces[0]), _vector(original.faces[0]), atol=1e-5)


def test_embed_batch_keeps_per_item_errors(stub: embedder_pb2_grpc.EmbedderStub) -> None:
    items = [
        embedder_pb2.EmbedRequest(image=_image("Emma_Watson_0001.jpg")),
        embedder_pb2.EmbedRequest(image=b""),
        embedder_pb2.EmbedRequest(image=_image("no_face.jpg")),
        embedder_pb2.EmbedRequest(image=_image("three_faces.jpg"), selection=ALL),
        embedder_pb2.EmbedRequest(image=_image("truncated.jpg")),
        embedder_pb2.EmbedRequest(image=_image("three_faces.jpg"), selection=REQUIRE_SINGLE),
        embedder_pb2.EmbedRequest(image=_image("Rick_Perry_0001.jpg")),
    ]
    reply = stub.EmbedBatch(embedder_pb2.EmbedBatchRequest(items=items), timeout=120)
    assert len(reply.results) == len(items)
    kinds = [r.WhichOneof("result") for r in reply.results]
    assert kinds == ["response", "error", "error", "response", "error", "error", "response"]
    # Each item gets exactly what the same image alone gets from Embed.
    for item, result in zip(items, reply.results, strict=True):
        if result.HasField("response"):
            alone = stub.Embed(item, timeout=60)
            assert len(result.response.faces) == len(alone.faces)
            for batched, single in zip(result.response.faces, alone.faces, strict=True):
                assert batched.box == single.box
                np.testing.assert_allclose(_vector(batched), _vector(single), atol=1e-4)
        else:
            error = _error(lambda item=item: stub.Embed(item, timeout=60))
            assert result.error.code == error.code().value[0]
            assert result.error.message == error.details()
            assert "Traceback" not in result.error.message
    assert len(reply.results[3].response.faces) == 3


def test_embed_batch_limits_items(stub: embedder_pb2_grpc.EmbedderStub) -> None:
    cheap = embedder_pb2.EmbedRequest(image=b"")  # fails fast: the limit is what is tested
    at_limit = stub.EmbedBatch(
        embedder_pb2.EmbedBatchRequest(items=[cheap] * MAX_BATCH_ITEMS), timeout=60
    )
    assert len(at_limit.results) == MAX_BATCH_ITEMS == 64
    error = _error(
        lambda: stub.EmbedBatch(
            embedder_pb2.EmbedBatchRequest(items=[cheap] * (MAX_BATCH_ITEMS + 1)), timeout=60
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "65" in error.details() and "64" in error.details()


def test_oversized_message_is_resource_exhausted(stub: embedder_pb2_grpc.EmbedderStub) -> None:
    request = embedder_pb2.EmbedRequest(image=b"\xff" * (MAX_MESSAGE_BYTES + 1024))
    error = _error(lambda: stub.Embed(request, timeout=60))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _still_serves(stub)


def test_tiny_deadline_is_deadline_exceeded(stub: embedder_pb2_grpc.EmbedderStub) -> None:
    request = embedder_pb2.EmbedRequest(image=_image("three_faces.jpg"), selection=ALL)
    error = _error(lambda: stub.Embed(request, timeout=0.001))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    _still_serves(stub)


def test_unexpected_failure_is_internal_without_details(
    stub: embedder_pb2_grpc.EmbedderStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal state /etc/passwd")

    monkeypatch.setattr("embedder.pipeline.decode_image", explode)
    error = _error(
        lambda: stub.Embed(
            embedder_pb2.EmbedRequest(image=_image("Emma_Watson_0001.jpg")), timeout=60
        )
    )
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in error.details() and "RuntimeError" not in error.details()
    assert "request id" in error.details()
    monkeypatch.undo()
    _still_serves(stub)


def test_health_reports_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "likeness.v1.Embedder"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_embedder(channel: grpc.Channel) -> None:
    services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert "likeness.v1.Embedder" in services
    assert "grpc.health.v1.Health" in services


def test_concurrent_calls_get_their_own_rows(stub: embedder_pb2_grpc.EmbedderStub) -> None:
    names = [
        "Emma_Watson_0001.jpg",
        "Kurt_Warner_0001.jpg",
        "Calista_Flockhart_0002.jpg",
        "Michael_Phelps_0003.jpg",
    ]
    images = {name: _image(name) for name in names}

    def embed(name: str) -> tuple[str, Any]:
        return name, stub.Embed(embedder_pb2.EmbedRequest(image=images[name]), timeout=120)

    serial = dict(embed(name) for name in names)
    vectors = np.stack([_vector(serial[n].faces[0]) for n in names])
    assert float((vectors @ vectors.T)[~np.eye(4, dtype=bool)].max()) < 0.999

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(embed, [name for _ in range(16) for name in names]))
    assert len(results) == 64
    for name, reply in results:
        [face] = reply.faces
        assert face.box == serial[name].faces[0].box
        np.testing.assert_allclose(_vector(face), _vector(serial[name].faces[0]), atol=1e-4)


# -- settings, shutdown, and the servicer alone ------------------------------------------


@pytest.mark.parametrize("given", ["tls_cert", "tls_key"])
def test_tls_cert_without_key_is_refused(given: str, tmp_path: Path) -> None:
    # One without the other used to serve plaintext without a word.
    with pytest.raises(ValidationError, match="tls_cert and tls_key must be set together"):
        EmbedderSettings(**{given: tmp_path / "x.pem"})
    both = EmbedderSettings(tls_cert=tmp_path / "c.pem", tls_key=tmp_path / "k.pem")
    assert both.tls_cert is not None and both.tls_key is not None


def test_tls_half_set_in_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIKENESS_EMBEDDER_TLS_CERT", str(tmp_path / "c.pem"))
    with pytest.raises(ValidationError, match="tls_key"):
        EmbedderSettings()


class _HeldBackend:
    """The real backend, except that embedding a face waits for ``release``."""

    def __init__(self, real: Any) -> None:
        self.manifest = real.manifest
        self.runtime = real.runtime
        self._real = real
        self.entered = threading.Event()
        self.release = threading.Event()

    def embed(self, faces: Any) -> np.ndarray:
        if len(faces):  # the batcher's warm-up embeds nothing: not held
            self.entered.set()
            self.release.wait(60)
        result: np.ndarray = self._real.embed(faces)
        return result


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as ch:
        try:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError:
            return -1
    return int(reply.status)


def test_a_call_in_flight_when_the_embedder_stops_gets_its_answer(
    server: EmbedderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The settings' grace (from the environment, as an operator sets it) is
    # what stop() waits by default; with none the held call would be cut off.
    monkeypatch.setenv("LIKENESS_EMBEDDER_GRACE_S", "30")
    settings = EmbedderSettings(host="127.0.0.1", port=0)
    held = _HeldBackend(server.backend)
    monkeypatch.setattr("embedder.server.load_backend", lambda *args: held)
    second = create_server(settings)
    second.start()
    outcome: dict[str, Any] = {}
    try:
        with grpc.insecure_channel(second.address) as ch:
            stub = embedder_pb2_grpc.EmbedderStub(ch)

            def embed() -> None:
                try:
                    outcome["reply"] = stub.Embed(
                        embedder_pb2.EmbedRequest(image=_image("Emma_Watson_0001.jpg")),
                        timeout=60,
                    )
                except grpc.RpcError as exc:
                    outcome["code"] = exc.code()  # type: ignore[attr-defined]

            caller = threading.Thread(target=embed)
            caller.start()
            assert held.entered.wait(30)  # the call is inside the model
            stopper = threading.Thread(target=second.stop)
            stopper.start()
            while _health(second.address) == health_pb2.HealthCheckResponse.SERVING:
                pass  # until the stop has begun
            held.release.set()
            caller.join(60)
            stopper.join(60)
    finally:
        held.release.set()
        second.stop(0)
    assert "code" not in outcome, outcome.get("code")
    assert len(outcome["reply"].faces) == 1
    assert len(outcome["reply"].faces[0].embedding.values) == server.backend.manifest.dim


class _Context:
    """A servicer context whose caller is gone (or not) and has a deadline."""

    def __init__(self, *, active: bool = True, remaining: float = 30.0) -> None:
        self._active = active
        self._remaining = remaining

    def is_active(self) -> bool:
        return self._active

    def time_remaining(self) -> float:
        return self._remaining

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", "rid-from-caller"),)

    def trailing_metadata(self) -> None:
        return None


class _Pipeline:
    """Stands in for FacePipeline: answers no faces, or raises per image bytes."""

    def __init__(self, raises: dict[bytes, Exception] | None = None) -> None:
        self.raises = raises or {}
        self.seen: list[bytes] = []

    def process(
        self, data: bytes, selection: Selection = Selection.LARGEST, timeout_s: float | None = None
    ) -> EmbedResult:
        self.seen.append(data)
        if data in self.raises:
            raise self.raises[data]
        return EmbedResult(width=64, height=64, faces=[])


def _servicer(pipeline: _Pipeline, server: EmbedderServer) -> EmbedderServicer:
    return EmbedderServicer(cast("FacePipeline", pipeline), server.backend)


@pytest.mark.parametrize(
    "context", [_Context(active=False), _Context(remaining=0.0)], ids=["cancelled", "expired"]
)
def test_a_gone_caller_is_deadline_exceeded_before_any_work(
    context: _Context, server: EmbedderServer
) -> None:
    pipeline = _Pipeline()
    servicer = _servicer(pipeline, server)
    grpc_context = cast("grpc.ServicerContext", context)
    with pytest.raises(DeadlineExceeded):
        servicer.Embed(embedder_pb2.EmbedRequest(image=b"a"), grpc_context)
    items = [embedder_pb2.EmbedRequest(image=b"a")] * 3
    reply = servicer.EmbedBatch(embedder_pb2.EmbedBatchRequest(items=items), grpc_context)
    codes = [r.error.code for r in reply.results]
    assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED.value[0]] * 3
    assert pipeline.seen == []


def test_batch_stops_working_once_the_deadline_passed(server: EmbedderServer) -> None:
    late = DeadlineExceeded("deadline passed while waiting for the model")
    pipeline = _Pipeline({b"2": late})
    servicer = _servicer(pipeline, server)
    items = [embedder_pb2.EmbedRequest(image=str(i).encode()) for i in range(1, 6)]
    reply = servicer.EmbedBatch(
        embedder_pb2.EmbedBatchRequest(items=items), cast("grpc.ServicerContext", _Context())
    )
    assert [r.WhichOneof("result") for r in reply.results] == ["response"] + ["error"] * 4
    for result in reply.results[1:]:
        assert result.error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
        assert result.error.message == str(late)
    assert pipeline.seen == [b"1", b"2"]


def test_batch_item_failing_unexpectedly_is_internal_and_spares_the_others(
    stub: embedder_pb2_grpc.EmbedderStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    import embedder.pipeline

    real_decode = embedder.pipeline.decode_image
    boom = b"explode-here"

    def decode(data: bytes, max_pixels: int) -> np.ndarray:
        if data == boom:
            raise RuntimeError("secret internal state /etc/passwd")
        return real_decode(data, max_pixels)

    monkeypatch.setattr("embedder.pipeline.decode_image", decode)
    good = embedder_pb2.EmbedRequest(image=_image("Emma_Watson_0001.jpg"))
    request = embedder_pb2.EmbedBatchRequest(
        items=[good, embedder_pb2.EmbedRequest(image=boom), good]
    )
    for sent in ([("x-request-id", "batch-rid-7")], None):
        reply, call = stub.EmbedBatch.with_call(request, timeout=120, metadata=sent)
        assert [r.WhichOneof("result") for r in reply.results] == ["response", "error", "response"]
        assert len(reply.results[0].response.faces) == len(reply.results[2].response.faces) == 1
        error = reply.results[1].error
        assert error.code == grpc.StatusCode.INTERNAL.value[0]
        assert "secret" not in error.message and "RuntimeError" not in error.message
        # The id in the item's message is the one in the trailers (and the log).
        [rid] = [v for k, v in call.trailing_metadata() if k == "x-request-id"]
        assert error.message == f"internal error (request id {rid})"
        if sent:
            assert rid == "batch-rid-7"
