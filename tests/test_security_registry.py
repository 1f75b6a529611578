"""Security of the Registry against callers on loopback, through real servers:
bounded and rotated audit log (SIGHUP reopens it), protected mode (no keys
only on loopback unless told), and API key names and scopes refused with
INVALID_ARGUMENT."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from registry_helpers import free_port, server_settings
from typer.testing import CliRunner, Result

from likeness.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from likeness_cli import app
from server.audit import LINE_MAX_BYTES, AuditLog, AuditRecord
from server.auth import KEYS_FILE, KEYS_LOCK_FILE, KeyStore
from server.main import RegistryServer, create_server
from server.settings import is_loopback

pytest_plugins = ["registry_fixtures"]

ROOT = Path(__file__).resolve().parent.parent


def audit_lines(path: Path) -> list[dict[str, object]]:
    """Every line of an audit file, each checked to be JSON within the cap."""
    raw = path.read_bytes().splitlines(keepends=True)
    assert all(len(line) <= LINE_MAX_BYTES for line in raw), max(map(len, raw))
    return [json.loads(line) for line in raw]


def code_of(call: object) -> grpc.StatusCode:
    """The status code of ``call`` (a zero-argument lambda), which must fail."""
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def keyless(tmp_path: Path, info_embedder: str) -> Iterator[RegistryServer]:
    """A registry on loopback with API keys off (the development default)."""
    srv = create_server(server_settings(tmp_path, info_embedder, api_keys_required=False))
    srv.start()
    yield srv
    srv.stop(0)


@pytest.fixture
def channel(keyless: RegistryServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{keyless.port}") as ch:
        yield ch


# -- item 2: the audit log ------------------------------------------------------------


def test_huge_unvalidated_fields_give_bounded_audit_lines(
    keyless: RegistryServer, channel: grpc.Channel, tmp_path: Path
) -> None:
    stub = registry_pb2_grpc.RegistryStub(channel)
    audit = tmp_path / "audit.jsonl"
    before = audit.stat().st_size
    subject = "a" * (7 << 20)
    probe = common_pb2.Probe(image=b"x")
    for _ in range(20):
        code = code_of(
            lambda: stub.Verify(
                registry_pb2.VerifyRequest(subject_id=subject, gallery="g\n" * 100, probe=probe)
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    grown = audit.stat().st_size - before
    assert grown <= 20 * 1024, grown  # was 20 x 7 MiB
    lines = [x for x in audit_lines(audit) if x["rpc"] == "Verify"]
    assert len(lines) == 20
    for line in lines:
        assert len(str(line["subject"])) == 128
        assert line["truncated"] == {"subject": 7 << 20, "gallery": 200}


def test_escaped_non_ascii_fields_stay_under_the_line_cap(tmp_path: Path) -> None:
    # 128 emoji escape to 1,536 bytes each field: four fields would pass 4 KiB.
    wide = "\U0001f600" * 1000
    log = AuditLog(tmp_path / "audit.jsonl")
    log.write(AuditRecord("anonymous", "Verify", wide, "OK", wide, subject=wide, decision=wide))
    log.close()
    (line,) = audit_lines(tmp_path / "audit.jsonl")
    assert line["rpc"] == "Verify" and line["outcome"] == "OK"
    assert set(line["truncated"]) == {"gallery", "request_id", "subject", "decision"}  # type: ignore[arg-type]


def test_audit_log_rotates_past_max_bytes_and_keeps_backups(
    tmp_path: Path, info_embedder: str
) -> None:
    settings = server_settings(
        tmp_path,
        info_embedder,
        api_keys_required=False,
        audit_max_bytes=1000,
        audit_backups=2,
    )
    srv = create_server(settings)
    srv.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
            stub = registry_pb2_grpc.RegistryStub(ch)
            for _ in range(40):  # about 200 bytes a line: several files' worth
                code = code_of(lambda: stub.Stats(registry_pb2.StatsRequest(gallery="nope")))
                assert code == grpc.StatusCode.NOT_FOUND
    finally:
        srv.stop(0)
    audit = tmp_path / "audit.jsonl"
    files = [audit, Path(f"{audit}.1"), Path(f"{audit}.2")]
    assert all(f.exists() for f in files)
    assert not Path(f"{audit}.3").exists()
    for f in files:
        assert f.stat().st_size <= 1000
        assert f.stat().st_mode & 0o777 == 0o600
        assert all(x["rpc"] == "Stats" for x in audit_lines(f))


def test_reopen_follows_a_moved_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.write(AuditRecord("anonymous", "Stats", "g", "OK", "r1"))
    path.rename(tmp_path / "moved.jsonl")
    log.reopen()
    log.write(AuditRecord("anonymous", "Stats", "g", "OK", "r2"))
    log.close()
    assert [x["request_id"] for x in audit_lines(tmp_path / "moved.jsonl")] == ["r1"]
    assert [x["request_id"] for x in audit_lines(path)] == ["r2"]


def _registry_env(tmp_path: Path, embedder: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIKENESS_")}
    env.update(
        LIKENESS_REGISTRY_PORT=str(port),
        LIKENESS_REGISTRY_METRICS_PORT="0",
        LIKENESS_REGISTRY_DATA_DIR=str(tmp_path / "data"),
        LIKENESS_REGISTRY_EMBEDDER_ADDRESS=embedder,
        LIKENESS_REGISTRY_GRACE_S="1",
    )
    return env


@pytest.mark.parametrize(
    "command",
    [["-m", "server.main"], ["-m", "likeness_cli", "serve", "registry"]],
    ids=["server.main", "likeness-serve"],
)
def test_sighup_reopens_a_moved_audit_log(
    command: list[str], tmp_path: Path, info_embedder: str
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, *command],
        env=_registry_env(tmp_path, info_embedder, port),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    audit = tmp_path / "data" / "audit.jsonl"
    moved = tmp_path / "data" / "audit.jsonl.rotated"
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = registry_pb2_grpc.RegistryStub(ch)
            stub.ListGalleries(registry_pb2.ListGalleriesRequest(), wait_for_ready=True, timeout=60)
            audit.rename(moved)  # what logrotate does, then it sends SIGHUP
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            while not audit.exists() and time.monotonic() < deadline:
                assert proc.poll() is None, "SIGHUP ended the registry"
                stub.ListGalleries(registry_pb2.ListGalleriesRequest(), timeout=10)
                time.sleep(0.1)
            assert audit.exists(), "the audit log was not reopened"
        assert all(x["rpc"] == "ListGalleries" for x in audit_lines(moved) + audit_lines(audit))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- item 3: protected mode -------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "registry.example"])
def test_a_keyless_server_refuses_a_non_loopback_host(
    host: str, tmp_path: Path, info_embedder: str
) -> None:
    settings = server_settings(tmp_path, info_embedder, host=host, api_keys_required=False)
    with pytest.raises(ValueError) as info:
        create_server(settings)
    assert "allow_insecure_no_keys" in str(info.value)
    assert "api_keys_required" in str(info.value)
    # Refused before anything was opened.
    assert not (tmp_path / "audit.jsonl").exists()


def test_server_main_exits_2_on_a_keyless_non_loopback_host(
    tmp_path: Path, info_embedder: str
) -> None:
    env = _registry_env(tmp_path, info_embedder, free_port())
    env["LIKENESS_REGISTRY_HOST"] = "0.0.0.0"
    run = subprocess.run(
        [sys.executable, "-m", "server.main"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "allow_insecure_no_keys" in run.stderr


def test_a_keyless_non_loopback_server_starts_with_the_flag_and_warns(
    tmp_path: Path, info_embedder: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = server_settings(tmp_path, info_embedder, host="0.0.0.0", allow_insecure_no_keys=True)
    srv = create_server(settings)
    with caplog.at_level(logging.WARNING, logger="likeness.registry"):
        srv.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
            stub = registry_pb2_grpc.RegistryStub(ch)
            assert list(stub.ListGalleries(registry_pb2.ListGalleriesRequest()).galleries) == []
    finally:
        srv.stop(0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and getattr(warnings[0], "api_keys_required", None) is False
    assert getattr(warnings[0], "host", None) == "0.0.0.0"


def test_keys_required_serves_any_host_without_a_warning(
    tmp_path: Path, info_embedder: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = server_settings(tmp_path, info_embedder, host="0.0.0.0", api_keys_required=True)
    srv = create_server(settings)
    with caplog.at_level(logging.WARNING, logger="likeness.registry"):
        srv.start()
    srv.stop(0)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_keys_off_on_loopback_warns_and_counts_stored_keys(
    tmp_path: Path, info_embedder: str, caplog: pytest.LogCaptureFixture
) -> None:
    for stored in (0, 1):
        srv = create_server(server_settings(tmp_path, info_embedder, api_keys_required=False))
        with caplog.at_level(logging.WARNING, logger="likeness.registry"):
            srv.start()
        try:
            if stored == 0:
                with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
                    registry_pb2_grpc.AdminStub(ch).CreateApiKey(
                        registry_pb2.CreateApiKeyRequest(name="reader", scopes={"*": "read"})
                    )
        finally:
            srv.stop(0)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert getattr(warnings[0], "stored_keys", None) == stored
        caplog.clear()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("LocalHost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("[::]", False),
        ("", False),
        ("10.0.0.1", False),
        ("localhost.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _serve_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str = "registry", **env: str | None
) -> Result:
    monkeypatch.setattr("likeness_cli.serve._wait_for_signal", lambda *_: None)
    monkeypatch.setattr("likeness.logs.configure", lambda *args, **kwargs: None)
    args = ["serve", target, "--host", "0.0.0.0", "--registry-port", "0"]
    args += [
        "--metrics-port",
        "0",
        "--data-dir",
        str(tmp_path),
        "--embedder-address",
        f"127.0.0.1:{free_port()}",
    ]
    names = ("API_KEYS_REQUIRED", "ALLOW_INSECURE_NO_KEYS", "HOST", "GRACE_S")
    environment = {f"LIKENESS_REGISTRY_{n}": None for n in names}
    return CliRunner().invoke(app, args, env={**environment, **env})


@pytest.mark.parametrize("target", ["registry", "all"])
def test_likeness_serve_refuses_a_keyless_non_loopback_host(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_embedder(settings: object) -> None:
        raise AssertionError("the embedder was started before the refusal")

    # serve all refuses before the embedder loads its model.
    monkeypatch.setattr("embedder.server.create_server", no_embedder)
    result = _serve_registry(tmp_path, monkeypatch, target)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "allow_insecure_no_keys" in lines[0] and "api_keys_required" in lines[0]
    assert not (tmp_path / "audit.jsonl").exists()


def test_likeness_serve_binds_a_non_loopback_host_with_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _serve_registry(tmp_path, monkeypatch, LIKENESS_REGISTRY_ALLOW_INSECURE_NO_KEYS="true")
    assert result.exit_code == 0, result.output
    assert "registry  listening on 0.0.0.0:" in result.stdout


# -- item 8: API key names and scopes -----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["ops\nkey_forged revoked", "\x1b[2J\x1b[31madmin", "tab\there", "rlo\u202egnp.exe", "nul\0"],
    ids=["newline", "escape", "tab", "bidi-override", "nul"],
)
def test_key_names_with_control_characters_are_refused(
    name: str, channel: grpc.Channel, tmp_path: Path
) -> None:
    admin = registry_pb2_grpc.AdminStub(channel)
    request = registry_pb2.CreateApiKeyRequest(name=name, scopes={"*": "read"})
    assert code_of(lambda: admin.CreateApiKey(request)) == grpc.StatusCode.INVALID_ARGUMENT
    assert list(admin.ListApiKeys(registry_pb2.ListApiKeysRequest()).keys) == []


def test_scopes_must_name_existing_galleries(channel: grpc.Channel) -> None:
    admin = registry_pb2_grpc.AdminStub(channel)
    stub = registry_pb2_grpc.RegistryStub(channel)

    def create(scopes: dict[str, str]) -> registry_pb2.CreateApiKeyResponse:
        return admin.CreateApiKey(
            registry_pb2.CreateApiKeyRequest(name="CI reader (nightly)", scopes=scopes)
        )

    with pytest.raises(grpc.RpcError) as info:
        create({"ghost": "read"})
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "scopes" in (info.value.details() or "")
    assert list(admin.ListApiKeys(registry_pb2.ListApiKeysRequest()).keys) == []
    stub.CreateGallery(registry_pb2.CreateGalleryRequest(name="ghost"))
    create({"ghost": "read"})
    # "*" always; "default" before its first Enroll (which creates it).
    create({"*": "read", "default": "enroll"})
    code = code_of(lambda: create({"ghost": "read", "gone": "admin"}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # A missing gallery is refused whichever side of "default" its name sorts,
    # and a name that cannot be a gallery whichever side of "*".
    for scope in ("archive", "#ops"):
        assert code_of(lambda s=scope: create({s: "read"})) == grpc.StatusCode.INVALID_ARGUMENT
    assert len(admin.ListApiKeys(registry_pb2.ListApiKeysRequest()).keys) == 2


def test_key_names_take_at_most_128_characters(channel: grpc.Channel) -> None:
    admin = registry_pb2_grpc.AdminStub(channel)

    def create(name: str) -> registry_pb2.CreateApiKeyResponse:
        return admin.CreateApiKey(registry_pb2.CreateApiKeyRequest(name=name, scopes={"*": "read"}))

    create("n" * 128)
    with pytest.raises(grpc.RpcError) as info:
        create("n" * 129)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in (info.value.details() or "")
    assert [k.name for k in admin.ListApiKeys(registry_pb2.ListApiKeysRequest()).keys] == [
        "n" * 128
    ]


def test_the_key_file_and_its_lock_are_private(tmp_path: Path) -> None:
    """Only the service's user may read the key hashes or take the lock
    (another user holding it would stall every key creation)."""
    store = KeyStore(tmp_path / KEYS_FILE)
    store.create("ops", {"*": "read"})
    for name in (KEYS_FILE, KEYS_LOCK_FILE):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name


def test_a_failed_key_write_keeps_the_old_keys_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = KeyStore(tmp_path / KEYS_FILE)
    kept, _ = store.create("kept", {"*": "read"})

    def disk_full(self: Path, target: Path) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "replace", disk_full)
    with pytest.raises(OSError):
        store.create("lost", {"*": "read"})
    monkeypatch.undo()
    assert [k.key_id for k in KeyStore(tmp_path / KEYS_FILE).list()] == [kept.key_id]
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEYS_FILE, KEYS_LOCK_FILE]
