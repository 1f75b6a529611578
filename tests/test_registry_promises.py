"""Promises a user would notice, each guarded by a test that a one-line bug
fails: Identify's per-subject best face and score ranking, the sharpness
and yaw gates, FACE_SELECTION_ALL at Enroll on a real two-face image (in
the service, over gRPC, and from the client), a NaN probe answered
INVALID_ARGUMENT (by status code), the limits at their boundaries, and
Enroll's per-subject lock against concurrent enrolments and deletes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from registry_helpers import (
    FINGERPRINT,
    LFW,
    near,
    open_memory_store,
    server_settings,
    two_faces_jpeg,
    unit,
)

from likeness import errors
from likeness.selection import FaceSelection as Selection
from likeness.selection import from_pb
from likeness.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from server import _validate as check
from server.domain import EmbeddingInput, GalleryOptions, Probe
from server.embedder_client import EmbedderClient
from server.main import create_server
from server.service import RegistryService

pytest_plugins = ["registry_fixtures"]


def emb(v: np.ndarray) -> EmbeddingInput:
    return EmbeddingInput(values=v.tolist(), model_fingerprint=FINGERPRINT)


def probe(v: np.ndarray) -> Probe:
    return Probe(embedding=emb(v))


@pytest.fixture
def image_service(real_embedder: str) -> Iterator[RegistryService]:
    store = open_memory_store()
    client = EmbedderClient(real_embedder, timeout_s=30.0, max_message_bytes=8 << 20)
    yield RegistryService(store, client)
    client.close()
    store.close()


# -- Identify: each subject's best face, ranked by score ---------------------


def test_identify_answers_each_subjects_best_face_and_ranks_by_score(
    service: RegistryService,
) -> None:
    target = unit(1)
    # Subject ids in the reverse of their score order: a ranking by id fails.
    faces: dict[str, list[tuple[str, np.ndarray]]] = {}
    for subject, noises in (
        ("a-far", (0.9, 0.8)),
        ("m-mid", (0.7, 0.4, 0.6)),
        ("z-near", (0.5, 0.2)),
    ):
        for i, noise in enumerate(noises):
            v = near(target, 100 * len(subject) + i, noise=noise)
            result = service.enroll("", subject, embeddings=[emb(v)])
            faces.setdefault(subject, []).append((result.faces[0].face_id, v))
    result = service.identify("", probe(target), top_k=3, min_score=-1.0)
    assert [c.subject_id for c in result.candidates] == ["z-near", "m-mid", "a-far"]
    for candidate in result.candidates:
        scores = {fid: float(np.dot(v, target)) for fid, v in faces[candidate.subject_id]}
        best = max(scores, key=lambda fid: scores[fid])
        assert candidate.face_id == best, candidate.subject_id
        assert candidate.score == pytest.approx(scores[best], abs=1e-4)
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True)


def test_identify_top_k_cuts_the_ranking_after_the_best(service: RegistryService) -> None:
    target = unit(2)
    for i, noise in enumerate((0.9, 0.3, 0.6, 0.1)):
        service.enroll("", f"s{i}", embeddings=[emb(near(target, 200 + i, noise=noise))])
    result = service.identify("", probe(target), top_k=2, min_score=-1.0)
    assert [c.subject_id for c in result.candidates] == ["s3", "s1"]


# -- limits at their boundaries ----------------------------------------------


def test_top_k_1_and_100_are_served_and_101_refused(service: RegistryService) -> None:
    service.enroll("", "only", embeddings=[emb(unit(3))])
    service.enroll("", "second", embeddings=[emb(unit(4))])
    assert len(service.identify("", probe(unit(3)), top_k=100, min_score=-1.0).candidates) == 2
    (best,) = service.identify("", probe(unit(3)), top_k=1, min_score=-1.0).candidates
    assert best.subject_id == "only"
    with pytest.raises(errors.InvalidArgument, match="top_k"):
        service.identify("", probe(unit(3)), top_k=101)


def test_a_subject_id_of_128_characters_is_enrolled_and_129_refused(
    service: RegistryService,
) -> None:
    longest = "s" * 128
    assert service.enroll("", longest, embeddings=[emb(unit(4))]).subject_id == longest
    assert service.get_subject("", longest).subject_id == longest
    with pytest.raises(errors.InvalidArgument, match="subject_id"):
        service.enroll("", "s" * 129, embeddings=[emb(unit(4))])
    assert service.stats("").subjects == 1


def test_thresholds_and_min_scores_take_the_boundary_values_of_a_cosine(
    service: RegistryService,
) -> None:
    for i, threshold in enumerate((-1.0, 0.25, 1.0)):
        config = service.create_gallery(f"t{i}", GalleryOptions(threshold=threshold))
        assert config.threshold == threshold
    for threshold in (-1.001, 1.001):
        with pytest.raises(errors.InvalidArgument, match="threshold"):
            service.create_gallery("beyond", GalleryOptions(threshold=threshold))
    service.enroll("", "only", embeddings=[emb(unit(3))])
    for min_score in (0.25, 1.0 - 1e-6):
        (hit,) = service.identify("", probe(unit(3)), min_score=min_score).candidates
        assert hit.subject_id == "only"
    with pytest.raises(errors.InvalidArgument, match="min_score"):
        service.identify("", probe(unit(3)), min_score=1.001)


def test_quality_gates_take_their_boundary_values(service: RegistryService) -> None:
    config = service.create_gallery(
        "widest", GalleryOptions(max_abs_yaw_deg=180.0, min_sharpness=1e6, min_face_size_px=0.0)
    )
    assert (config.max_abs_yaw_deg, config.min_sharpness) == (180.0, 1e6)
    for options, field in (
        (GalleryOptions(max_abs_yaw_deg=180.5), "max_abs_yaw_deg"),
        (GalleryOptions(min_sharpness=float("inf")), "min_sharpness"),
        (GalleryOptions(min_face_size_px=float("nan")), "min_face_size_px"),
    ):
        with pytest.raises(errors.InvalidArgument, match=field):
            service.create_gallery("beyond", options)
    assert [g.name for g in service.list_galleries()] == ["widest"]


def test_an_embedding_norm_within_the_boundary_tolerance_is_accepted_and_renormalised(
    service: RegistryService,
) -> None:
    v = unit(5)
    service.enroll("", "near-unit", embeddings=[emb(v * 1.0009)])
    assert service.verify("", "near-unit", probe(v * 0.9991)).score == pytest.approx(1.0, abs=1e-6)
    for scale in (1.0011, 0.9989):
        with pytest.raises(errors.InvalidArgument, match="norm"):
            service.enroll("", "near-unit", embeddings=[emb(v * scale)])
    assert service.stats("").faces == 1
    # Compare scores the re-normalised vectors: their exact cosine (about 0.6 here).
    w = 0.6 * v + 0.8 * unit(6)
    w = (w / np.linalg.norm(w)).astype(np.float32)
    cosine = float(np.dot(v.astype(np.float64), w.astype(np.float64)))
    for a, b in ((1.0009, 1.0009), (0.9991, 0.9991), (1.0009, 0.9991)):
        compared = service.compare(probe(v * a), probe(w * b)).score
        assert compared == pytest.approx(cosine, abs=1e-5)


@pytest.mark.parametrize("dim", [128, 512, 1024])
def test_a_model_of_any_dimension_has_its_embeddings_accepted_at_that_dimension(dim: int) -> None:
    """A recipe may train a 512-d model: its galleries take 512 values (the
    check compares counts, whatever their size), and refuse any other."""
    v = unit(7, dim)
    assert np.array_equal(check.vector(v, dim, "probe"), v)
    for other in (dim - 1, dim + 1):
        with pytest.raises(errors.InvalidArgument, match="dimension"):
            check.vector(unit(7, other), dim, "probe")


# -- quality gates -------------------------------------------------------------


def _measured_quality(svc: RegistryService, image: bytes) -> tuple[float, float]:
    (face,) = svc.enroll("", "measure", images=[image]).faces
    assert face.quality is not None
    return face.quality.sharpness, face.quality.yaw_deg


def test_the_face_size_gate_refuses_a_face_below_it_and_admits_one_above(
    image_service: RegistryService,
) -> None:
    image = (LFW / "Emma_Watson_0001.jpg").read_bytes()
    (face,) = image_service.enroll("", "measure", images=[image]).faces
    assert face.quality is not None
    size = face.quality.face_size_px
    image_service.create_gallery("big-faces", GalleryOptions(min_face_size_px=size * 1.5))
    with pytest.raises(errors.FailedPrecondition, match="face size"):
        image_service.enroll("big-faces", "emma", images=[image])
    assert image_service.stats("big-faces").faces == 0
    image_service.create_gallery("small-faces", GalleryOptions(min_face_size_px=size * 0.5))
    assert len(image_service.enroll("small-faces", "emma", images=[image]).faces) == 1
    # A face exactly at the gate passes it (the gate refuses "below").
    image_service.create_gallery("at-size", GalleryOptions(min_face_size_px=size))
    assert len(image_service.enroll("at-size", "emma", images=[image]).faces) == 1


def test_the_sharpness_gate_refuses_a_face_below_it_and_admits_one_above(
    image_service: RegistryService,
) -> None:
    image = (LFW / "Emma_Watson_0001.jpg").read_bytes()
    sharpness, _ = _measured_quality(image_service, image)
    image_service.create_gallery("sharp", GalleryOptions(min_sharpness=sharpness * 1.5))
    with pytest.raises(errors.FailedPrecondition, match="sharpness"):
        image_service.enroll("sharp", "emma", images=[image])
    assert image_service.stats("sharp").faces == 0
    image_service.create_gallery("soft", GalleryOptions(min_sharpness=sharpness * 0.5))
    assert len(image_service.enroll("soft", "emma", images=[image]).faces) == 1
    image_service.create_gallery("at-sharpness", GalleryOptions(min_sharpness=sharpness))
    assert len(image_service.enroll("at-sharpness", "emma", images=[image]).faces) == 1


def test_the_yaw_gate_refuses_a_turned_face_and_admits_it_within_the_limit(
    image_service: RegistryService,
) -> None:
    image = (LFW / "Emma_Watson_0001.jpg").read_bytes()
    _, yaw = _measured_quality(image_service, image)
    assert abs(yaw) > 1.0  # the photo is not perfectly frontal
    image_service.create_gallery("frontal", GalleryOptions(max_abs_yaw_deg=abs(yaw) / 2))
    with pytest.raises(errors.FailedPrecondition, match="yaw"):
        image_service.enroll("frontal", "emma", images=[image])
    assert image_service.stats("frontal").faces == 0
    image_service.create_gallery("turned", GalleryOptions(max_abs_yaw_deg=abs(yaw) * 2))
    assert len(image_service.enroll("turned", "emma", images=[image]).faces) == 1
    # A face exactly at the limit passes it (the gate refuses "beyond").
    image_service.create_gallery("at-yaw", GalleryOptions(max_abs_yaw_deg=abs(yaw)))
    assert len(image_service.enroll("at-yaw", "emma", images=[image]).faces) == 1
    # A limit under one degree is a limit too.
    image_service.create_gallery("strict-yaw", GalleryOptions(max_abs_yaw_deg=0.5))
    with pytest.raises(errors.FailedPrecondition, match="yaw"):
        image_service.enroll("strict-yaw", "emma", images=[image])


# -- FACE_SELECTION_ALL at Enroll ----------------------------------------------


def test_selection_all_enrolls_both_faces_of_a_two_face_image(
    image_service: RegistryService,
) -> None:
    image = two_faces_jpeg()
    result = image_service.enroll("", "both", images=[image], selection=Selection.ALL)
    assert len(result.faces) == 2
    assert image_service.stats("").faces == 2
    largest = image_service.enroll("", "one", images=[image], selection=Selection.LARGEST)
    assert len(largest.faces) == 1
    with pytest.raises(errors.FailedPrecondition, match="exactly one face"):
        image_service.enroll("", "single", images=[image], selection=Selection.REQUIRE_SINGLE)
    assert image_service.stats("").faces == 3


def test_an_unknown_selection_value_is_invalid_argument() -> None:
    with pytest.raises(errors.InvalidArgument, match="selection"):
        from_pb(99, Selection.REQUIRE_SINGLE)
    assert from_pb(common_pb2.FACE_SELECTION_UNSPECIFIED, Selection.LARGEST) is Selection.LARGEST
    assert from_pb(common_pb2.FACE_SELECTION_ALL, Selection.LARGEST) is Selection.ALL


@pytest.fixture
def real_registry(tmp_path: Path, real_embedder: str) -> Iterator[registry_pb2_grpc.RegistryStub]:
    srv = create_server(server_settings(tmp_path, real_embedder, api_keys_required=False))
    srv.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            yield registry_pb2_grpc.RegistryStub(channel)
    finally:
        srv.stop(1.0)


def test_selection_all_over_grpc_enrolls_both_faces(
    real_registry: registry_pb2_grpc.RegistryStub,
) -> None:
    image = two_faces_jpeg()
    response = real_registry.Enroll(
        registry_pb2.EnrollRequest(
            subject_id="both", images=[image], selection=common_pb2.FACE_SELECTION_ALL
        )
    )
    assert len(response.faces) == 2
    # Unset, Enroll's selection is REQUIRE_SINGLE: the same image is refused.
    with pytest.raises(grpc.RpcError) as info:
        real_registry.Enroll(registry_pb2.EnrollRequest(subject_id="one", images=[image]))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]


def test_a_nan_probe_is_invalid_argument_by_status_code(
    real_registry: registry_pb2_grpc.RegistryStub,
) -> None:
    # Embeddings of the embedder's own model: the registry checks NaN itself.
    real_registry.Enroll(
        registry_pb2.EnrollRequest(
            subject_id="emma", images=[(LFW / "Emma_Watson_0001.jpg").read_bytes()]
        )
    )
    gallery = real_registry.Stats(registry_pb2.StatsRequest()).gallery
    nan = common_pb2.Embedding(
        values=[float("nan")] * gallery.dim, model_fingerprint=gallery.model_fingerprint
    )
    good = common_pb2.Probe(image=(LFW / "Emma_Watson_0002.jpg").read_bytes())
    calls = {
        "Compare": lambda: real_registry.Compare(
            registry_pb2.CompareRequest(a=common_pb2.Probe(embedding=nan), b=good)
        ),
        "Verify": lambda: real_registry.Verify(
            registry_pb2.VerifyRequest(subject_id="emma", probe=common_pb2.Probe(embedding=nan))
        ),
        "Identify": lambda: real_registry.Identify(
            registry_pb2.IdentifyRequest(probe=common_pb2.Probe(embedding=nan))
        ),
    }
    for name, call in calls.items():
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name  # type: ignore[attr-defined]


# -- Enroll's per-subject lock --------------------------------------------------


def test_concurrent_enrolments_and_deletes_of_one_subject_leave_it_whole(
    service: RegistryService,
) -> None:
    """Enrolments of one subject with new metadata race deletes of it; after
    each round every stored face carries the metadata of one enrolment."""
    service.enroll("", "seed", embeddings=[emb(unit(9))])
    errors_seen: list[BaseException] = []

    def enrol(i: int) -> None:
        try:
            service.enroll(
                "", "racer", embeddings=[emb(unit(1000 + i))], metadata={"round": str(i)}
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors_seen.append(exc)

    def delete() -> None:
        try:
            service.delete_subject("", "racer")
        except errors.NotFound:
            pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors_seen.append(exc)

    for round_ in range(3):
        threads = [threading.Thread(target=enrol, args=(round_ * 100 + i,)) for i in range(12)]
        threads += [threading.Thread(target=delete) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors_seen, errors_seen
        try:
            record = service.get_subject("", "racer")
        except errors.NotFound:
            continue
        assert len({tuple(sorted(f.metadata.items())) for f in record.faces}) == 1
        assert record.metadata == record.faces[-1].metadata


class _MeetInsideEnrol:
    """A store proxy that makes two enrolments of one subject meet inside
    their write: each waits (up to 2 s) at a barrier after reading the
    subject's faces, and every write is slow. Under the per-subject lock the
    second never reaches the barrier while the first is inside (the wait
    times out and they run one after the other); without it they interleave."""

    def __init__(self, store: object) -> None:
        self._store = store
        self._barrier = threading.Barrier(2, timeout=2.0)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def subject_faces(self, gallery: str, subject_id: str) -> object:
        faces = self._store.subject_faces(gallery, subject_id)  # type: ignore[attr-defined]
        if subject_id == "shared":
            with contextlib.suppress(threading.BrokenBarrierError):
                self._barrier.wait()
        return faces

    def set_subject_metadata(self, *args: object) -> None:
        time.sleep(0.2)
        self._store.set_subject_metadata(*args)  # type: ignore[attr-defined]

    def upsert_faces(self, *args: object) -> None:
        time.sleep(0.2)
        self._store.upsert_faces(*args)  # type: ignore[attr-defined]


def test_two_enrolments_of_one_subject_never_leave_mixed_metadata(
    memory_store: object, info_embedder: str
) -> None:
    client = EmbedderClient(info_embedder, timeout_s=5.0, max_message_bytes=8 << 20)
    try:
        plain = RegistryService(memory_store, client)  # type: ignore[arg-type]
        plain.enroll("", "shared", embeddings=[emb(unit(50))], metadata={"v": "0"})
        racing = RegistryService(_MeetInsideEnrol(memory_store), client)  # type: ignore[arg-type]
        threads = [
            threading.Thread(
                target=racing.enroll,
                args=("", "shared"),
                kwargs={"embeddings": [emb(unit(51 + i))], "metadata": {"v": str(i + 1)}},
            )
            for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        record = plain.get_subject("", "shared")
        assert len(record.faces) == 3
        # The last enrolment's metadata is every face's metadata.
        assert len({f.metadata["v"] for f in record.faces}) == 1, [f.metadata for f in record.faces]
    finally:
        client.close()


# -- decisions at the threshold, and Identify's widening search ---------------


def test_verify_identify_and_compare_match_a_score_exactly_at_the_threshold(
    service: RegistryService,
) -> None:
    a, b = unit(60), near(unit(60), 600, noise=0.8)
    service.enroll("", "edge", embeddings=[emb(a)])
    score = service.verify("", "edge", probe(b)).score
    service.create_gallery("at-threshold", GalleryOptions(threshold=score))
    service.enroll("at-threshold", "edge", embeddings=[emb(a)])
    verdict = service.verify("at-threshold", "edge", probe(b))
    assert verdict.score == score and verdict.match
    found = service.identify("at-threshold", probe(b))
    assert not found.unknown and [c.subject_id for c in found.candidates] == ["edge"]
    exact = service.compare(probe(a), probe(b)).score
    service.create_gallery("at-compare", GalleryOptions(threshold=exact))
    assert service.compare(probe(a), probe(b), gallery="at-compare").match


def test_identify_widens_its_search_past_a_subject_with_many_close_faces(
    service: RegistryService,
) -> None:
    """One subject's 40 faces are all closer to the probe than anyone else:
    the first face search (4 x top_k faces) sees only them, and Identify
    must search further to find top_k distinct subjects."""
    target = unit(70)
    for i in range(40):
        service.enroll("", "crowd", embeddings=[emb(near(target, 7000 + i, noise=0.05))])
    for i, noise in enumerate((0.3, 0.8, 1.5)):
        service.enroll("", f"far-{i}", embeddings=[emb(near(target, 7100 + i, noise=noise))])
    result = service.identify("", probe(target), top_k=3, min_score=-1.0)
    assert [c.subject_id for c in result.candidates] == ["crowd", "far-0", "far-1"]
    everyone = service.identify("", probe(target), top_k=10, min_score=-1.0)
    assert [c.subject_id for c in everyone.candidates] == ["crowd", "far-0", "far-1", "far-2"]


def test_identify_widens_past_hundreds_of_one_subjects_faces_for_a_large_top_k(
    service: RegistryService,
) -> None:
    """top_k 70: the first search (280 faces) sees only one subject's 300
    close faces; the others are found by searching further (searches of
    more than 256 faces, where a count compared by identity would differ)."""
    target = unit(71)
    crowd = [emb(near(target, 8000 + i, noise=0.05)) for i in range(300)]
    for start in range(0, 300, 100):
        service.enroll("", "crowd", embeddings=crowd[start : start + 100])
    for i in range(69):
        service.enroll("", f"far-{i:02d}", embeddings=[emb(near(target, 8400 + i, noise=0.6))])
    result = service.identify("", probe(target), top_k=70, min_score=-1.0)
    assert len(result.candidates) == 70
    assert result.candidates[0].subject_id == "crowd"


def test_identify_answers_what_its_4096_face_search_found_when_one_subject_fills_it(
    service: RegistryService,
) -> None:
    """Identify searches at most 4096 faces: when one subject's 4100 close
    faces fill them all, it answers that subject (and stops searching)."""
    target = unit(72)
    rng = np.random.default_rng(72)
    close = target + 0.05 * rng.standard_normal((4100, target.shape[0])).astype(np.float32)
    close /= np.linalg.norm(close, axis=1, keepdims=True)
    for start in range(0, 4100, 100):
        service.enroll("", "crowd", embeddings=[emb(v) for v in close[start : start + 100]])
    service.enroll("", "far", embeddings=[emb(near(target, 8500, noise=0.6))])
    result = service.identify("", probe(target), top_k=2, min_score=-1.0)
    assert [c.subject_id for c in result.candidates] == ["crowd"]


def test_the_first_verify_creates_the_default_gallery(service: RegistryService) -> None:
    with pytest.raises(errors.NotFound, match="subject"):
        service.verify("", "nobody", probe(unit(80)))
    assert [g.name for g in service.list_galleries()] == ["default"]


def test_the_first_identify_creates_the_default_gallery(service: RegistryService) -> None:
    assert service.identify("", probe(unit(81))).unknown
    assert [g.name for g in service.list_galleries()] == ["default"]


def test_compare_scores_opposite_faces_minus_one(service: RegistryService) -> None:
    v = unit(82)
    result = service.compare(probe(v), probe(-v))
    assert result.score == pytest.approx(-1.0) and not result.match
    assert service.compare(probe(v), probe(v)).score == pytest.approx(1.0)


def test_identify_answers_five_candidates_unless_told(service: RegistryService) -> None:
    for i in range(7):
        service.enroll("", f"s{i}", embeddings=[emb(unit(90 + i))])
    assert len(service.identify("", probe(unit(90)), min_score=-1.0).candidates) == 5


class _CountingStore:
    """Counts the face searches of a store."""

    def __init__(self, store: object) -> None:
        self._store = store
        self.searches = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def search(self, *args: object, **kwargs: object) -> object:
        self.searches += 1
        return self._store.search(*args, **kwargs)  # type: ignore[attr-defined]


def test_identify_stops_searching_once_the_rest_is_below_the_floor(
    memory_store: object, info_embedder: str
) -> None:
    """Identify widens its face search only while it can still find a
    subject: not when the search already returned every face, nor when its
    last face is below the score floor."""
    client = EmbedderClient(info_embedder, timeout_s=5.0, max_message_bytes=8 << 20)
    try:
        counting = _CountingStore(memory_store)
        service = RegistryService(counting, client)  # type: ignore[arg-type]
        target = unit(100)
        service.enroll("", "close", embeddings=[emb(near(target, 1000, noise=0.1))])
        for i in range(3):
            service.enroll("", f"few-{i}", embeddings=[emb(unit(1010 + i))])
        counting.searches = 0
        service.identify("", probe(target), top_k=10, min_score=-1.0)  # 4 faces < 40 asked
        assert counting.searches == 1
        service.create_gallery("floor", GalleryOptions())  # threshold 0.5: the floor
        service.enroll("floor", "close", embeddings=[emb(near(target, 1000, noise=0.1))])
        for i in range(40):
            service.enroll("floor", "crowd", embeddings=[emb(unit(1100 + i))])
        counting.searches = 0
        # 12 faces asked: "close" and 11 of "crowd"'s, the last far below the floor.
        found = service.identify("floor", probe(target), top_k=3)
        assert [c.subject_id for c in found.candidates] == ["close"]
        assert counting.searches == 1
    finally:
        client.close()
