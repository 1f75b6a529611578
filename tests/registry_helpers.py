"""Shared helpers of the registry tests (fixtures: registry_fixtures.py).

Most registry tests send precomputed embeddings (a real API path) so they
need no face model: the registry still asks an embedder for its model (to
bind galleries to a fingerprint), which :class:`InfoOnlyEmbedder` answers
over real gRPC. It serves only ``Info``; ``Embed`` answers UNIMPLEMENTED. Tests
with images use the real embedder (``real_embedder``, dlib-resnet backend:
no TensorFlow, starts in about a second).
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from likeness.v1 import embedder_pb2, embedder_pb2_grpc
from server.settings import RegistrySettings
from server.store.base import FaceStore

if TYPE_CHECKING:
    from server.main import RegistryServer

FINGERPRINT = "test-model@0123456789ab"
DIM = 64
THRESHOLD = 0.5
LFW = Path(__file__).parent / "data" / "lfw"


class InfoOnlyEmbedder(embedder_pb2_grpc.EmbedderServicer):  # type: ignore[misc]
    """Answers Info with a fixed model; Embed and EmbedBatch stay UNIMPLEMENTED."""

    def Info(self, request: object, context: object) -> embedder_pb2.InfoResponse:  # noqa: N802
        return embedder_pb2.InfoResponse(
            backend="test",
            model_id="test-model",
            model_fingerprint=FINGERPRINT,
            dim=DIM,
            default_threshold=THRESHOLD,
            input_size=112,
        )


def start_info_embedder(
    port: int = 0, credentials: grpc.ServerCredentials | None = None
) -> tuple[grpc.Server, int]:
    """An InfoOnlyEmbedder on 127.0.0.1:port (0 picks one), with grpc health;
    TLS with ``credentials``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    embedder_pb2_grpc.add_EmbedderServicer_to_server(InfoOnlyEmbedder(), server)
    checker = health.HealthServicer()
    checker.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    address = f"127.0.0.1:{port}"
    if credentials is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, credentials)
    server.start()
    return server, bound


def free_port() -> int:
    """A TCP port free at the time of the call (for servers whose 0 means "off")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    """A random L2-normalised float32 vector, reproducible from ``seed``."""
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def near(v: np.ndarray, seed: int, noise: float = 0.15) -> np.ndarray:
    """A unit vector close to ``v`` (cosine about 1 - noise**2 / 2)."""
    w = v + noise * unit(seed, v.shape[0])
    return (w / np.linalg.norm(w)).astype(np.float32)


def server_settings(tmp_path: Path, embedder_address: str, **overrides: object) -> RegistrySettings:
    """Settings of a registry on the edge store under ``tmp_path``, on a free port."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": 0,
        "store": "edge",
        "data_dir": tmp_path,
        "embedder_address": embedder_address,
        "embedder_timeout_s": 5.0,
        "grace_s": 1.0,
    }
    values.update(overrides)
    return RegistrySettings.model_validate(values)


@contextmanager
def running_embedder(**overrides: object) -> Iterator[str]:
    """A real Embedder on a free loopback port, its default model unless
    ``overrides`` (EmbedderSettings fields) say otherwise; yields its
    address, stopped on exit."""
    from embedder.server import create_server
    from embedder.settings import EmbedderSettings

    values: dict[str, object] = {"host": "127.0.0.1", "port": 0, **overrides}
    server = create_server(EmbedderSettings.model_validate(values))
    server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.stop(0)


@contextmanager
def running_registry(
    data_dir: Path, embedder_address: str, **overrides: object
) -> Iterator[RegistryServer]:
    """A started registry (:func:`server_settings`, store under ``data_dir``);
    stopped on exit."""
    from server.main import create_server

    server = create_server(server_settings(data_dir, embedder_address, **overrides))
    server.start()
    try:
        yield server
    finally:
        server.stop(1.0)


@contextmanager
def keyed_registry(
    tmp_path: Path, embedder_address: str, bootstrap_key: str, **overrides: object
) -> Iterator[RegistryServer]:
    """A started registry (:func:`server_settings`) that requires API keys,
    ``bootstrap_key`` its admin key on every gallery; stopped on exit."""
    with running_registry(
        tmp_path,
        embedder_address,
        api_keys_required=True,
        bootstrap_admin_key=bootstrap_key,
        **overrides,
    ) as server:
        yield server


def open_memory_store() -> FaceStore:
    """The qdrant backend in local ``:memory:`` mode (qdrant-client)."""
    from server.store.qdrant import QdrantStore

    return QdrantStore(location=":memory:")


def two_faces_jpeg() -> bytes:
    """Two committed LFW photos side by side: one image, two people."""
    from PIL import Image

    left = Image.open(LFW / "Emma_Watson_0001.jpg").convert("RGB")
    right = Image.open(LFW / "Kamal_Kharrazi_0001.jpg").convert("RGB")
    both = Image.new("RGB", (left.width + right.width, max(left.height, right.height)))
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    out = io.BytesIO()
    both.save(out, "JPEG", quality=95)
    return out.getvalue()
