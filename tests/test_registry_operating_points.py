"""Operating points end to end: a real registry (API keys required, edge
store) on loopback, asked through the typed clients (sync and aio) and the
CLI, in front of an embedder whose Info reports three operating points
(served over real gRPC: the registry learns them only from Info)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from registry_helpers import DIM, FINGERPRINT, keyed_registry, unit
from typer.testing import CliRunner

from likeness.aio import AsyncLikenessClient
from likeness.client import (
    Embedding,
    FailedPreconditionError,
    InvalidArgumentError,
    LikenessClient,
    NotFoundError,
    PermissionDeniedError,
)
from likeness.operating_points import CUSTOM, OperatingPoint, SourceRate, to_proto
from likeness.reasons import Reason
from likeness.v1 import embedder_pb2, embedder_pb2_grpc
from likeness_cli import app

ADMIN = "operating-points-admin-key-0123"
RATE = SourceRate("lfw-train", 0.6, 0.001, 95, 428, 1552, 200_000, 89_826)
POINTS = (
    OperatingPoint("far-1e-2", 1e-2, 0.25, (RATE,)),
    OperatingPoint("far-1e-3", 1e-3, 0.5, (RATE,)),
    OperatingPoint("far-1e-4", 1e-4, 0.75, (RATE,)),
)


class PointsEmbedder(embedder_pb2_grpc.EmbedderServicer):  # type: ignore[misc]
    """Info with :data:`POINTS` (default "far-1e-3"); ``fingerprint`` can be
    changed to play an embedder restarted with another model."""

    fingerprint = FINGERPRINT
    address = ""

    def Info(self, request: object, context: object) -> embedder_pb2.InfoResponse:  # noqa: N802
        return embedder_pb2.InfoResponse(
            backend="test",
            model_id="test-model",
            model_fingerprint=self.fingerprint,
            dim=DIM,
            default_threshold=0.5,
            input_size=112,
            operating_points=[to_proto(p) for p in POINTS],
            default_operating_point="far-1e-3",
        )


@pytest.fixture(scope="module")
def embedder() -> Iterator[PointsEmbedder]:
    servicer = PointsEmbedder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    embedder_pb2_grpc.add_EmbedderServicer_to_server(servicer, server)
    checker = health.HealthServicer()
    checker.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    servicer.address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    yield servicer
    server.stop(0)


@pytest.fixture(scope="module")
def registry(embedder: PointsEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with keyed_registry(tmp_path_factory.mktemp("points"), embedder.address, ADMIN) as server:
        yield f"127.0.0.1:{server.port}"


@pytest.fixture
def admin(registry: str) -> Iterator[LikenessClient]:
    with LikenessClient(registry, api_key=ADMIN) as client:
        yield client


def _embedding(vector: np.ndarray) -> Embedding:
    return Embedding(tuple(float(x) for x in vector), FINGERPRINT)


def _at_cosine(v: np.ndarray, cosine: float, seed: int) -> np.ndarray:
    """A unit vector whose cosine with unit ``v`` is ``cosine``."""
    w = unit(seed)
    w = w - np.dot(w, v) * v
    w /= np.linalg.norm(w)
    out: np.ndarray = (cosine * v + np.sqrt(1 - cosine**2) * w).astype(np.float32)
    return out


@pytest.mark.parametrize("point", POINTS, ids=[p.name for p in POINTS])
def test_a_gallery_is_created_at_each_named_point(
    admin: LikenessClient, point: OperatingPoint
) -> None:
    gallery = admin.create_gallery(f"at-{point.name}", operating_point=point.name)
    assert gallery.operating_point == OperatingPoint(point.name, point.far, point.threshold)
    assert gallery.threshold == pytest.approx(point.threshold)


def test_without_a_name_a_gallery_gets_the_models_default(admin: LikenessClient) -> None:
    gallery = admin.create_gallery("plain")
    assert gallery.operating_point == OperatingPoint("far-1e-3", 1e-3, 0.5)
    listed = {g.name: g for g in admin.list_galleries()}
    assert listed["plain"].operating_point == gallery.operating_point


def test_an_unknown_point_is_refused_with_its_reason(admin: LikenessClient) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        admin.create_gallery("nowhere", operating_point="far-1e-9")
    assert refused.value.reason == Reason.UNKNOWN_OPERATING_POINT
    assert refused.value.metadata["value"] == "far-1e-9"
    assert refused.value.metadata["known"] == "far-1e-2,far-1e-3,far-1e-4"
    with pytest.raises(NotFoundError):
        admin.stats(gallery="nowhere")


def test_a_threshold_set_by_hand_is_custom_and_excludes_a_point(admin: LikenessClient) -> None:
    gallery = admin.create_gallery("by-hand", threshold=0.42)
    assert gallery.operating_point == OperatingPoint(CUSTOM, 0.0, pytest.approx(0.42))
    with pytest.raises(InvalidArgumentError, match="set one"):
        admin.create_gallery("both", threshold=0.42, operating_point="far-1e-4")


def test_update_moves_verify_and_identify_across_the_pair_between_thresholds(
    admin: LikenessClient,
) -> None:
    enrolled = unit(101)
    probe = _embedding(_at_cosine(enrolled, 0.6, seed=102))  # between 0.5 and 0.75
    admin.create_gallery("moving")
    admin.enroll("alice", embeddings=[_embedding(enrolled)], gallery="moving")

    before = admin.verify("alice", probe, gallery="moving")
    assert before.score == pytest.approx(0.6, abs=1e-4)
    assert before.match and before.operating_point == OperatingPoint("far-1e-3", 1e-3, 0.5)
    assert not admin.identify(probe, gallery="moving").unknown

    updated = admin.update_gallery("moving", operating_point="far-1e-4")
    assert updated.operating_point == OperatingPoint("far-1e-4", 1e-4, 0.75)

    after = admin.verify("alice", probe, gallery="moving")
    assert not after.match
    assert after.threshold == 0.75
    assert after.operating_point is not None and after.operating_point.name == "far-1e-4"
    found = admin.identify(probe, gallery="moving", min_score=0.0)
    assert found.unknown and found.operating_point == updated.operating_point
    assert admin.stats(gallery="moving").gallery.operating_point == updated.operating_point
    compared = admin.compare(probe, _embedding(enrolled), gallery="moving")
    assert not compared.match and compared.operating_point == updated.operating_point


def test_update_refuses_unknown_names_galleries_and_another_model(
    admin: LikenessClient, embedder: PointsEmbedder
) -> None:
    admin.create_gallery("fixed")
    with pytest.raises(InvalidArgumentError) as refused:
        admin.update_gallery("fixed", operating_point="strict")
    assert refused.value.reason == Reason.UNKNOWN_OPERATING_POINT
    with pytest.raises(InvalidArgumentError, match="required"):
        admin.update_gallery("fixed", operating_point="")
    with pytest.raises(NotFoundError) as missing:
        admin.update_gallery("absent", operating_point="far-1e-4")
    assert missing.value.reason == Reason.GALLERY_NOT_FOUND
    embedder.fingerprint = "other-model@ffffffffffff"
    try:
        with pytest.raises(FailedPreconditionError) as other:
            admin.update_gallery("fixed", operating_point="far-1e-4")
    finally:
        embedder.fingerprint = FINGERPRINT
    assert other.value.reason == Reason.MODEL_MISMATCH
    assert admin.stats(gallery="fixed").gallery.operating_point.name == "far-1e-3"  # type: ignore[union-attr]


def test_update_needs_the_admin_role(admin: LikenessClient, registry: str) -> None:
    admin.create_gallery("guarded")
    for role in ("read", "enroll"):
        key = admin.create_api_key(f"{role}-key", {"guarded": role})
        with (
            LikenessClient(registry, api_key=key.secret) as client,
            pytest.raises(PermissionDeniedError),
        ):
            client.update_gallery("guarded", operating_point="far-1e-4")
    key = admin.create_api_key("gallery-admin", {"guarded": "admin"})
    with LikenessClient(registry, api_key=key.secret) as client:
        assert client.update_gallery("guarded", operating_point="far-1e-2").threshold == 0.25


def test_the_default_gallery_and_compare_without_a_gallery_use_the_default_point(
    admin: LikenessClient,
) -> None:
    v = unit(7)
    admin.enroll("bob", embeddings=[_embedding(v)])
    assert admin.stats().gallery.operating_point == OperatingPoint("far-1e-3", 1e-3, 0.5)
    compared = admin.compare(_embedding(v), _embedding(_at_cosine(v, 0.6, seed=8)))
    assert compared.match and compared.operating_point == OperatingPoint("far-1e-3", 1e-3, 0.5)


def test_the_aio_client_creates_and_updates(registry: str) -> None:
    async def go() -> tuple[OperatingPoint | None, OperatingPoint | None]:
        async with AsyncLikenessClient(registry, api_key=ADMIN) as client:
            created = await client.create_gallery("async", operating_point="far-1e-2")
            updated = await client.update_gallery("async", operating_point="far-1e-4")
            return created.operating_point, updated.operating_point

    created, updated = asyncio.run(go())
    assert created is not None and created.name == "far-1e-2"
    assert updated is not None and updated.threshold == 0.75


@contextmanager
def _registry_at(data_dir: Path, embedder: PointsEmbedder) -> Iterator[LikenessClient]:
    """An admin client of a keyed registry storing under ``data_dir``, stopped on exit."""
    with (
        keyed_registry(data_dir, embedder.address, ADMIN) as server,
        LikenessClient(f"127.0.0.1:{server.port}", api_key=ADMIN) as client,
    ):
        yield client


def test_a_gallery_stored_before_operating_points_keeps_its_threshold_as_custom(
    tmp_path: Path, embedder: PointsEmbedder
) -> None:
    with _registry_at(tmp_path, embedder) as client:
        client.create_gallery("old", threshold=0.55)
        client.enroll("carol", embeddings=[_embedding(unit(11))], gallery="old")
    # As an older registry wrote it: no operating point at all.
    (config,) = [p for p in tmp_path.rglob("config.json") if p.parent.name == "old"]
    stored = json.loads(config.read_text())
    del stored["operating_point"], stored["operating_point_far"]
    config.write_text(json.dumps(stored))
    with _registry_at(tmp_path, embedder) as client:
        old = client.stats(gallery="old").gallery
        assert old.operating_point == OperatingPoint(CUSTOM, 0.0, pytest.approx(0.55))
        probe = _embedding(_at_cosine(unit(11), 0.6, seed=12))
        verified = client.verify("carol", probe, gallery="old")
        assert verified.match and verified.operating_point is not None
        assert verified.operating_point.name == CUSTOM
        moved = client.update_gallery("old", operating_point="far-1e-4")
        assert moved.operating_point is not None and moved.operating_point.name == "far-1e-4"


def _cli(registry: str, *args: str) -> tuple[int, str]:
    env = {"LIKENESS_REGISTRY_ADDRESS": registry, "LIKENESS_API_KEY": ADMIN, "COLUMNS": "200"}
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_the_cli_creates_at_a_point_and_updates(registry: str) -> None:
    code, output = _cli(registry, "galleries", "create", "cli", "--operating-point", "far-1e-2")
    assert code == 0, output
    assert "far-1e-2 (FAR 0.01)" in output
    code, output = _cli(
        registry, "galleries", "update", "cli", "--operating-point", "far-1e-4", "--json"
    )
    assert code == 0, output
    assert json.loads(output)["operating_point"]["name"] == "far-1e-4"
    code, output = _cli(registry, "galleries", "update", "cli", "--operating-point", "loose")
    assert code != 0 and "unknown operating point 'loose'" in output
    assert "Traceback" not in output
