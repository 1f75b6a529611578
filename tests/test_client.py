"""The typed client against a scripted in-process Registry (no model, no store):
retries only on UNAVAILABLE and only for calls safe to repeat, typed errors
per status code, deadlines, bearer metadata, protobuf-free results."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from likeness import errors
from likeness.client import (
    AlreadyExistsError,
    Candidate,
    DeadlineExceededError,
    FaceSelection,
    FailedPreconditionError,
    IdentifyResult,
    InternalError,
    InvalidArgumentError,
    LikenessClient,
    LikenessRpcError,
    NotFoundError,
    PermissionDeniedError,
    Quality,
    ResourceExhaustedError,
    RetryPolicy,
    SubjectSummary,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    service_config,
)
from likeness.v1 import common_pb2, registry_pb2, registry_pb2_grpc

FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05)


@dataclass
class Seen:
    at: float
    metadata: dict[str, str]
    request: Any
    time_remaining: float | None


@dataclass
class FakeRegistry(registry_pb2_grpc.RegistryServicer):  # type: ignore[misc]
    """Answers fixed results; fails a method with the scripted codes first."""

    fail_with: dict[str, list[grpc.StatusCode]] = field(default_factory=dict)
    seen: dict[str, list[Seen]] = field(default_factory=dict)
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _enter(self, name: str, request: Any, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.seen.setdefault(name, []).append(
                Seen(
                    time.monotonic(),
                    {k: v for k, v in context.invocation_metadata() if isinstance(v, str)},
                    request,
                    context.time_remaining(),
                )
            )
            codes = self.fail_with.get(name)
            code = codes.pop(0) if codes else None
        if code is not None:
            context.abort(code, f"scripted {code.name}")
        if self.delay_s:
            time.sleep(self.delay_s)

    def Enroll(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter("Enroll", request, context)
        return registry_pb2.EnrollResponse(
            subject_id=request.subject_id, faces=[registry_pb2.EnrolledFace(face_id="f1")]
        )

    def Verify(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter("Verify", request, context)
        return registry_pb2.VerifyResponse(score=0.8, threshold=0.5, match=True, face_id="f1")

    def Identify(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter("Identify", request, context)
        return registry_pb2.IdentifyResponse(
            candidates=[
                registry_pb2.Candidate(
                    subject_id="alice", score=0.75, face_id="f1", metadata={"team": "red"}
                )
            ],
            unknown=False,
            threshold=0.5,
            probe_quality=common_pb2.Quality(face_size_px=40.0, sharpness=120.0, yaw_deg=5.0),
        )

    def GetSubject(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter("GetSubject", request, context)
        return registry_pb2.Subject(gallery=request.gallery, subject_id=request.subject_id)

    def ListSubjects(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter("ListSubjects", request, context)
        names = [f"s{i:02d}" for i in range(5)]
        start = int(request.page_token or 0)
        end = start + request.page_size
        return registry_pb2.ListSubjectsResponse(
            subjects=[
                registry_pb2.SubjectSummary(subject_id=n, face_count=1) for n in names[start:end]
            ],
            next_page_token=str(end) if end < len(names) else "",
        )

    def DeleteSubject(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter("DeleteSubject", request, context)
        return registry_pb2.DeleteSubjectResponse(faces_deleted=2)

    def DeleteFace(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter("DeleteFace", request, context)
        return registry_pb2.DeleteFaceResponse(subject_id="alice")

    def Stats(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter("Stats", request, context)
        return registry_pb2.StatsResponse(subjects=1, faces=2, store_backend="edge")

    def CreateGallery(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter("CreateGallery", request, context)
        return registry_pb2.Gallery(name=request.name)

    def ExportGallery(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        self._enter("ExportGallery", request, context)
        yield registry_pb2.ExportedFace(subject_id="alice", face_id="f1")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeRegistry, str]]:
    fake = FakeRegistry()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    registry_pb2_grpc.add_RegistryServicer_to_server(fake, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield fake, f"127.0.0.1:{port}"
    srv.stop(0)


@pytest.fixture
def fake(server: tuple[FakeRegistry, str]) -> FakeRegistry:
    registry = server[0]
    registry.fail_with.clear()
    registry.seen.clear()
    registry.delay_s = 0.0
    return registry


@pytest.fixture
def address(server: tuple[FakeRegistry, str]) -> str:
    return server[1]


def test_unavailable_is_retried_by_the_channels_service_config(
    fake: FakeRegistry, address: str
) -> None:
    fake.fail_with["Verify"] = [grpc.StatusCode.UNAVAILABLE] * 3
    policy = RetryPolicy(max_attempts=4, initial_backoff_s=0.04, multiplier=2.0, max_backoff_s=1.0)
    with LikenessClient(address, retry=policy) as client:
        result = client.verify("alice", b"jpeg")
    assert result.match and result.face_id == "f1"
    assert len(fake.seen["Verify"]) == 4


def test_retries_stop_after_max_attempts(fake: FakeRegistry, address: str) -> None:
    fake.fail_with["Verify"] = [grpc.StatusCode.UNAVAILABLE] * 10
    with (
        LikenessClient(
            address, retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.01)
        ) as client,
        pytest.raises(UnavailableError) as info,
    ):
        client.verify("alice", b"jpeg")
    assert len(fake.seen["Verify"]) == 3
    assert info.value.code is grpc.StatusCode.UNAVAILABLE
    assert info.value.details == "scripted UNAVAILABLE"


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.UNKNOWN,
    ],
)
def test_other_codes_are_not_retried(
    fake: FakeRegistry, address: str, code: grpc.StatusCode
) -> None:
    fake.fail_with["Verify"] = [code]
    with (
        LikenessClient(address, retry=FAST_RETRY) as client,
        pytest.raises(LikenessRpcError) as info,
    ):
        client.verify("alice", b"jpeg")
    assert info.value.code is code
    assert len(fake.seen["Verify"]) == 1


def test_calls_unsafe_to_repeat_are_not_retried(fake: FakeRegistry, address: str) -> None:
    # A repeated delete whose first attempt succeeded (reply lost) would
    # answer NOT_FOUND; a repeated create ALREADY_EXISTS.
    unsafe = ("DeleteSubject", "DeleteFace", "CreateGallery")
    for name in unsafe:
        fake.fail_with[name] = [grpc.StatusCode.UNAVAILABLE]
    with LikenessClient(address, retry=FAST_RETRY) as client:
        with pytest.raises(UnavailableError):
            client.delete_subject("alice")
        with pytest.raises(UnavailableError):
            client.delete_face("f1")
        with pytest.raises(UnavailableError):
            client.create_gallery("staff")
        assert client.delete_subject("alice") == 2
    assert [len(fake.seen[name]) for name in unsafe] == [2, 1, 1]


def test_enroll_retries_reuse_one_generated_idempotency_key(
    fake: FakeRegistry, address: str
) -> None:
    fake.fail_with["Enroll"] = [grpc.StatusCode.UNAVAILABLE] * 2
    with LikenessClient(address, retry=FAST_RETRY) as client:
        result = client.enroll("alice", images=[b"jpeg"])
        client.enroll("alice", images=[b"jpeg"])
        client.enroll("alice", images=[b"jpeg"], idempotency_key="mine-1")
    assert result.subject_id == "alice" and result.faces[0].face_id == "f1"
    keys = [s.request.idempotency_key for s in fake.seen["Enroll"]]
    assert len(keys) == 5
    first, second, third, fourth, fifth = keys
    assert first and first == second == third
    assert fourth and fourth != first
    assert fifth == "mine-1"


@pytest.mark.parametrize(
    ("code", "error_type", "domain_type"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError, errors.InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, NotFoundError, errors.NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, AlreadyExistsError, errors.AlreadyExists),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPreconditionError, errors.FailedPrecondition),
        (grpc.StatusCode.UNAUTHENTICATED, UnauthenticatedError, errors.Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError, errors.PermissionDenied),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhaustedError, errors.ResourceExhausted),
        (grpc.StatusCode.UNAVAILABLE, UnavailableError, errors.Unavailable),
        (grpc.StatusCode.INTERNAL, InternalError, errors.LikenessError),
        (grpc.StatusCode.UNIMPLEMENTED, UnimplementedError, errors.LikenessError),
    ],
)
def test_errors_are_typed_by_status_code(
    fake: FakeRegistry,
    address: str,
    code: grpc.StatusCode,
    error_type: type[LikenessRpcError],
    domain_type: type[errors.LikenessError],
) -> None:
    fake.fail_with["Stats"] = [code] * 4
    with (
        LikenessClient(address, retry=RetryPolicy(max_attempts=1)) as client,
        pytest.raises(error_type) as info,
    ):
        client.stats(gallery="staff")
    err = info.value
    assert isinstance(err, domain_type)
    assert err.code is code
    assert err.details == f"scripted {code.name}"
    assert err.method == "/likeness.v1.Registry/Stats"
    assert err.target == address


def test_a_server_stream_error_is_typed(fake: FakeRegistry, address: str) -> None:
    fake.fail_with["ExportGallery"] = [grpc.StatusCode.NOT_FOUND]
    with LikenessClient(address) as client, pytest.raises(NotFoundError):
        list(client.export_gallery("nope"))


def test_every_call_carries_the_deadline(fake: FakeRegistry, address: str) -> None:
    with LikenessClient(address, timeout_s=3.0) as client:
        client.get_subject("alice")
        client.stats()
    for name in ("GetSubject", "Stats"):
        remaining = fake.seen[name][0].time_remaining
        # Without a deadline grpc reports None; a few ms of clock skew allowed.
        assert remaining is not None and 0 < remaining <= 3.1


def test_a_slow_call_raises_deadline_exceeded(fake: FakeRegistry, address: str) -> None:
    fake.delay_s = 1.0
    start = time.monotonic()
    with (
        LikenessClient(address, timeout_s=0.2, retry=FAST_RETRY) as client,
        pytest.raises(DeadlineExceededError) as info,
    ):
        client.get_subject("alice")
    assert time.monotonic() - start < 0.9
    assert info.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert len(fake.seen["GetSubject"]) == 1


def test_the_deadline_bounds_retries_too(fake: FakeRegistry, address: str) -> None:
    fake.fail_with["Verify"] = [grpc.StatusCode.UNAVAILABLE] * 20
    policy = RetryPolicy(max_attempts=5, initial_backoff_s=5.0, max_backoff_s=5.0, multiplier=1.0)
    start = time.monotonic()
    with (
        LikenessClient(address, timeout_s=0.5, retry=policy) as client,
        pytest.raises((UnavailableError, DeadlineExceededError)),
    ):
        client.verify("alice", b"jpeg")
    # Unbounded, 5 attempts with waits drawn from [0, 5] s would take about
    # 10 s; the 0.5 s deadline must cut that short (slack for a loaded
    # 2-core machine). Four waits summing under 0.5 s: odds about 4e-6.
    assert time.monotonic() - start < 2.0
    assert 1 <= len(fake.seen["Verify"]) < 5


def test_the_api_key_is_sent_as_bearer_metadata(fake: FakeRegistry, address: str) -> None:
    with LikenessClient(address, api_key="s3cret") as client:
        client.stats()
    with LikenessClient(address) as client:
        client.stats()
    with_key, without_key = fake.seen["Stats"]
    assert with_key.metadata["authorization"] == "Bearer s3cret"
    assert "authorization" not in without_key.metadata


def test_an_unreachable_server_raises_unavailable_after_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with (
        LikenessClient(f"127.0.0.1:{port}", timeout_s=5.0, retry=FAST_RETRY) as client,
        pytest.raises(UnavailableError) as info,
    ):
        client.stats()
    assert time.monotonic() - start < 4.0
    assert info.value.target == f"127.0.0.1:{port}"


def test_results_are_plain_dataclasses(fake: FakeRegistry, address: str) -> None:
    with LikenessClient(address) as client:
        result = client.identify(b"jpeg", top_k=3, min_score=0.2, gallery="staff")
        subjects = list(client.iter_subjects(page_size=2))
    assert result == IdentifyResult(
        candidates=(Candidate("alice", 0.75, "f1", {"team": "red"}),),
        unknown=False,
        threshold=0.5,
        probe_quality=Quality(40.0, 120.0, 5.0, 0.0, 0.0),
    )
    request = fake.seen["Identify"][0].request
    assert request.top_k == 3 and request.gallery == "staff"
    assert request.HasField("min_score") and request.min_score == pytest.approx(0.2)
    assert subjects == [SubjectSummary(f"s{i:02d}", 1) for i in range(5)]
    assert len(fake.seen["ListSubjects"]) == 3


def test_the_default_service_config_retries_only_safe_methods() -> None:
    config = service_config(RetryPolicy(max_attempts=3, initial_backoff_s=0.25))
    (method_config,) = config["methodConfig"]
    names = {(n["service"], n["method"]) for n in method_config["name"]}
    assert ("likeness.v1.Registry", "Verify") in names
    assert ("likeness.v1.Registry", "Enroll") in names
    for unsafe in ("DeleteSubject", "DeleteFace", "CreateGallery", "DeleteGallery"):
        assert ("likeness.v1.Registry", unsafe) not in names
    assert ("likeness.v1.Admin", "CreateApiKey") not in names
    assert method_config["retryPolicy"] == {
        "maxAttempts": 3,
        "initialBackoff": "0.25s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2.0,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    assert config["loadBalancingConfig"] == [{"pick_first": {}}]
    assert "retryPolicy" not in service_config(RetryPolicy(max_attempts=1))["methodConfig"][0]
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=6)


def test_a_service_config_of_the_callers_replaces_the_default(
    fake: FakeRegistry, address: str
) -> None:
    fake.fail_with["Verify"] = [grpc.StatusCode.UNAVAILABLE]
    no_retry = service_config(RetryPolicy(max_attempts=1))
    with (
        LikenessClient(
            address,
            service_config=no_retry,
            channel_options=[("grpc.keepalive_time_ms", 30_000)],
        ) as client,
        pytest.raises(UnavailableError),
    ):
        client.verify("alice", b"jpeg")
    assert len(fake.seen["Verify"]) == 1


@pytest.mark.parametrize(
    ("selection", "on_the_wire"),
    [
        (FaceSelection.ALL, common_pb2.FACE_SELECTION_ALL),
        (FaceSelection.LARGEST, common_pb2.FACE_SELECTION_LARGEST),
        (FaceSelection.REQUIRE_SINGLE, common_pb2.FACE_SELECTION_REQUIRE_SINGLE),
        (FaceSelection.DEFAULT, common_pb2.FACE_SELECTION_UNSPECIFIED),
    ],
)
def test_enroll_sends_the_selection_asked_for(
    fake: FakeRegistry, address: str, selection: FaceSelection, on_the_wire: int
) -> None:
    with LikenessClient(address) as client:
        client.enroll("group", [b"jpeg"], selection=selection)
    assert fake.seen["Enroll"][0].request.selection == on_the_wire
