"""Registry reliability: a crash mid-stream loses no acknowledged enrolment
and duplicates none; a crash mid HNSW build leaves no build process behind;
concurrent clients; dependencies (the embedder, the Qdrant server) going away
and back."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from qdrant_grpc_shim import ShimProcess
from registry_helpers import (
    FINGERPRINT,
    free_port,
    near,
    server_settings,
    start_info_embedder,
    unit,
)

from likeness.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from server.main import create_server

pytest_plugins = ["registry_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
ENROLLS = 2000

T = TypeVar("T")


def emb(v: np.ndarray) -> common_pb2.Embedding:
    return common_pb2.Embedding(values=v.tolist(), model_fingerprint=FINGERPRINT)


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def start_process(
    data_dir: Path, embedder: str, log_path: Path, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m server.main`` on the edge store in ``data_dir`` (with
    ``extra_env`` on top of the test's settings); returns it and its port."""
    env = {
        **os.environ,
        "LIKENESS_REGISTRY_PORT": "0",
        "LIKENESS_REGISTRY_METRICS_PORT": "0",
        "LIKENESS_REGISTRY_STORE": "edge",
        "LIKENESS_REGISTRY_DATA_DIR": str(data_dir),
        "LIKENESS_REGISTRY_EMBEDDER_ADDRESS": embedder,
        "LIKENESS_REGISTRY_GRACE_S": "1",
        **(extra_env or {}),
    }
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.main"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    log.close()
    port: list[int] = []

    def serving() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"registry exited: {log_path.read_text()[-2000:]}")
        for line in log_path.read_text().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("message") == "registry serving":
                    port[:] = [int(entry["port"])]
        return bool(port)

    wait_for(serving, 60, "the registry process to serve")
    return proc, port[-1]


def enroll_request(i: int) -> registry_pb2.EnrollRequest:
    return registry_pb2.EnrollRequest(
        subject_id=f"s{i:04d}", embeddings=[emb(unit(10_000 + i))], idempotency_key=f"key-{i}"
    )


@pytest.mark.slow
def test_kill_9_mid_stream_loses_no_acknowledged_enroll_and_duplicates_none(
    tmp_path: Path, info_embedder: str
) -> None:
    data_dir = tmp_path / "data"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    proc, port = start_process(data_dir, info_embedder, first_log)
    acked: dict[int, str] = {}
    lock = threading.Lock()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = registry_pb2_grpc.RegistryStub(channel)

            def send(indices: range) -> None:
                for i in indices:
                    try:
                        response = stub.Enroll(enroll_request(i), timeout=10)
                    except grpc.RpcError:
                        continue  # not acknowledged: re-sent after the restart
                    with lock:
                        acked[i] = response.faces[0].face_id

            senders = 4
            chunk = ENROLLS // senders
            with ThreadPoolExecutor(senders) as pool:
                running = [
                    pool.submit(send, range(s * chunk, (s + 1) * chunk)) for s in range(senders)
                ]
                wait_for(lambda: len(acked) >= ENROLLS // 4, 60, "a quarter of the enrolls")
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                for future in running:
                    future.result()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert ENROLLS // 4 <= len(acked) < ENROLLS, "the kill must land mid-stream"

    proc, port = start_process(data_dir, info_embedder, second_log)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = registry_pb2_grpc.RegistryStub(channel)
            for i in range(ENROLLS):
                if i not in acked:
                    stub.Enroll(enroll_request(i), timeout=10)
            # A retry of an acknowledged enroll is answered as a replay.
            replay = stub.Enroll(enroll_request(min(acked)), timeout=10)
            assert replay.replayed and replay.faces[0].face_id == acked[min(acked)]
            stats = stub.Stats(registry_pb2.StatsRequest(), timeout=10)
            assert (stats.subjects, stats.faces) == (ENROLLS, ENROLLS)
            faces: dict[str, list[str]] = {}
            for face in stub.ExportGallery(registry_pb2.ExportGalleryRequest(), timeout=30):
                faces.setdefault(face.subject_id, []).append(face.face_id)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert all(len(ids) == 1 for ids in faces.values())
    for i, face_id in acked.items():
        assert faces[f"s{i:04d}"] == [face_id]


@pytest.mark.slow
def test_32_concurrent_clients_get_consistent_answers(tmp_path: Path, info_embedder: str) -> None:
    settings = server_settings(tmp_path, info_embedder, workers=16)
    server = create_server(settings)
    server.start()
    failures: list[str] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = registry_pb2_grpc.RegistryStub(channel)
            # Made up front: reads such as Stats no longer create "default".
            stub.CreateGallery(registry_pb2.CreateGalleryRequest(name="default"))

            def client(t: int) -> None:
                for r in range(4):
                    subject = f"t{t:02d}-r{r}"
                    v = unit(50_000 + t * 10 + r)
                    probe = common_pb2.Probe(embedding=emb(v))
                    stub.Enroll(registry_pb2.EnrollRequest(subject_id=subject, embeddings=[emb(v)]))
                    verified = stub.Verify(
                        registry_pb2.VerifyRequest(subject_id=subject, probe=probe)
                    )
                    if not verified.match or verified.score < 0.999:
                        failures.append(f"{subject}: verify {verified.score}")
                    found = stub.Identify(registry_pb2.IdentifyRequest(probe=probe, top_k=3))
                    if not found.candidates or found.candidates[0].subject_id != subject:
                        failures.append(f"{subject}: identify {found.candidates[:1]}")
                    deleted = stub.DeleteSubject(
                        registry_pb2.DeleteSubjectRequest(subject_id=subject)
                    )
                    if deleted.faces_deleted != 1:
                        failures.append(f"{subject}: deleted {deleted.faces_deleted}")
                    try:
                        stub.Verify(registry_pb2.VerifyRequest(subject_id=subject, probe=probe))
                        failures.append(f"{subject}: verify after delete succeeded")
                    except grpc.RpcError as exc:
                        if exc.code() != grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                            failures.append(f"{subject}: {exc.code()}")  # type: ignore[attr-defined]

            with ThreadPoolExecutor(32) as pool:
                for future in [pool.submit(client, t) for t in range(32)]:
                    future.result()
            stats = stub.Stats(registry_pb2.StatsRequest())
    finally:
        server.stop(1.0)
    assert failures == []
    assert (stats.subjects, stats.faces) == (0, 0)


def _health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status)


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_dead_qdrant_answers_unavailable(tmp_path: Path, info_embedder: str) -> None:
    settings = server_settings(
        tmp_path,
        info_embedder,
        store="qdrant",
        qdrant_url=f"http://127.0.0.1:{free_port()}",
        qdrant_prefer_grpc=False,
    )
    server = create_server(settings)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            assert _health(channel) == NOT_SERVING
            stub = registry_pb2_grpc.RegistryStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Enroll(
                    registry_pb2.EnrollRequest(subject_id="a", embeddings=[emb(unit(1))]),
                    timeout=30,
                )
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
            assert "Traceback" not in (info.value.details() or "")  # type: ignore[attr-defined]
    finally:
        server.stop(0)


@pytest.fixture
def embedder_on_fixed_port() -> Iterator[tuple[int, Callable[[], None], Callable[[], None]]]:
    """(port, start, stop) of an Info-serving embedder restartable on one port."""
    holder: list[grpc.Server] = []
    first, port = start_info_embedder()
    holder.append(first)

    def stop() -> None:
        holder.pop().stop(0).wait()

    def start() -> None:
        server, bound = start_info_embedder(port)
        assert bound == port
        holder.append(server)

    yield port, start, stop
    while holder:
        stop()


def test_embedder_down_then_back(
    tmp_path: Path, embedder_on_fixed_port: tuple[int, Callable[[], None], Callable[[], None]]
) -> None:
    port, start_embedder, stop_embedder = embedder_on_fixed_port
    server = create_server(server_settings(tmp_path, f"127.0.0.1:{port}"))
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = registry_pb2_grpc.RegistryStub(channel)
            assert _health(channel) == SERVING
            stub.CreateGallery(registry_pb2.CreateGalleryRequest(name="before"))

            stop_embedder()
            with pytest.raises(grpc.RpcError) as info:
                stub.CreateGallery(registry_pb2.CreateGalleryRequest(name="during"))
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
            wait_for(lambda: _health(channel) == NOT_SERVING, 10, "NOT_SERVING")
            # Vector-in work on an existing gallery needs no embedder.
            stub.Enroll(
                registry_pb2.EnrollRequest(
                    gallery="before", subject_id="a", embeddings=[emb(unit(1))]
                )
            )

            start_embedder()
            wait_for(lambda: _health(channel) == SERVING, 15, "SERVING again")
            created = stub.CreateGallery(registry_pb2.CreateGalleryRequest(name="after"))
            assert created.model_fingerprint == FINGERPRINT
    finally:
        server.stop(0)


@pytest.fixture
def qdrant_shim(tmp_path: Path) -> Iterator[ShimProcess]:
    """A Qdrant gRPC server double (tests/qdrant_grpc_shim.py) on a fixed
    loopback port, its data under tmp_path; stopped at teardown, whatever
    the test did to it."""
    shim = ShimProcess(free_port(), tmp_path / "qdrant-shim-data", tmp_path / "qdrant-shim.log")
    try:
        shim.start()
        yield shim
    finally:
        shim.stop()


def _unavailable_answer(call: Callable[[], object]) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert "Traceback" not in (info.value.details() or "")  # type: ignore[attr-defined]


def _until_available(call: Callable[[], T], timeout_s: float) -> T:
    """``call()``, retried while it answers UNAVAILABLE (what the proto tells
    clients to do), for at most ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_qdrant_down_then_back(
    tmp_path: Path, info_embedder: str, qdrant_shim: ShimProcess
) -> None:
    settings = server_settings(
        tmp_path, info_embedder, store="qdrant", qdrant_url=qdrant_shim.url, qdrant_prefer_grpc=True
    )
    server = create_server(settings)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = registry_pb2_grpc.RegistryStub(channel)
            assert _health(channel) == SERVING
            v = unit(1)
            stub.Enroll(
                registry_pb2.EnrollRequest(
                    subject_id="before", embeddings=[emb(v), emb(near(v, 2))]
                ),
                timeout=10,
            )
            probe = common_pb2.Probe(embedding=emb(near(v, 3)))

            def enroll_after() -> registry_pb2.EnrollResponse:
                request = registry_pb2.EnrollRequest(
                    subject_id="after", embeddings=[emb(unit(4))], idempotency_key="after-1"
                )
                response: registry_pb2.EnrollResponse = stub.Enroll(request, timeout=10)
                return response

            def verify() -> registry_pb2.VerifyResponse:
                request = registry_pb2.VerifyRequest(subject_id="before", probe=probe)
                response: registry_pb2.VerifyResponse = stub.Verify(request, timeout=10)
                return response

            def identify() -> registry_pb2.IdentifyResponse:
                request = registry_pb2.IdentifyRequest(probe=probe, top_k=3)
                response: registry_pb2.IdentifyResponse = stub.Identify(request, timeout=10)
                return response

            qdrant_shim.kill()
            for call in (enroll_after, verify, identify):
                _unavailable_answer(call)
            wait_for(lambda: _health(channel) == NOT_SERVING, 10, "NOT_SERVING")

            qdrant_shim.start()  # same port, same data
            wait_for(lambda: _health(channel) == SERVING, 30, "SERVING again")
            verified = _until_available(verify, 30)
            assert verified.match and verified.score > 0.9
            subject = _until_available(
                lambda: stub.GetSubject(
                    registry_pb2.GetSubjectRequest(subject_id="before"), timeout=10
                ),
                30,
            )
            assert len(subject.faces) == 2
            enrolled = _until_available(enroll_after, 30)
            assert len(enrolled.faces) == 1 and not enrolled.replayed
            found = _until_available(identify, 30)
            assert found.candidates[0].subject_id == "before"
    finally:
        server.stop(0)
    assert qdrant_shim.stop() == 0, "the shim exits cleanly on SIGTERM"


def test_failed_start_releases_the_data_dir(tmp_path: Path, info_embedder: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError):
            create_server(server_settings(tmp_path, info_embedder, port=port))
    # The edge store's lock, the audit log and the embedder channel were
    # released: a second server on the same data_dir starts.
    server = create_server(server_settings(tmp_path, info_embedder))
    server.start()
    try:
        assert server.serving
    finally:
        server.stop(0)


# -- the edge store's HNSW build child and a killed registry -------------------

BUILD_FACES = 3000
FACES_PER_SUBJECT = 100
BUILD_MODULE = b"server.store._edge_optimize"


def _proc_state(pid: int) -> str | None:
    """The process's state letter (R, S, T, Z, ...), None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def build_processes(data_dir: Path) -> list[int]:
    """Live (not zombie) edge build children working under ``data_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if BUILD_MODULE in cmdline and str(data_dir).encode() in cmdline:
            state = _proc_state(int(entry.name))
            if state not in (None, "Z"):
                found.append(int(entry.name))
    return found


def freeze_mid_build(pid: int) -> None:
    """SIGSTOP the build child once it has loaded the engine (so it is past
    its start-up, death-signal set-up included, and into the build). It is
    let run in short steps until then: stopped, it cannot finish too early."""
    deadline = time.monotonic() + 60
    while True:
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: _proc_state(pid) in ("T", "t", None), 10, "the build child to stop")
        maps = Path(f"/proc/{pid}/maps").read_text()  # raises once it has ended
        if "qdrant_edge" in maps:
            return
        assert time.monotonic() < deadline, "the build child never loaded qdrant_edge"
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.02)


def subject_vectors(s: int) -> list[np.ndarray]:
    return [unit(200_000 + s * FACES_PER_SUBJECT + j) for j in range(FACES_PER_SUBJECT)]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_during_hnsw_build_takes_the_build_child_along(
    tmp_path: Path, info_embedder: str
) -> None:
    data_dir = tmp_path / "data"
    env = {"LIKENESS_REGISTRY_HNSW_MIN_FACES": str(BUILD_FACES)}
    subjects = BUILD_FACES // FACES_PER_SUBJECT
    proc, port = start_process(data_dir, info_embedder, tmp_path / "first.log", env)
    leftovers: list[int] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = registry_pb2_grpc.RegistryStub(channel)
            for s in range(subjects):
                stub.Enroll(
                    registry_pb2.EnrollRequest(
                        subject_id=f"b{s:03d}", embeddings=[emb(v) for v in subject_vectors(s)]
                    ),
                    timeout=30,
                )
        # The last enrolment reached hnsw_min_faces: the build child starts.
        children: list[int] = []

        def build_started() -> bool:
            children[:] = build_processes(data_dir)
            return bool(children)

        wait_for(build_started, 60, "the build child to start")
        # A frozen child stands in for a long build (a million faces take
        # minutes): it must still be running when the registry dies.
        freeze_mid_build(children[0])
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 5
        while build_processes(data_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        leftovers = build_processes(data_dir)
        assert leftovers == [], "the build child outlived the killed registry"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)

    second_log = tmp_path / "second.log"
    proc, port = start_process(data_dir, info_embedder, second_log, env)
    try:

        def built() -> bool:
            return "built HNSW index of gallery 'default'" in second_log.read_text()

        wait_for(built, 60, "the restarted registry's build")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = registry_pb2_grpc.RegistryStub(channel)
            stats = stub.Stats(registry_pb2.StatsRequest(), timeout=10)
            assert (stats.subjects, stats.faces) == (subjects, BUILD_FACES)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert build_processes(data_dir) == []

    from server.store.edge import EdgeStore

    store = EdgeStore(data_dir / "qdrant", hnsw_min_faces=BUILD_FACES, hnsw_ef=128)
    try:
        info = store.index_info("default")
        assert (info.faces, info.indexed, info.building) == (BUILD_FACES, BUILD_FACES, False)
        found = 0
        for s in range(subjects):
            for v in subject_vectors(s)[::10]:
                found += store.search("default", v, 1)[0].subject_id == f"b{s:03d}"
        assert found >= 0.99 * subjects * (FACES_PER_SUBJECT // 10)
    finally:
        store.close()
    gallery_dir = data_dir / "qdrant" / "galleries" / "default"
    assert len(list(gallery_dir.glob("shard-*"))) == 1
