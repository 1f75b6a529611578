"""The Registry through a real in-process gRPC server on port 0: status
codes, authentication and roles, health, reflection, audit and metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from registry_helpers import (
    DIM,
    FINGERPRINT,
    free_port,
    keyed_registry,
    server_settings,
    start_info_embedder,
    unit,
)

from likeness import errors
from likeness.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from server.audit import AuditLog
from server.auth import KEYS_FILE, REQUIRED_ROLE, Authenticator, KeyStore
from server.guard import GuardInterceptor
from server.main import RegistryServer, create_server
from server.servicer import RegistryServicer

pytest_plugins = ["registry_fixtures"]

BOOTSTRAP = "bootstrap-secret-for-tests"
ROOT = Path(__file__).resolve().parent.parent


def emb(v: np.ndarray, fingerprint: str = FINGERPRINT) -> common_pb2.Embedding:
    return common_pb2.Embedding(values=v.tolist(), model_fingerprint=fingerprint)


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


ADMIN = bearer(BOOTSTRAP)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry")


@pytest.fixture(scope="module")
def server(data_dir: Path, info_embedder: str) -> Iterator[RegistryServer]:
    with keyed_registry(
        data_dir, info_embedder, BOOTSTRAP, metrics_port=free_port(), max_message_bytes=1 << 20
    ) as srv:
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


def status_of(call: object) -> tuple[grpc.StatusCode, str]:
    """Run ``call`` (a zero-argument lambda) expecting an RpcError."""
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    err = info.value
    details = err.details() or ""  # type: ignore[attr-defined]
    assert "Traceback" not in details and 'File "' not in details
    return err.code(), details  # type: ignore[attr-defined]


def new_key(admin: registry_pb2_grpc.AdminStub, scopes: dict[str, str]) -> str:
    response = admin.CreateApiKey(
        registry_pb2.CreateApiKeyRequest(name="test", scopes=scopes), metadata=ADMIN
    )
    return str(response.secret)


def test_enroll_verify_identify_over_grpc(stub: registry_pb2_grpc.RegistryStub) -> None:
    v = unit(1)
    enrolled = stub.Enroll(
        registry_pb2.EnrollRequest(subject_id="grpc-alice", embeddings=[emb(v)]), metadata=ADMIN
    )
    assert enrolled.subject_id == "grpc-alice" and len(enrolled.faces) == 1
    assert not enrolled.faces[0].HasField("quality")
    verified = stub.Verify(
        registry_pb2.VerifyRequest(
            subject_id="grpc-alice", probe=common_pb2.Probe(embedding=emb(v))
        ),
        metadata=ADMIN,
    )
    assert verified.match and verified.score == pytest.approx(1.0, abs=1e-5)
    assert verified.face_id == enrolled.faces[0].face_id
    found = stub.Identify(
        registry_pb2.IdentifyRequest(probe=common_pb2.Probe(embedding=emb(v))), metadata=ADMIN
    )
    assert not found.unknown and found.candidates[0].subject_id == "grpc-alice"
    subject = stub.GetSubject(
        registry_pb2.GetSubjectRequest(subject_id="grpc-alice"), metadata=ADMIN
    )
    assert subject.gallery == "default" and len(subject.faces) == 1
    stats = stub.Stats(registry_pb2.StatsRequest(), metadata=ADMIN)
    assert stats.gallery.model_fingerprint == FINGERPRINT and stats.faces >= 1


def test_request_id_comes_back_in_trailing_metadata(stub: registry_pb2_grpc.RegistryStub) -> None:
    _, call = stub.Stats.with_call(
        registry_pb2.StatsRequest(), metadata=(*ADMIN, ("x-request-id", "req-42"))
    )
    assert ("x-request-id", "req-42") in tuple(call.trailing_metadata())


def test_status_codes(stub: registry_pb2_grpc.RegistryStub) -> None:
    code, details = status_of(
        lambda: stub.Enroll(
            registry_pb2.EnrollRequest(subject_id="", embeddings=[emb(unit(2))]), metadata=ADMIN
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "subject_id" in details
    code, details = status_of(
        lambda: stub.Enroll(
            registry_pb2.EnrollRequest(subject_id="x" * 10_240, embeddings=[emb(unit(2))]),
            metadata=ADMIN,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, details = status_of(
        lambda: stub.Enroll(
            registry_pb2.EnrollRequest(
                subject_id="a", embeddings=[emb(np.full(DIM, np.nan, dtype=np.float32))]
            ),
            metadata=ADMIN,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "NaN" in details
    code, _ = status_of(
        lambda: stub.Identify(
            registry_pb2.IdentifyRequest(
                probe=common_pb2.Probe(embedding=emb(unit(3))), top_k=1_000_000_000
            ),
            metadata=ADMIN,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = status_of(
        lambda: stub.Stats(registry_pb2.StatsRequest(gallery="nope"), metadata=ADMIN)
    )
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = status_of(
        lambda: stub.Verify(
            registry_pb2.VerifyRequest(
                subject_id="grpc-alice",
                probe=common_pb2.Probe(embedding=emb(unit(1), "other@1")),
            ),
            metadata=ADMIN,
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "other@1" in details and FINGERPRINT in details
    stub.CreateGallery(registry_pb2.CreateGalleryRequest(name="dup"), metadata=ADMIN)
    code, _ = status_of(
        lambda: stub.CreateGallery(registry_pb2.CreateGalleryRequest(name="dup"), metadata=ADMIN)
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS
    # Images go through the embedder; this one only implements Info, and its
    # UNIMPLEMENTED must reach the client as INTERNAL with a request id only.
    code, details = status_of(
        lambda: stub.Enroll(
            registry_pb2.EnrollRequest(subject_id="img", images=[b"\xff\xd8 jpeg?"]),
            metadata=ADMIN,
        )
    )
    assert code == grpc.StatusCode.INTERNAL and "request id" in details


def test_request_over_the_message_limit_is_resource_exhausted(
    stub: registry_pb2_grpc.RegistryStub,
) -> None:
    code, _ = status_of(
        lambda: stub.Enroll(
            registry_pb2.EnrollRequest(subject_id="big", images=[b"\0" * (2 << 20)]),
            metadata=ADMIN,
        )
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_authentication_and_roles(
    stub: registry_pb2_grpc.RegistryStub, admin: registry_pb2_grpc.AdminStub, data_dir: Path
) -> None:
    stub.CreateGallery(registry_pb2.CreateGalleryRequest(name="lobby"), metadata=ADMIN)
    read = bearer(new_key(admin, {"lobby": "read"}))
    enroll = bearer(new_key(admin, {"lobby": "enroll"}))
    lobby_admin = bearer(new_key(admin, {"lobby": "admin"}))
    enroll_req = registry_pb2.EnrollRequest(
        gallery="lobby", subject_id="visitor", embeddings=[emb(unit(10))]
    )
    verify_req = registry_pb2.VerifyRequest(
        gallery="lobby", subject_id="visitor", probe=common_pb2.Probe(embedding=emb(unit(10)))
    )

    assert status_of(lambda: stub.Stats(registry_pb2.StatsRequest()))[0] == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert status_of(lambda: stub.Stats(registry_pb2.StatsRequest(), metadata=bearer("wrong")))[
        0
    ] == (grpc.StatusCode.UNAUTHENTICATED)
    bad_scheme = (("authorization", f"Basic {BOOTSTRAP}"),)
    assert status_of(lambda: stub.Stats(registry_pb2.StatsRequest(), metadata=bad_scheme))[0] == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    # A valid secret under another scheme, or two authorization values, are
    # refused; other metadata (whatever its name) is no credential and does
    # not disturb one.
    token_scheme = (("authorization", f"Token {BOOTSTRAP}"),)
    assert status_of(lambda: stub.Stats(registry_pb2.StatsRequest(), metadata=token_scheme))[0] == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    twice = (*ADMIN, ("authorization", "Bearer wrong"))
    assert status_of(lambda: stub.Stats(registry_pb2.StatsRequest(), metadata=twice))[0] == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    extra = (("app-version", "1.2"), *ADMIN, ("accept-language", "en"))
    stub.ListGalleries(registry_pb2.ListGalleriesRequest(), metadata=extra)

    # read: may not enroll, nor verify with an embedding probe (exact scores
    # against chosen vectors give templates away: test_security_requests.py);
    # the gallery's admin may.
    assert status_of(lambda: stub.Enroll(enroll_req, metadata=read))[0] == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    stub.Enroll(enroll_req, metadata=enroll)
    assert status_of(lambda: stub.Verify(verify_req, metadata=read))[0] == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert stub.Verify(verify_req, metadata=lobby_admin).match
    # enroll: may enroll and delete subjects, not manage galleries.
    assert status_of(
        lambda: stub.DeleteGallery(registry_pb2.DeleteGalleryRequest(name="lobby"), metadata=enroll)
    )[0] == (grpc.StatusCode.PERMISSION_DENIED)
    # Scopes are per gallery.
    assert status_of(
        lambda: stub.Stats(registry_pb2.StatsRequest(gallery="default"), metadata=lobby_admin)
    )[0] == (grpc.StatusCode.PERMISSION_DENIED)
    listed = stub.ListGalleries(registry_pb2.ListGalleriesRequest(), metadata=read)
    assert [g.name for g in listed.galleries] == ["lobby"]
    # Keys are managed with admin on "*" only.
    assert status_of(
        lambda: admin.ListApiKeys(registry_pb2.ListApiKeysRequest(), metadata=lobby_admin)
    )[0] == (grpc.StatusCode.PERMISSION_DENIED)
    assert stub.Stats(registry_pb2.StatsRequest(gallery="lobby"), metadata=lobby_admin).faces == 1

    keys = admin.ListApiKeys(registry_pb2.ListApiKeysRequest(), metadata=ADMIN).keys
    read_id = next(k.key_id for k in keys if k.scopes == {"lobby": "read"})
    admin.RevokeApiKey(registry_pb2.RevokeApiKeyRequest(key_id=read_id), metadata=ADMIN)
    assert status_of(lambda: stub.Verify(verify_req, metadata=read))[0] == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert status_of(
        lambda: admin.RevokeApiKey(registry_pb2.RevokeApiKeyRequest(key_id="nope"), metadata=ADMIN)
    )[0] == (grpc.StatusCode.NOT_FOUND)
    assert status_of(
        lambda: admin.CreateApiKey(
            registry_pb2.CreateApiKeyRequest(name="x", scopes={"lobby": "owner"}), metadata=ADMIN
        )
    )[0] == (grpc.StatusCode.INVALID_ARGUMENT)

    # Secrets are stored only as hashes.
    stored = (data_dir / "api_keys.json").read_text()
    for secret in (read, enroll, lobby_admin):
        assert secret[0][1].removeprefix("Bearer ") not in stored


def test_every_rpc_has_a_required_role() -> None:
    methods = {
        f"/{service.full_name}/{m.name}"
        for service in registry_pb2.DESCRIPTOR.services_by_name.values()
        for m in service.methods
    }
    assert set(REQUIRED_ROLE) == methods


def test_keys_optional_in_development_but_bad_keys_rejected(
    tmp_path: Path, info_embedder: str
) -> None:
    srv = create_server(server_settings(tmp_path, info_embedder, api_keys_required=False))
    srv.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
            dev = registry_pb2_grpc.RegistryStub(ch)
            dev.Enroll(registry_pb2.EnrollRequest(subject_id="anon", embeddings=[emb(unit(5))]))
            assert dev.Stats(registry_pb2.StatsRequest()).faces == 1
            code, _ = status_of(
                lambda: dev.Stats(registry_pb2.StatsRequest(), metadata=bearer("not-a-key"))
            )
            assert code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        srv.stop(0)
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert {x["who"] for x in lines if x["outcome"] == "OK"} == {"anonymous"}


def test_export_import_streams(stub: registry_pb2_grpc.RegistryStub) -> None:
    stub.CreateGallery(registry_pb2.CreateGalleryRequest(name="src"), metadata=ADMIN)
    stub.CreateGallery(registry_pb2.CreateGalleryRequest(name="dst"), metadata=ADMIN)
    for i in range(3):
        stub.Enroll(
            registry_pb2.EnrollRequest(
                gallery="src", subject_id=f"e{i}", embeddings=[emb(unit(20 + i))]
            ),
            metadata=ADMIN,
        )
    exported = list(
        stub.ExportGallery(registry_pb2.ExportGalleryRequest(gallery="src"), metadata=ADMIN)
    )
    assert sorted(f.subject_id for f in exported) == ["e0", "e1", "e2"]
    assert all(len(f.embedding.values) == DIM for f in exported)

    def requests() -> Iterator[registry_pb2.ImportGalleryRequest]:
        for f in exported:
            yield registry_pb2.ImportGalleryRequest(gallery="dst", face=f)

    result = stub.ImportGallery(requests(), metadata=ADMIN)
    assert (result.imported, result.skipped) == (3, 0)
    result = stub.ImportGallery(requests(), metadata=ADMIN)
    assert (result.imported, result.skipped) == (0, 3)


def test_health_and_reflection(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "likeness.v1.Registry"):
        response = health.Check(health_pb2.HealthCheckRequest(service=name))
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    (answer,) = reflect.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for s in answer.list_services_response.service}
    assert {"likeness.v1.Registry", "likeness.v1.Admin", "grpc.health.v1.Health"} <= names


def test_audit_log_lines(stub: registry_pb2_grpc.RegistryStub, data_dir: Path) -> None:
    v = unit(30)
    stub.Enroll(
        registry_pb2.EnrollRequest(subject_id="audited", embeddings=[emb(v)]), metadata=ADMIN
    )
    stub.Verify(
        registry_pb2.VerifyRequest(subject_id="audited", probe=common_pb2.Probe(embedding=emb(v))),
        metadata=(*ADMIN, ("x-request-id", "audit-req-1")),
    )
    status_of(lambda: stub.Stats(registry_pb2.StatsRequest(), metadata=bearer("wrong")))
    lines = [json.loads(x) for x in (data_dir / "audit.jsonl").read_text().splitlines()]
    verify = next(x for x in lines if x.get("request_id") == "audit-req-1")
    assert verify["who"] == "bootstrap" and verify["rpc"] == "Verify"
    assert verify["gallery"] == "default" and verify["subject"] == "audited"
    assert verify["decision"] == "match" and verify["outcome"] == "OK"
    assert verify["score"] == pytest.approx(1.0, abs=1e-4)
    assert any(x["outcome"] == "UNAUTHENTICATED" for x in lines)
    allowed = {
        "time",
        "who",
        "rpc",
        "gallery",
        "subject",
        "outcome",
        "request_id",
        "decision",
        "score",
        "truncated",  # field -> original length, for fields cut to 128 characters
    }
    assert all(set(x) <= allowed for x in lines)
    raw = (data_dir / "audit.jsonl").read_text()
    assert f"{float(v[0]):.6f}"[:8] not in raw and BOOTSTRAP not in raw


def test_metrics_endpoint_counts_rpcs(
    server: RegistryServer, stub: registry_pb2_grpc.RegistryStub
) -> None:
    stub.Stats(registry_pb2.StatsRequest(), metadata=ADMIN)
    status_of(lambda: stub.Stats(registry_pb2.StatsRequest(gallery="nope"), metadata=ADMIN))
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert (
        'likeness_registry_requests_total{code="OK",method="/likeness.v1.Registry/Stats"}' in text
    )
    assert 'code="NOT_FOUND",method="/likeness.v1.Registry/Stats"' in text
    assert "likeness_registry_request_seconds_bucket" in text


def test_importing_the_server_does_not_import_tensorflow() -> None:
    code = (
        "import sys, server.main; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'embedder')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_tls(tmp_path: Path, info_embedder: str) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    # The embedder serves TLS too: the registry reaches it through embedder_tls_ca.
    embedder, embedder_port = start_info_embedder(
        credentials=grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    )
    settings = server_settings(
        tmp_path,
        f"localhost:{embedder_port}",
        tls_cert=cert,
        tls_key=key,
        embedder_tls_ca=cert,
    )
    srv = create_server(settings)
    srv.start()
    try:
        assert srv.serving  # its health check reached the TLS embedder
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        options = (("grpc.ssl_target_name_override", "localhost"),)
        with grpc.secure_channel(f"127.0.0.1:{srv.port}", creds, options=options) as ch:
            made = registry_pb2_grpc.RegistryStub(ch).CreateGallery(
                registry_pb2.CreateGalleryRequest(name="default"), timeout=10
            )
            assert made.name == "default"
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as plain:
            code, _ = status_of(
                lambda: registry_pb2_grpc.RegistryStub(plain).Stats(
                    registry_pb2.StatsRequest(), timeout=5
                )
            )
            assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        srv.stop(0)
        embedder.stop(0)
    with pytest.raises(ValueError, match="tls_cert and tls_key must be set together"):
        server_settings(tmp_path, info_embedder, tls_cert=cert)
    with pytest.raises(ValueError, match="tls_cert and tls_key must be set together"):
        server_settings(tmp_path, info_embedder, tls_key=key)


def test_api_keys_are_shared_by_replicas_without_restart(tmp_path: Path) -> None:
    one, two = KeyStore(tmp_path / KEYS_FILE), KeyStore(tmp_path / KEYS_FILE)
    key_a, secret_a = one.create("a", {"*": "read"})
    assert two.find(secret_a) == key_a  # created through another replica
    key_b, secret_b = two.create("b", {"g": "admin"})  # must not drop "a"
    assert {k.key_id for k in one.list()} == {key_a.key_id, key_b.key_id}
    one.revoke(key_b.key_id)
    assert two.find(secret_b) is None  # revoked through another replica
    assert two.find(secret_a) == key_a
    assert (tmp_path / "api_keys.lock").exists()


class _FakeContext:
    """What the guard reads of a ServicerContext: metadata only."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


class _FakeDetails:
    """What the guard interceptor reads of HandlerCallDetails: the method."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def test_import_gallery_authenticates_before_reading_the_stream(tmp_path: Path) -> None:
    read: list[int] = []

    def stream() -> Iterator[registry_pb2.ImportGalleryRequest]:
        read.append(1)
        yield registry_pb2.ImportGalleryRequest(gallery="g")

    auth = Authenticator(KeyStore(tmp_path / KEYS_FILE), required=True)
    audit = AuditLog(tmp_path / "audit.jsonl")
    servicer = RegistryServicer(None)  # type: ignore[arg-type]
    details = _FakeDetails("/likeness.v1.Registry/ImportGallery")
    handler = GuardInterceptor(auth, audit).intercept_service(
        lambda _: grpc.stream_unary_rpc_method_handler(servicer.ImportGallery),
        details,  # type: ignore[arg-type]
    )
    assert handler is not None
    import_gallery = handler.stream_unary
    with pytest.raises(errors.Unauthenticated):
        import_gallery(stream(), _FakeContext(()))
    assert read == []  # nothing the unauthenticated client sent was read
    _, secret = auth.keys.create("reader", {"g": "read"})
    with pytest.raises(errors.PermissionDenied):
        import_gallery(stream(), _FakeContext(bearer(secret)))
    audit.close()
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(x["outcome"], x.get("gallery")) for x in lines] == [
        ("UNAUTHENTICATED", None),
        ("PERMISSION_DENIED", "g"),
    ]
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o777 == 0o600
