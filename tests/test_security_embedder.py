"""The Embedder's shared key, end to end on loopback.

A real Embedder (the shipped model) started with ``api_key`` refuses every
Embedder and reflection call without ``authorization: Bearer <key>``, or with
another key, with UNAUTHENTICATED, and serves the health service to anyone
(orchestrators probe it without secrets). A real Registry given the same key
(``embedder_api_key``) enrolls and verifies photos through it; one given no
key or a wrong one reports NOT_SERVING and answers UNAVAILABLE, never
UNAUTHENTICATED (which its clients would read as a refusal of their own API
key). ``likeness serve all`` hands its embedder's key to its registry, and
makes one up when it binds other hosts without one.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydantic import SecretStr, ValidationError
from registry_helpers import server_settings
from typer.testing import CliRunner

from embedder.server import EmbedderServer, create_server
from embedder.settings import EmbedderSettings
from likeness.v1 import common_pb2, embedder_pb2, embedder_pb2_grpc, registry_pb2, registry_pb2_grpc
from likeness_cli import app
from server.main import RegistryServer
from server.main import create_server as create_registry
from server.settings import RegistrySettings

ROOT = Path(__file__).resolve().parent.parent
LFW = ROOT / "tests" / "data" / "lfw"
KEY = "embedder-key-for-the-security-tests"
WRONG = "another-key-of-the-same-shape-xx"
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


#: Metadata an embedder with KEY must refuse: none, another key, a prefix or
#: an extension of the key, the key without its scheme, another scheme.
REFUSED: dict[str, tuple[tuple[str, str], ...]] = {
    "none": (),
    "wrong": _bearer(WRONG),
    "prefix": _bearer(KEY[:-1]),
    "longer": _bearer(KEY + "x"),
    "no-scheme": (("authorization", KEY),),
    "basic": (("authorization", f"Basic {KEY}"),),
}


def _load_healthcheck() -> ModuleType:
    path = ROOT / "deploy" / "healthcheck.py"
    spec = importlib.util.spec_from_file_location("deploy_healthcheck_security", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code(call: Any) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        assert isinstance(exc, grpc.Call)
        return exc.code()
    return grpc.StatusCode.OK


def _image(name: str) -> bytes:
    return (LFW / name).read_bytes()


@pytest.fixture(scope="module")
def embedder() -> Iterator[EmbedderServer]:
    """A real Embedder with the shipped model that requires KEY."""
    server = create_server(
        EmbedderSettings(host="127.0.0.1", port=0, api_key=SecretStr(KEY), workers=2)
    )
    server.start()
    yield server
    server.stop(0)


@pytest.fixture(scope="module")
def channel(embedder: EmbedderServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(embedder.address) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> embedder_pb2_grpc.EmbedderStub:
    return embedder_pb2_grpc.EmbedderStub(channel)


# --- the embedder ---------------------------------------------------------------------


@pytest.mark.parametrize("metadata", REFUSED.values(), ids=REFUSED.keys())
def test_embedder_refuses_every_rpc_without_the_key(
    stub: embedder_pb2_grpc.EmbedderStub, metadata: tuple[tuple[str, str], ...]
) -> None:
    image = _image("Emma_Watson_0001.jpg")
    embed = embedder_pb2.EmbedRequest(image=image)
    calls = {
        "Info": lambda: stub.Info(embedder_pb2.InfoRequest(), timeout=10, metadata=metadata),
        "Embed": lambda: stub.Embed(embed, timeout=10, metadata=metadata),
        "EmbedBatch": lambda: stub.EmbedBatch(
            embedder_pb2.EmbedBatchRequest(items=[embed]), timeout=10, metadata=metadata
        ),
    }
    for name, call in calls.items():
        assert _code(call) == UNAUTHENTICATED, name


def test_embedder_serves_the_right_key(stub: embedder_pb2_grpc.EmbedderStub) -> None:
    info = stub.Info(embedder_pb2.InfoRequest(), timeout=10, metadata=_bearer(KEY))
    assert info.dim > 0 and info.model_fingerprint
    # The scheme is case-insensitive (RFC 7235), the key is not.
    embedded = stub.Embed(
        embedder_pb2.EmbedRequest(image=_image("Emma_Watson_0001.jpg")),
        timeout=30,
        metadata=(("authorization", f"bearer {KEY}"),),
    )
    assert len(embedded.faces) == 1
    assert len(embedded.faces[0].embedding.values) == info.dim


def test_embedder_health_needs_no_key_and_reflection_does(
    embedder: EmbedderServer, channel: grpc.Channel
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == SERVING
    # The container probe (deploy/healthcheck.py) sends no key.
    assert _load_healthcheck().check(embedder.address, timeout_s=5.0)

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)

    def list_services(metadata: tuple[tuple[str, str], ...]) -> list[Any]:
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        return list(reflection.ServerReflectionInfo(iter([request]), timeout=5, metadata=metadata))

    assert _code(lambda: list_services(())) == UNAUTHENTICATED
    assert list_services(_bearer(KEY))


def test_an_unusable_key_is_refused_and_never_echoed() -> None:
    for value in (
        "short-secret",
        "has a space in the middle",
        "non-ascii-key-\u00e9\u00e9\u00e9\u00e9",
    ):
        with pytest.raises(ValidationError) as embedder_error:
            EmbedderSettings(api_key=SecretStr(value))
        with pytest.raises(ValidationError) as registry_error:
            RegistrySettings.model_validate({"embedder_api_key": value})
        assert value not in str(embedder_error.value)
        assert value not in str(registry_error.value)


def test_start_up_warns_when_other_hosts_reach_an_embedder_without_a_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from embedder.server import log_exposure

    cases = {
        ("0.0.0.0", None): True,
        ("192.0.2.10", None): True,
        ("::", None): True,
        ("0.0.0.0", KEY): False,
        ("127.0.0.1", None): False,
        ("::1", None): False,
        ("localhost", None): False,
    }
    for (host, key), warns in cases.items():
        caplog.clear()
        settings = EmbedderSettings(host=host, api_key=None if key is None else SecretStr(key))
        with caplog.at_level(logging.WARNING, logger="likeness.embedder"):
            assert log_exposure(settings) is warns, host
        assert any(r.levelno == logging.WARNING for r in caplog.records) is warns, (host, key)


# --- the registry in front of it ------------------------------------------------------


def _registry(tmp_path: Path, address: str, key: str | None) -> RegistryServer:
    overrides: dict[str, object] = {"embedder_timeout_s": 30.0}
    if key is not None:
        overrides["embedder_api_key"] = key
    server = create_registry(server_settings(tmp_path, address, **overrides))
    server.start()
    return server


def test_registry_with_the_key_enrolls_and_verifies(
    embedder: EmbedderServer, tmp_path: Path
) -> None:
    registry = _registry(tmp_path, embedder.address, KEY)
    try:
        assert registry.serving
        with grpc.insecure_channel(f"127.0.0.1:{registry.port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
            assert status == SERVING
            stub = registry_pb2_grpc.RegistryStub(ch)
            enrolled = stub.Enroll(
                registry_pb2.EnrollRequest(
                    subject_id="Emma_Watson",
                    images=[_image("Emma_Watson_0001.jpg"), _image("Emma_Watson_0002.jpg")],
                ),
                timeout=60,
            )
            assert len(enrolled.faces) == 2
            verified = stub.Verify(
                registry_pb2.VerifyRequest(
                    subject_id="Emma_Watson",
                    probe=common_pb2.Probe(image=_image("Emma_Watson_0003.jpg")),
                ),
                timeout=60,
            )
            assert verified.match  # the README's tour: Emma_Watson_0003 matches
    finally:
        registry.stop(0)


@pytest.mark.parametrize("key", [None, WRONG], ids=["no-key", "wrong-key"])
def test_registry_refused_by_the_embedder_is_not_serving_and_unavailable(
    embedder: EmbedderServer, tmp_path: Path, key: str | None
) -> None:
    registry = _registry(tmp_path, embedder.address, key)
    try:
        # The embedder's health answers SERVING to anyone: the registry must
        # notice the refused key all the same.
        assert not registry.serving
        with grpc.insecure_channel(f"127.0.0.1:{registry.port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
            assert status == NOT_SERVING
            stub = registry_pb2_grpc.RegistryStub(ch)
            image = _image("Emma_Watson_0001.jpg")
            calls = {
                "Enroll": lambda: stub.Enroll(
                    registry_pb2.EnrollRequest(subject_id="Emma_Watson", images=[image]),
                    timeout=30,
                ),
                "Compare": lambda: stub.Compare(
                    registry_pb2.CompareRequest(
                        a=common_pb2.Probe(image=image), b=common_pb2.Probe(image=image)
                    ),
                    timeout=30,
                ),
                "CreateGallery": lambda: stub.CreateGallery(
                    registry_pb2.CreateGalleryRequest(name="keyed"), timeout=30
                ),
            }
            for name, call in calls.items():
                assert _code(call) == UNAVAILABLE, name
    finally:
        registry.stop(0)


# --- likeness serve all ---------------------------------------------------------------


class _FakeServer:
    port = 1

    def start(self) -> None:
        pass

    def stop(self, grace_s: float | None = None) -> None:
        pass

    def reopen_audit_log(self) -> None:
        pass


#: Registry settings that let it bind a non-loopback host (protected mode).
_KEYS_ON = {
    "LIKENESS_REGISTRY_API_KEYS_REQUIRED": "true",
    "LIKENESS_REGISTRY_BOOTSTRAP_ADMIN_KEY": "bootstrap-for-serve-all-tests",
}


def _serve_all(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], env: dict[str, str]
) -> tuple[EmbedderSettings, RegistrySettings, str]:
    """Run ``likeness serve all`` with servers that only record their
    settings; returns (embedder settings, registry settings, stdout)."""
    import embedder.server
    import server.main

    seen: dict[str, Any] = {}

    def fake(name: str) -> Any:
        def create(settings: Any) -> _FakeServer:
            seen[name] = settings
            return _FakeServer()

        return create

    monkeypatch.setattr(embedder.server, "create_server", fake("embedder"))
    monkeypatch.setattr(server.main, "create_server", fake("registry"))
    monkeypatch.setattr("likeness_cli.serve._wait_for_signal", lambda *_: None)
    monkeypatch.setattr("likeness.logs.configure", lambda *args, **kwargs: None)
    for name in ("LIKENESS_EMBEDDER_API_KEY", "LIKENESS_REGISTRY_EMBEDDER_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["serve", "all", "--data-dir", str(tmp_path), *args], env=env)
    assert result.exit_code == 0, result.output
    return seen["embedder"], seen["registry"], result.stdout


def _secret(key: SecretStr | None) -> str | None:
    return None if key is None else key.get_secret_value()


def test_serve_all_gives_the_registry_the_configured_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    es, rs, stdout = _serve_all(
        monkeypatch,
        tmp_path,
        ["--host", "0.0.0.0"],
        {"LIKENESS_EMBEDDER_API_KEY": KEY, "LIKENESS_REGISTRY_EMBEDDER_API_KEY": WRONG, **_KEYS_ON},
    )
    assert _secret(es.api_key) == _secret(rs.embedder_api_key) == KEY
    assert KEY not in stdout


def test_serve_all_makes_up_a_key_when_it_serves_other_hosts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    es, rs, stdout = _serve_all(monkeypatch, tmp_path, ["--host", "0.0.0.0"], _KEYS_ON)
    key = _secret(es.api_key)
    assert key is not None and len(key) >= 32
    assert _secret(rs.embedder_api_key) == key
    assert key not in stdout
    es2, _, _ = _serve_all(monkeypatch, tmp_path, ["--host", "0.0.0.0"], _KEYS_ON)
    assert _secret(es2.api_key) != key, "a new key each run"


def test_serve_all_on_loopback_without_a_key_stays_open(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The README's `likeness serve all`: `likeness info` reaches the embedder
    # without a key, as before.
    es, rs, _ = _serve_all(monkeypatch, tmp_path, [], {})
    assert es.api_key is None and rs.embedder_api_key is None
