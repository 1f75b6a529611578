"""Stopping the registry lets a call already in flight finish: the caller
gets its real answer, not CANCELLED or UNAVAILABLE. The call is held inside
the server (its embedder blocks) until the stop has begun."""

from __future__ import annotations

import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from registry_helpers import LFW, InfoOnlyEmbedder, server_settings

from likeness.v1 import common_pb2, embedder_pb2, embedder_pb2_grpc, registry_pb2, registry_pb2_grpc
from server.main import create_server


class _BlockingEmbedder(InfoOnlyEmbedder):
    """Embed waits for ``release``, then finds no face."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def Embed(self, request: object, context: object) -> embedder_pb2.EmbedResponse:  # noqa: N802
        self.entered.set()
        self.release.wait(60)
        return embedder_pb2.EmbedResponse()


def _serving(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def test_a_call_in_flight_when_the_registry_stops_gets_its_answer(tmp_path: Path) -> None:
    fake = _BlockingEmbedder()
    embedder = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    embedder_pb2_grpc.add_EmbedderServicer_to_server(fake, embedder)
    embedder_port = embedder.add_insecure_port("127.0.0.1:0")
    embedder.start()
    registry = create_server(
        server_settings(
            tmp_path, f"127.0.0.1:{embedder_port}", api_keys_required=False, grace_s=30.0
        )
    )
    registry.start()
    outcome: dict[str, Any] = {}
    try:
        with grpc.insecure_channel(f"127.0.0.1:{registry.port}") as channel:
            stub = registry_pb2_grpc.RegistryStub(channel)
            assert _serving(registry.port)

            def verify() -> None:
                probe = common_pb2.Probe(image=(LFW / "Emma_Watson_0001.jpg").read_bytes())
                try:
                    stub.Verify(
                        registry_pb2.VerifyRequest(subject_id="emma", probe=probe), timeout=60
                    )
                    outcome["code"] = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    outcome["code"] = exc.code()  # type: ignore[attr-defined]

            caller = threading.Thread(target=verify)
            caller.start()
            assert fake.entered.wait(30)  # the call is inside the registry
            stopper = threading.Thread(target=registry.stop)  # the settings' grace: 30 s
            stopper.start()
            while _serving(registry.port):
                pass  # until the stop has begun: no longer SERVING
            fake.release.set()
            caller.join(60)
            stopper.join(60)
    finally:
        fake.release.set()
        registry.stop(0)
        embedder.stop(0)
    # The registry's own answer to this call: the embedder found no face.
    assert outcome["code"] == grpc.StatusCode.NOT_FOUND
