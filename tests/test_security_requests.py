"""Attacks on the registry's request handling, through a real gRPC server on
loopback with API keys required: template extraction through embedding
probes, partial imports, oversized enrolments and reused idempotency keys.
Each test fails on the registry before these holes were closed."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from registry_helpers import DIM, FINGERPRINT, keyed_registry, unit

from likeness.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from server.main import RegistryServer

pytest_plugins = ["registry_fixtures"]

BOOTSTRAP = "bootstrap-secret-for-security-tests"


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


ADMIN = bearer(BOOTSTRAP)


def emb(v: np.ndarray) -> common_pb2.Embedding:
    return common_pb2.Embedding(values=v.tolist(), model_fingerprint=FINGERPRINT)


def embedding_probe(v: np.ndarray) -> common_pb2.Probe:
    return common_pb2.Probe(embedding=emb(v))


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, info_embedder: str
) -> Iterator[RegistryServer]:
    with keyed_registry(tmp_path_factory.mktemp("registry"), info_embedder, BOOTSTRAP) as srv:
        yield srv


@pytest.fixture(scope="module")
def channel(server: RegistryServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> registry_pb2_grpc.RegistryStub:
    return registry_pb2_grpc.RegistryStub(channel)


@pytest.fixture(scope="module")
def admin(channel: grpc.Channel) -> registry_pb2_grpc.AdminStub:
    return registry_pb2_grpc.AdminStub(channel)


def key(admin: registry_pb2_grpc.AdminStub, scopes: dict[str, str]) -> tuple[tuple[str, str], ...]:
    response = admin.CreateApiKey(
        registry_pb2.CreateApiKeyRequest(name="attacker", scopes=scopes), metadata=ADMIN
    )
    return bearer(response.secret)


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()  # type: ignore[attr-defined,no-any-return]


def new_gallery(stub: registry_pb2_grpc.RegistryStub) -> str:
    name = "g" + uuid.uuid4().hex[:12]
    stub.CreateGallery(registry_pb2.CreateGalleryRequest(name=name), metadata=ADMIN)
    return name


def face_count(stub: registry_pb2_grpc.RegistryStub, gallery: str) -> int:
    stats = stub.Stats(registry_pb2.StatsRequest(gallery=gallery), metadata=ADMIN)
    return int(stats.faces)


# -- 1. a read key must not copy a stored template -------------------------


def test_read_key_cannot_recover_a_template_with_unit_vector_probes(
    stub: registry_pb2_grpc.RegistryStub, admin: registry_pb2_grpc.AdminStub
) -> None:
    gallery = new_gallery(stub)
    template = unit(101)
    stub.Enroll(
        registry_pb2.EnrollRequest(
            gallery=gallery, subject_id="victim", embeddings=[emb(template)]
        ),
        metadata=ADMIN,
    )
    for role in ("read", "enroll"):
        attacker = key(admin, {gallery: role})
        # The attack: Verify with each unit vector e_i returns the cosine
        # <e_i, template> = template[i], i.e. the template coordinate by
        # coordinate; the copy would then pass Verify as the victim.
        recovered = np.zeros(DIM, dtype=np.float32)
        refused = 0
        for i in range(DIM):
            e_i = np.zeros(DIM, dtype=np.float32)
            e_i[i] = 1.0
            request = registry_pb2.VerifyRequest(
                gallery=gallery, subject_id="victim", probe=embedding_probe(e_i)
            )
            try:
                recovered[i] = stub.Verify(request, metadata=attacker).score
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
                refused += 1
        assert refused == DIM, f"a {role} key read {DIM - refused} coordinates of a template"
        assert not np.any(recovered)
        identify = registry_pb2.IdentifyRequest(gallery=gallery, probe=embedding_probe(template))
        assert code_of(lambda r=identify, m=attacker: stub.Identify(r, metadata=m)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )


def test_template_probes_stay_open_to_admins_and_compare(
    stub: registry_pb2_grpc.RegistryStub, admin: registry_pb2_grpc.AdminStub
) -> None:
    gallery = new_gallery(stub)
    template = unit(102)
    stub.Enroll(
        registry_pb2.EnrollRequest(gallery=gallery, subject_id="owner", embeddings=[emb(template)]),
        metadata=ADMIN,
    )
    gallery_admin = key(admin, {gallery: "admin"})
    verified = stub.Verify(
        registry_pb2.VerifyRequest(
            gallery=gallery, subject_id="owner", probe=embedding_probe(template)
        ),
        metadata=gallery_admin,
    )
    assert verified.match and verified.score == pytest.approx(1.0, abs=1e-5)
    # Compare of two vectors the caller holds touches no stored template.
    reader = key(admin, {gallery: "read"})
    compared = stub.Compare(
        registry_pb2.CompareRequest(
            a=embedding_probe(template), b=embedding_probe(template), gallery=gallery
        ),
        metadata=reader,
    )
    assert compared.match


# -- 4. an import is all or nothing -----------------------------------------


def exported(index: int, **overrides: object) -> registry_pb2.ExportedFace:
    values: dict[str, object] = {
        "subject_id": f"person-{index // 3}",
        "face_id": str(uuid.UUID(int=index + 1)),
        "embedding": emb(unit(1000 + index)),
        "created_at": 1_700_000_000.0 + index,
        "quality": common_pb2.Quality(
            face_size_px=90.0, sharpness=120.0, yaw_deg=5.0, pitch_deg=-3.0, roll_deg=1.0
        ),
    }
    values.update(overrides)
    return registry_pb2.ExportedFace(**values)  # type: ignore[arg-type]


def import_faces(
    stub: registry_pb2_grpc.RegistryStub, gallery: str, faces: list[registry_pb2.ExportedFace]
) -> registry_pb2.ImportGalleryResponse:
    def stream() -> Iterator[registry_pb2.ImportGalleryRequest]:
        for face in faces:
            yield registry_pb2.ImportGalleryRequest(gallery=gallery, face=face)

    return stub.ImportGallery(stream(), metadata=ADMIN)


BAD_FACES = {
    "wrong length": {"embedding": emb(unit(7, DIM + 1))},
    "NaN sharpness": {"quality": common_pb2.Quality(face_size_px=90.0, sharpness=math.nan)},
    "negative face size": {"quality": common_pb2.Quality(face_size_px=-1.0)},
    "yaw out of range": {"quality": common_pb2.Quality(face_size_px=90.0, yaw_deg=400.0)},
    "infinite created_at": {"created_at": math.inf},
    "created_at a year ahead": {"created_at": time.time() + 365 * 86_400},
    "negative created_at": {"created_at": -5.0},
}


@pytest.mark.parametrize("fault", sorted(BAD_FACES))
def test_a_bad_face_at_line_300_fails_the_import_with_nothing_written(
    stub: registry_pb2_grpc.RegistryStub, fault: str
) -> None:
    gallery = new_gallery(stub)
    faces = [exported(i) for i in range(299)] + [exported(299, **BAD_FACES[fault])]
    code = code_of(lambda: import_faces(stub, gallery, faces))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert face_count(stub, gallery) == 0
    # The same stream without the bad face imports whole.
    result = import_faces(stub, gallery, faces[:299])
    assert (result.imported, result.skipped) == (299, 0)
    assert face_count(stub, gallery) == 299


# -- 5. bounded enrolments and honest idempotency keys -----------------------


def test_enroll_takes_at_most_100_faces_per_request(stub: registry_pb2_grpc.RegistryStub) -> None:
    gallery = new_gallery(stub)
    vectors = [emb(unit(2000 + i)) for i in range(101)]
    too_many = registry_pb2.EnrollRequest(gallery=gallery, subject_id="bulk", embeddings=vectors)
    assert code_of(lambda: stub.Enroll(too_many, metadata=ADMIN)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert face_count(stub, gallery) == 0
    at_limit = registry_pb2.EnrollRequest(
        gallery=gallery, subject_id="bulk", embeddings=vectors[:100]
    )
    assert len(stub.Enroll(at_limit, metadata=ADMIN).faces) == 100


def test_an_idempotency_key_reused_for_another_request_is_refused(
    stub: registry_pb2_grpc.RegistryStub,
) -> None:
    gallery = new_gallery(stub)
    v, w = unit(3001), unit(3002)

    def enroll(
        vectors: list[np.ndarray], metadata: dict[str, str] | None = None
    ) -> registry_pb2.EnrollResponse:
        request = registry_pb2.EnrollRequest(
            gallery=gallery,
            subject_id="carol",
            embeddings=[emb(x) for x in vectors],
            metadata=metadata or {"team": "blue"},
            idempotency_key="key-1",
        )
        return stub.Enroll(request, metadata=ADMIN)

    first = enroll([v])
    retry = enroll([v])
    assert retry.replayed and [f.face_id for f in retry.faces] == [f.face_id for f in first.faces]
    for other in (
        lambda: enroll([w]),
        lambda: enroll([v], {"team": "red"}),
        lambda: enroll([v, w]),
    ):
        assert code_of(other) == grpc.StatusCode.FAILED_PRECONDITION
    assert face_count(stub, gallery) == 1
    verified = stub.Verify(
        registry_pb2.VerifyRequest(gallery=gallery, subject_id="carol", probe=embedding_probe(v)),
        metadata=ADMIN,
    )
    assert verified.score == pytest.approx(1.0, abs=1e-5)


def test_a_retry_of_a_half_written_enrolment_still_completes(
    stub: registry_pb2_grpc.RegistryStub,
) -> None:
    """The digest check must not break the documented recovery: a request
    that died after writing some of its faces is completed by its retry."""
    gallery = new_gallery(stub)
    vectors = [unit(4000 + i) for i in range(3)]
    request = registry_pb2.EnrollRequest(
        gallery=gallery,
        subject_id="dave",
        embeddings=[emb(x) for x in vectors],
        idempotency_key="half",
    )
    first = stub.Enroll(request, metadata=ADMIN)
    # Lose the last face, as if the write had died half-way.
    stub.DeleteFace(
        registry_pb2.DeleteFaceRequest(gallery=gallery, face_id=first.faces[-1].face_id),
        metadata=ADMIN,
    )
    assert face_count(stub, gallery) == 2
    retry = stub.Enroll(request, metadata=ADMIN)
    assert not retry.replayed and face_count(stub, gallery) == 3
