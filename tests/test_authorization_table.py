"""Authorization as a table: every RPC x every role x a key scoped to the
gallery the call names, to another gallery, or to "*", against a real
registry on loopback with API keys required.

The expected role of each call is written out here, independently of
server.auth.REQUIRED_ROLE, so that a change of the server's table (Export
with a read key, Identify without a check, Verify ignoring the gallery)
fails this test. An allowed call may still fail for its own reasons
(NOT_FOUND for a missing subject, UNIMPLEMENTED from the stub embedder for
an image); it must never fail with PERMISSION_DENIED or UNAUTHENTICATED. A
refused call must fail with PERMISSION_DENIED.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import grpc
import pytest
from registry_helpers import FINGERPRINT, LFW, keyed_registry, unit

from likeness.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from server.main import RegistryServer

pytest_plugins = ["registry_fixtures"]

BOOTSTRAP = "bootstrap-secret-for-the-authorization-table"
ROOT_ADMIN = (("authorization", f"Bearer {BOOTSTRAP}"),)
OWN, OTHER = "own", "other"
ROLES = ("read", "enroll", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
SCOPES = (OWN, OTHER, "*")

Metadata = tuple[tuple[str, str], ...]
Call = Callable[[registry_pb2_grpc.RegistryStub, registry_pb2_grpc.AdminStub, Metadata], object]


def _embedding() -> common_pb2.Embedding:
    return common_pb2.Embedding(values=unit(1).tolist(), model_fingerprint=FINGERPRINT)


def _image_probe() -> common_pb2.Probe:
    return common_pb2.Probe(image=(LFW / "Emma_Watson_0001.jpg").read_bytes())


def _drain(responses: Iterator[object]) -> object:
    return list(responses)


def _import(stub: registry_pb2_grpc.RegistryStub, md: Metadata) -> object:
    face = registry_pb2.ExportedFace(
        subject_id="imported", face_id=str(uuid.uuid4()), embedding=_embedding()
    )
    return stub.ImportGallery(
        iter([registry_pb2.ImportGalleryRequest(gallery=OWN, face=face)]), metadata=md
    )


#: name -> (the call, naming gallery OWN where it names one; the role it
#: needs; where it needs it: "gallery" = on OWN, "any" = on some gallery,
#: "*" = on "*").
CASES: dict[str, tuple[Call, str, str]] = {
    "Enroll": (
        lambda s, a, md: s.Enroll(
            registry_pb2.EnrollRequest(gallery=OWN, subject_id="x", embeddings=[_embedding()]),
            metadata=md,
        ),
        "enroll",
        "gallery",
    ),
    "Verify with an image": (
        lambda s, a, md: s.Verify(
            registry_pb2.VerifyRequest(gallery=OWN, subject_id="x", probe=_image_probe()),
            metadata=md,
        ),
        "read",
        "gallery",
    ),
    "Verify with an embedding": (
        lambda s, a, md: s.Verify(
            registry_pb2.VerifyRequest(
                gallery=OWN, subject_id="x", probe=common_pb2.Probe(embedding=_embedding())
            ),
            metadata=md,
        ),
        "admin",
        "gallery",
    ),
    "Identify with an image": (
        lambda s, a, md: s.Identify(
            registry_pb2.IdentifyRequest(gallery=OWN, probe=_image_probe()), metadata=md
        ),
        "read",
        "gallery",
    ),
    "Identify with an embedding": (
        lambda s, a, md: s.Identify(
            registry_pb2.IdentifyRequest(
                gallery=OWN, probe=common_pb2.Probe(embedding=_embedding())
            ),
            metadata=md,
        ),
        "admin",
        "gallery",
    ),
    "Compare in a gallery": (
        lambda s, a, md: s.Compare(
            registry_pb2.CompareRequest(
                gallery=OWN,
                a=common_pb2.Probe(embedding=_embedding()),
                b=common_pb2.Probe(embedding=_embedding()),
            ),
            metadata=md,
        ),
        "read",
        "gallery",
    ),
    "Compare without a gallery": (
        lambda s, a, md: s.Compare(
            registry_pb2.CompareRequest(
                a=common_pb2.Probe(embedding=_embedding()),
                b=common_pb2.Probe(embedding=_embedding()),
            ),
            metadata=md,
        ),
        "read",
        "any",
    ),
    "GetSubject": (
        lambda s, a, md: s.GetSubject(
            registry_pb2.GetSubjectRequest(gallery=OWN, subject_id="nobody"), metadata=md
        ),
        "read",
        "gallery",
    ),
    "ListSubjects": (
        lambda s, a, md: s.ListSubjects(registry_pb2.ListSubjectsRequest(gallery=OWN), metadata=md),
        "read",
        "gallery",
    ),
    "Stats": (
        lambda s, a, md: s.Stats(registry_pb2.StatsRequest(gallery=OWN), metadata=md),
        "read",
        "gallery",
    ),
    "ListGalleries": (
        lambda s, a, md: s.ListGalleries(registry_pb2.ListGalleriesRequest(), metadata=md),
        "read",
        "any",
    ),
    "DeleteFace": (
        lambda s, a, md: s.DeleteFace(
            registry_pb2.DeleteFaceRequest(gallery=OWN, face_id=str(uuid.uuid4())), metadata=md
        ),
        "enroll",
        "gallery",
    ),
    "DeleteSubject": (
        lambda s, a, md: s.DeleteSubject(
            registry_pb2.DeleteSubjectRequest(gallery=OWN, subject_id="nobody"), metadata=md
        ),
        "enroll",
        "gallery",
    ),
    "CreateGallery": (
        lambda s, a, md: s.CreateGallery(registry_pb2.CreateGalleryRequest(name=OWN), metadata=md),
        "admin",
        "gallery",
    ),
    "UpdateGallery": (
        lambda s, a, md: s.UpdateGallery(
            registry_pb2.UpdateGalleryRequest(name=OWN, operating_point="custom"), metadata=md
        ),
        "admin",
        "gallery",
    ),
    "DeleteGallery": (
        lambda s, a, md: s.DeleteGallery(registry_pb2.DeleteGalleryRequest(name=OWN), metadata=md),
        "admin",
        "gallery",
    ),
    "ExportGallery": (
        lambda s, a, md: _drain(
            s.ExportGallery(registry_pb2.ExportGalleryRequest(gallery=OWN), metadata=md)
        ),
        "admin",
        "gallery",
    ),
    "ImportGallery": (lambda s, a, md: _import(s, md), "admin", "gallery"),
    "FindDuplicates": (
        lambda s, a, md: s.FindDuplicates(
            registry_pb2.FindDuplicatesRequest(gallery=OWN), metadata=md
        ),
        "admin",
        "gallery",
    ),
    "CreateApiKey": (
        lambda s, a, md: a.CreateApiKey(
            registry_pb2.CreateApiKeyRequest(name="made", scopes={OWN: "read"}), metadata=md
        ),
        "admin",
        "*",
    ),
    "ListApiKeys": (
        lambda s, a, md: a.ListApiKeys(registry_pb2.ListApiKeysRequest(), metadata=md),
        "admin",
        "*",
    ),
    "RevokeApiKey": (
        lambda s, a, md: a.RevokeApiKey(
            registry_pb2.RevokeApiKeyRequest(key_id="key_0000000000000000"), metadata=md
        ),
        "admin",
        "*",
    ),
}


def allowed(needed: str, where: str, role: str, scope: str) -> bool:
    """The rule of proto/likeness/v1/registry.proto, written out."""
    if RANK[role] < RANK[needed]:
        return False
    if where == "any":
        return True
    if where == "*":
        return scope == "*"
    return scope in (OWN, "*")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, info_embedder: str
) -> Iterator[RegistryServer]:
    with keyed_registry(tmp_path_factory.mktemp("registry"), info_embedder, BOOTSTRAP) as srv:
        yield srv


@pytest.fixture(scope="module")
def stubs(
    server: RegistryServer,
) -> Iterator[tuple[registry_pb2_grpc.RegistryStub, registry_pb2_grpc.AdminStub]]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield registry_pb2_grpc.RegistryStub(channel), registry_pb2_grpc.AdminStub(channel)


@pytest.fixture(scope="module")
def keys(
    stubs: tuple[registry_pb2_grpc.RegistryStub, registry_pb2_grpc.AdminStub],
) -> dict[tuple[str, str], Metadata]:
    stub, admin = stubs
    for name in (OWN, OTHER):
        stub.CreateGallery(registry_pb2.CreateGalleryRequest(name=name), metadata=ROOT_ADMIN)
    made = {}
    for role in ROLES:
        for scope in SCOPES:
            secret = admin.CreateApiKey(
                registry_pb2.CreateApiKeyRequest(name=f"{role}-on-{scope}", scopes={scope: role}),
                metadata=ROOT_ADMIN,
            ).secret
            made[role, scope] = (("authorization", f"Bearer {secret}"),)
    return made


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("rpc", sorted(CASES))
def test_each_rpc_needs_its_role_on_its_gallery(
    stubs: tuple[registry_pb2_grpc.RegistryStub, registry_pb2_grpc.AdminStub],
    keys: dict[tuple[str, str], Metadata],
    rpc: str,
    role: str,
    scope: str,
) -> None:
    stub, admin = stubs
    call, needed, where = CASES[rpc]
    # DeleteGallery may have removed it on an earlier row.
    try:
        stub.CreateGallery(registry_pb2.CreateGalleryRequest(name=OWN), metadata=ROOT_ADMIN)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.ALREADY_EXISTS
    code, details = grpc.StatusCode.OK, ""
    try:
        call(stub, admin, keys[role, scope])
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
    if allowed(needed, where, role, scope):
        assert code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED), (
            f"{rpc} with {role} on {scope!r} was refused ({code.name})"
        )
    else:
        assert code == grpc.StatusCode.PERMISSION_DENIED, (
            f"{rpc} with {role} on {scope!r} answered {code.name}, not PERMISSION_DENIED"
        )
        # The operator reading the refusal learns which call needs what, and
        # where: a role the key lacks there, and no more than the call needs
        # (an embedding probe with no role at all is refused for "read").
        gallery = "*" if where == "*" else OWN
        assert details.startswith(rpc.split(" ")[0] + " "), details
        named = re.search(rf"needs the '(\w+)' role on gallery {re.escape(repr(gallery))}", details)
        assert named is not None, details
        held = RANK[role] if scope in (gallery, "*") else 0
        assert held < RANK[named.group(1)] <= RANK[needed], details


def test_every_rpc_of_the_api_is_in_the_table() -> None:
    services = registry_pb2.DESCRIPTOR.services_by_name
    methods = {m.name for name in ("Registry", "Admin") for m in services[name].methods}
    covered = {name.split(" ")[0] for name in CASES}
    assert covered == methods
