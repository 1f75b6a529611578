"""Bounded load run of the registry over gRPC, API keys required.

    .venv/bin/python -m bench.bench_load [--clients 32] [--seconds 60] [--subjects 1000]

Starts an embedder (dlib-resnet backend: it only answers Info here) and a
registry (edge store in a temporary folder, ``api_keys_required=true``) as
child processes on loopback, enrolls ``--subjects`` subjects with
``--faces`` precomputed embeddings each (a few thousand faces), creates an
API key scoped to that gallery, then runs ``--clients`` client threads for
``--seconds`` seconds, each alternating Verify (the claimed subject) and
Identify (top 5) with a probe near one enrolled face. Probes are embeddings,
so the figures are the registry's and the store's cost (the embedder's
is in bench.bench_embedder); embedding probes need the gallery's admin role,
so the key has it.

Prints one JSON object: calls, errors by status code, throughput (calls/s),
p50/p99 latency per RPC (ms) and the registry's resident memory (MiB)
after enrolment and at the end. Every loop is bounded in count and time,
and only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from likeness.v1 import common_pb2, registry_pb2, registry_pb2_grpc

GALLERY = "load"
#: The dlib-resnet backend's descriptor dimension.
DIM = 128
_START_TIMEOUT_S = 120.0
#: Calls one client may make at most, whatever --seconds says.
_MAX_CALLS_PER_CLIENT = 1_000_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_serving(address: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{address}: the server exited with {proc.returncode}")
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"{address}: not serving after {_START_TIMEOUT_S:.0f} s")


@contextmanager
def _process(module: str, env: dict[str, str], address: str) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_serving(address, proc)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _unit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
    return out


def _embedding(v: np.ndarray, fingerprint: str) -> common_pb2.Embedding:
    return common_pb2.Embedding(values=v.tolist(), model_fingerprint=fingerprint)


def _percentile_ms(samples: list[float], q: float) -> float | None:
    return round(float(np.percentile(samples, q)) * 1000, 2) if samples else None


def run(clients: int, seconds: float, subjects: int, faces: int, seed: int) -> dict[str, object]:
    """The load run; see the module docstring."""
    bootstrap = secrets.token_urlsafe(24)
    embedder_port, registry_port = _free_port(), _free_port()
    registry_address = f"127.0.0.1:{registry_port}"
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="likeness-load-") as data_dir:
        embedder_env = {
            "LIKENESS_EMBEDDER_HOST": "127.0.0.1",
            "LIKENESS_EMBEDDER_PORT": str(embedder_port),
            "LIKENESS_EMBEDDER_BACKEND": "dlib-resnet",
        }
        registry_env = {
            "LIKENESS_REGISTRY_HOST": "127.0.0.1",
            "LIKENESS_REGISTRY_PORT": str(registry_port),
            "LIKENESS_REGISTRY_METRICS_PORT": "0",
            "LIKENESS_REGISTRY_DATA_DIR": data_dir,
            "LIKENESS_REGISTRY_EMBEDDER_ADDRESS": f"127.0.0.1:{embedder_port}",
            "LIKENESS_REGISTRY_API_KEYS_REQUIRED": "true",
            "LIKENESS_REGISTRY_BOOTSTRAP_ADMIN_KEY": bootstrap,
            "LIKENESS_REGISTRY_LOG_LEVEL": "WARNING",
        }
        with (
            _process("embedder.server", embedder_env, f"127.0.0.1:{embedder_port}"),
            _process("server.main", registry_env, registry_address) as registry_pid,
            grpc.insecure_channel(registry_address) as channel,
        ):
            stub = registry_pb2_grpc.RegistryStub(channel)
            admin = registry_pb2_grpc.AdminStub(channel)
            boot = (("authorization", f"Bearer {bootstrap}"),)
            gallery = stub.CreateGallery(
                registry_pb2.CreateGalleryRequest(name=GALLERY), metadata=boot
            )
            fingerprint = gallery.model_fingerprint
            centres = _unit(rng.normal(size=(subjects, DIM)))
            started = time.monotonic()
            for s in range(subjects):
                noisy = _unit(centres[s] + rng.normal(size=(faces, DIM)) * (0.8 / np.sqrt(DIM)))
                stub.Enroll(
                    registry_pb2.EnrollRequest(
                        gallery=GALLERY,
                        subject_id=f"s{s:06d}",
                        embeddings=[_embedding(v, fingerprint) for v in noisy],
                    ),
                    metadata=boot,
                )
            enrol_s = time.monotonic() - started
            secret = admin.CreateApiKey(
                registry_pb2.CreateApiKeyRequest(name="load", scopes={GALLERY: "admin"}),
                metadata=boot,
            ).secret
            rss_before = _rss_mib(registry_pid)
            latencies: dict[str, list[float]] = {"Verify": [], "Identify": []}
            errors: Counter[str] = Counter()
            lock = threading.Lock()
            stop_at = time.monotonic() + seconds

            def client(index: int) -> None:
                local = np.random.default_rng(seed + 1 + index)
                key = (("authorization", f"Bearer {secret}"),)
                mine: dict[str, list[float]] = {"Verify": [], "Identify": []}
                failed: Counter[str] = Counter()
                for call in range(_MAX_CALLS_PER_CLIENT):
                    if time.monotonic() >= stop_at:
                        break
                    s = int(local.integers(subjects))
                    noise = local.normal(size=DIM) * (0.8 / np.sqrt(DIM))
                    probe = common_pb2.Probe(
                        embedding=_embedding(_unit(centres[s] + noise), fingerprint)
                    )
                    rpc = "Verify" if call % 2 == 0 else "Identify"
                    t0 = time.perf_counter()
                    try:
                        if rpc == "Verify":
                            stub.Verify(
                                registry_pb2.VerifyRequest(
                                    gallery=GALLERY, subject_id=f"s{s:06d}", probe=probe
                                ),
                                metadata=key,
                                timeout=30,
                            )
                        else:
                            stub.Identify(
                                registry_pb2.IdentifyRequest(gallery=GALLERY, probe=probe, top_k=5),
                                metadata=key,
                                timeout=30,
                            )
                    except grpc.RpcError as exc:
                        failed[exc.code().name] += 1
                        continue
                    mine[rpc].append(time.perf_counter() - t0)
                with lock:
                    for name, values in mine.items():
                        latencies[name].extend(values)
                    errors.update(failed)

            threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
            run_started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - run_started
            rss_after = _rss_mib(registry_pid)
    calls = sum(len(v) for v in latencies.values())
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "subjects": subjects,
        "faces": subjects * faces,
        "enrol_s": round(enrol_s, 1),
        "calls_ok": calls,
        "errors": dict(errors),
        "calls_per_s": round(calls / elapsed, 1),
        **{
            f"{rpc.lower()}_{name}_ms": _percentile_ms(values, q)
            for rpc, values in latencies.items()
            for name, q in (("p50", 50), ("p99", 99))
        },
        "registry_rss_mib_before": round(rss_before, 1),
        "registry_rss_mib_after": round(rss_after, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--faces", type=int, default=3, help="faces per subject")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = run(args.clients, args.seconds, args.subjects, args.faces, args.seed)
    print(json.dumps(result, indent=1))
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
