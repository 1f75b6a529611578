"""Machine-readable refusal reasons (google.rpc.ErrorInfo in the
``grpc-status-details-bin`` trailer), asserted through the typed client
against a real Embedder and a real Registry on loopback.

The reason of each refusal is documented in proto/likeness/v1/common.proto
(enum Reason) and, for the awkward inputs, in tests/data/README.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from registry_helpers import running_embedder, running_registry

from likeness.client import (
    Embedding,
    FailedPreconditionError,
    InvalidArgumentError,
    LikenessClient,
    LikenessRpcError,
    NotFoundError,
    Reason,
)
from likeness.reasons import ErrorInfo, error_info_of, status_details
from likeness.selection import FaceSelection
from likeness.v1 import common_pb2

DATA = Path(__file__).resolve().parent / "data"
BAD = DATA / "bad"
LFW = DATA / "lfw"

#: The reason of every refused file of tests/data/bad (default selection);
#: the other files are answered (see tests/data/README.md).
BAD_REASONS: dict[str, Reason] = {
    "empty.bin": Reason.IMAGE_UNREADABLE,
    "random.bin": Reason.IMAGE_UNREADABLE,
    "text.txt": Reason.IMAGE_UNREADABLE,
    "truncated.jpg": Reason.IMAGE_UNREADABLE,
    "corrupt_idat.png": Reason.IMAGE_UNREADABLE,
    "face.gif": Reason.IMAGE_UNREADABLE,
    "tiny_1x1.png": Reason.IMAGE_TOO_SMALL,
    "bomb_20000x20000.png": Reason.IMAGE_TOO_LARGE,
    "oversized_8000x6000.png": Reason.IMAGE_TOO_LARGE,
    "no_face.jpg": Reason.NO_FACE,
}
ANSWERED = {
    "three_faces.jpg",
    "face_cmyk.jpg",
    "face_gray.png",
    "face_rgba.png",
    "face.webp",
    "face.bmp",
    "exif_rotated.jpg",
}


@dataclass(frozen=True)
class Services:
    embedder: str
    registry: str


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    data = tmp_path_factory.mktemp("reasons")
    with (
        running_embedder(workers=2) as embedder,
        running_registry(data, embedder, embedder_timeout_s=10.0, workers=2) as registry,
    ):
        yield Services(embedder, f"127.0.0.1:{registry.port}")


@pytest.fixture(scope="module")
def client(services: Services) -> Iterator[LikenessClient]:
    with LikenessClient(services.registry, services.embedder, timeout_s=60) as c:
        yield c


def refused(call: object) -> LikenessRpcError:
    with pytest.raises(LikenessRpcError) as info:
        call()  # type: ignore[operator]
    return info.value


def lfw(name: str) -> bytes:
    return (LFW / f"{name}.jpg").read_bytes()


def test_the_python_reasons_are_the_protos() -> None:
    proto = {
        name.removeprefix("REASON_")
        for name in common_pb2.Reason.keys()  # noqa: SIM118 (protobuf enum wrapper)
        if name != "REASON_UNSPECIFIED"
    }
    assert proto == {r.value for r in Reason}


def test_a_trailer_round_trips_and_garbage_is_no_reason() -> None:
    key, value = status_details(5, "no face", ErrorInfo("NO_FACE", {"value": "0"}))
    assert error_info_of([("x-request-id", "r"), (key, value)]) == ErrorInfo(
        "NO_FACE", {"value": "0"}
    )
    assert error_info_of([(key, b"\xff\x00not a status")]) is None
    assert error_info_of(None) is None


def test_every_bad_input_is_either_answered_or_has_a_reason() -> None:
    assert {p.name for p in BAD.iterdir()} == set(BAD_REASONS) | ANSWERED


@pytest.mark.parametrize("name", sorted(BAD_REASONS))
def test_a_bad_input_is_refused_with_its_reason(name: str, client: LikenessClient) -> None:
    error = refused(lambda: client.embed((BAD / name).read_bytes()))
    assert error.reason == BAD_REASONS[name]
    expected = NotFoundError if BAD_REASONS[name] is Reason.NO_FACE else InvalidArgumentError
    assert isinstance(error, expected)


def test_measured_refusals_carry_the_value_and_the_limit(client: LikenessClient) -> None:
    oversized = refused(lambda: client.embed((BAD / "oversized_8000x6000.png").read_bytes()))
    assert dict(oversized.metadata) == {"value": "48000000", "limit": "40000000"}
    tiny = refused(lambda: client.embed((BAD / "tiny_1x1.png").read_bytes()))
    assert dict(tiny.metadata) == {"value": "1", "limit": "32"}
    several = refused(
        lambda: client.embed(
            (BAD / "three_faces.jpg").read_bytes(), selection=FaceSelection.REQUIRE_SINGLE
        )
    )
    assert isinstance(several, FailedPreconditionError)
    assert several.reason == Reason.MULTIPLE_FACES
    assert dict(several.metadata) == {"value": "3", "limit": "1"}


def test_a_batch_item_keeps_its_reason(client: LikenessClient) -> None:
    ok, no_face, empty = client.embed_batch(
        [lfw("Emma_Watson_0001"), (BAD / "no_face.jpg").read_bytes(), b""]
    )
    assert not isinstance(ok, LikenessRpcError)
    assert isinstance(no_face, NotFoundError) and no_face.reason == Reason.NO_FACE
    assert isinstance(empty, InvalidArgumentError) and empty.reason == Reason.IMAGE_UNREADABLE


def test_the_registry_passes_the_embedders_reason_on(client: LikenessClient) -> None:
    client.create_gallery("passed-on")
    no_face = refused(
        lambda: client.enroll("a", [(BAD / "no_face.jpg").read_bytes()], gallery="passed-on")
    )
    assert no_face.reason == Reason.NO_FACE
    several = refused(
        lambda: client.enroll("a", [(BAD / "three_faces.jpg").read_bytes()], gallery="passed-on")
    )
    assert several.reason == Reason.MULTIPLE_FACES
    assert several.metadata["value"] == "3"
    bad = refused(lambda: client.verify("a", b"not an image", gallery="passed-on"))
    assert bad.reason == Reason.IMAGE_UNREADABLE


@pytest.mark.parametrize(
    ("gate", "limit", "reason"),
    [
        ("min_face_size_px", 500.0, Reason.FACE_TOO_SMALL),
        ("min_sharpness", 1e9, Reason.FACE_TOO_BLURRY),
        ("max_abs_yaw_deg", 0.001, Reason.POSE_TOO_LARGE),
    ],
)
def test_each_quality_gate_refuses_with_its_reason(
    gate: str, limit: float, reason: Reason, client: LikenessClient
) -> None:
    gallery = f"gate-{gate.replace('_', '-')}"
    client.create_gallery(gallery, **{gate: limit})  # type: ignore[arg-type]
    error = refused(lambda: client.enroll("a", [lfw("Emma_Watson_0001")], gallery=gallery))
    assert isinstance(error, FailedPreconditionError)
    assert error.reason == reason
    value = float(error.metadata["value"])
    assert float(error.metadata["limit"]) == pytest.approx(limit)
    assert value > limit if reason is Reason.POSE_TOO_LARGE else value < limit
    assert error.metadata["field"] == "images[0]"


def test_names_that_do_not_exist_have_their_reasons(client: LikenessClient) -> None:
    gallery = refused(lambda: client.stats(gallery="no-such-gallery"))
    assert isinstance(gallery, NotFoundError) and gallery.reason == Reason.GALLERY_NOT_FOUND
    assert gallery.metadata["gallery"] == "no-such-gallery"
    client.create_gallery("names")
    subject = refused(lambda: client.get_subject("nobody", gallery="names"))
    assert isinstance(subject, NotFoundError) and subject.reason == Reason.SUBJECT_NOT_FOUND


def test_an_embedding_of_another_model_is_a_model_mismatch(client: LikenessClient) -> None:
    client.create_gallery("mismatch")
    dim = client.info().dim
    vector = np.ones(dim, dtype=np.float32) / np.sqrt(dim)
    probe = Embedding(tuple(vector.tolist()), "other-model@1")
    error = refused(lambda: client.identify(probe, gallery="mismatch"))
    assert isinstance(error, FailedPreconditionError)
    assert error.reason == Reason.MODEL_MISMATCH
    assert error.metadata["value"] == "other-model@1"
    assert error.metadata["limit"] == client.info().model_fingerprint


def test_probe_gates_are_off_unless_the_gallery_turns_them_on(client: LikenessClient) -> None:
    probe = lfw("Emma_Watson_0003")
    client.create_gallery("probes-free", min_face_size_px=500.0)
    assert client.identify(probe, gallery="probes-free").unknown
    gallery = client.create_gallery("probes-gated", min_face_size_px=500.0, gate_probes=True)
    assert gallery.gate_probes
    for call in (
        lambda: client.identify(probe, gallery="probes-gated"),
        lambda: client.verify("anyone", probe, gallery="probes-gated"),
        lambda: client.identify(probe, gallery="probes-gated", selection=FaceSelection.ALL),
    ):
        error = refused(call)
        assert isinstance(error, FailedPreconditionError)
        assert error.reason == Reason.FACE_TOO_SMALL
        assert error.metadata["field"] == "probe"
        assert float(error.metadata["value"]) < float(error.metadata["limit"]) == 500.0
    compared = refused(lambda: client.compare(probe, probe, gallery="probes-gated"))
    assert compared.reason == Reason.FACE_TOO_SMALL and compared.metadata["field"] == "a"
