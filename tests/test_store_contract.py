"""The FaceStore contract, run against both backends (edge in a tmp dir;
qdrant in qdrant-client's local ``:memory:`` mode, and qdrant over gRPC to a
server: tests/qdrant_grpc_shim.py, Qdrant's gRPC protocol over qdrant-client's
local engine, since no Qdrant server can be had here), plus what only one
backend has: edge persistence, locking, crash durability and the background
HNSW build; the qdrant backend's mapping of a dead server to Unavailable."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_grpc_shim import ShimProcess, running_shim

from likeness import errors
from likeness.quality import Quality
from server.domain import GalleryConfig, StoredFace
from server.settings import RegistrySettings
from server.store import FaceStore, open_store
from server.store._edge_optimize import PARENT_GONE
from server.store.edge import EdgeStore
from server.store.qdrant import QdrantStore

DIM = 32
REPO = Path(__file__).resolve().parents[1]


def _config(name: str = "g1", dim: int = DIM, **extra: int) -> GalleryConfig:
    return GalleryConfig(
        name=name,
        model_fingerprint="fp-1",
        dim=dim,
        threshold=0.42,
        created_at=1_700_000_000.5,
        min_face_size_px=40.0,
        min_sharpness=0.1,
        max_abs_yaw_deg=30.0,
        **extra,
    )


def _unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    unit: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


def _faces(vectors: np.ndarray, per_subject: int = 3, gallery: str = "g1") -> list[StoredFace]:
    return [
        StoredFace(
            face_id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"face-{i}")),
            subject_id=f"subj-{i // per_subject:05d}",
            gallery=gallery,
            vector=vec,
            model_fingerprint="fp-1",
            created_at=1_700_000_100.0 + i,
            metadata={"row": str(i)},
            quality=Quality(80.0 + i, 0.5, 1.0, -2.0, 3.0) if i % 2 else None,
        )
        for i, vec in enumerate(vectors)
    ]


def _brute_force(
    vectors: np.ndarray, faces: list[StoredFace], query: np.ndarray, k: int
) -> list[tuple[str, float]]:
    scores = vectors @ (query / np.linalg.norm(query))
    order = np.argsort(-scores, kind="stable")[:k]
    return [(faces[i].face_id, float(scores[i])) for i in order]


def _edge(path: Path, **kwargs: int) -> EdgeStore:
    return EdgeStore(path, **kwargs)


@pytest.fixture(scope="module")
def qdrant_shim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimProcess]:
    """One Qdrant gRPC test double for the module (tests/qdrant_grpc_shim.py)."""
    base = tmp_path_factory.mktemp("qdrant-shim")
    with running_shim(_unused_port(), base / "data", base / "shim.log") as shim:
        yield shim
        assert shim.stop() == 0, "the shim exits cleanly on SIGTERM"
    # Every call the backend made is implemented and none failed inside the
    # engine (either would have logged a traceback).
    assert "Traceback" not in shim.log_path.read_text()


@pytest.fixture(params=["edge", "qdrant", "qdrant-grpc"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FaceStore]:
    s: FaceStore
    if request.param == "edge":
        s = _edge(tmp_path / "edge")
    elif request.param == "qdrant":
        s = QdrantStore(location=":memory:")
    else:
        # The remote gRPC code path; a prefix of its own keeps each test's
        # galleries apart on the shared shim.
        shim: ShimProcess = request.getfixturevalue("qdrant_shim")
        s = QdrantStore(shim.url, prefer_grpc=True, timeout_s=5, prefix=f"t{uuid.uuid4().hex}_")
    yield s
    s.close()


@pytest.fixture
def filled(store: FaceStore) -> tuple[FaceStore, np.ndarray, list[StoredFace]]:
    vectors = _unit(np.random.default_rng(7), 300)
    faces = _faces(vectors)
    store.create_gallery(_config())
    store.upsert_faces("g1", faces)
    return store, vectors, faces


# -- galleries -----------------------------------------------------------------


def test_gallery_lifecycle(store: FaceStore) -> None:
    config = _config(shard_number=2, replication_factor=1, write_consistency_factor=1)
    store.create_gallery(config)
    store.create_gallery(_config("other-gallery_2", dim=8))

    assert store.get_gallery("g1") == config
    assert [g.name for g in store.list_galleries()] == ["g1", "other-gallery_2"]
    with pytest.raises(errors.AlreadyExists):
        store.create_gallery(_config())
    assert store.counts("g1") == (0, 0)

    store.upsert_faces("g1", _faces(_unit(np.random.default_rng(1), 4)))
    assert store.delete_gallery("g1") == 4
    with pytest.raises(errors.NotFound):
        store.get_gallery("g1")
    with pytest.raises(errors.NotFound):
        store.delete_gallery("g1")
    assert [g.name for g in store.list_galleries()] == ["other-gallery_2"]

    store.create_gallery(_config())
    assert store.counts("g1") == (0, 0), "a re-created gallery starts empty"


def test_a_gallery_deleted_by_a_name_from_a_request_is_gone_and_only_it(store: FaceStore) -> None:
    for name in ("a-before", "g1", "z-after"):
        store.create_gallery(_config(name))
    # A request's name is a new string object, not the literal that made it.
    assert store.delete_gallery("".join(["g", "1"])) == 0
    assert [g.name for g in store.list_galleries()] == ["a-before", "z-after"]
    with pytest.raises(errors.NotFound):
        store.get_gallery("g1")


def test_counts_and_subject_pages_follow_every_write(store: FaceStore) -> None:
    store.create_gallery(_config())
    faces = _faces(_unit(np.random.default_rng(3), 4), per_subject=2)
    assert store.counts("g1") == (0, 0)
    store.upsert_faces("g1", faces[:3])
    assert store.counts("g1") == (2, 3)
    assert store.list_subjects("g1", None, 10) == [("subj-00000", 2), ("subj-00001", 1)]
    store.upsert_faces("g1", faces[3:])
    assert store.counts("g1") == (2, 4)
    store.delete_face("g1", faces[0].face_id)
    assert store.list_subjects("g1", None, 10) == [("subj-00000", 1), ("subj-00001", 2)]
    store.delete_subject("g1", "subj-00001")
    assert store.counts("g1") == (1, 1)


@pytest.mark.parametrize("name", ["", "UPPER", "../escape", "a/b", "x" * 65, "sp ace"])
def test_gallery_names_are_checked(store: FaceStore, name: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        store.create_gallery(_config(name))
    with pytest.raises(errors.InvalidArgument):
        store.get_gallery(name)


def test_unknown_gallery_is_not_found(store: FaceStore) -> None:
    vec = _unit(np.random.default_rng(2), 1)[0]
    face_id = str(uuid.uuid4())
    calls: list[Callable[[], object]] = [
        lambda: store.get_gallery("nope"),
        lambda: store.delete_gallery("nope"),
        lambda: store.upsert_faces("nope", _faces(vec[None, :], gallery="nope")),
        lambda: store.existing_face_ids("nope", [face_id]),
        lambda: store.search("nope", vec, 3),
        lambda: store.subject_faces("nope", "s"),
        lambda: store.delete_subject("nope", "s"),
        lambda: store.delete_face("nope", face_id),
        lambda: store.list_subjects("nope", None, 10),
        lambda: store.counts("nope"),
        lambda: store.iter_faces("nope"),
    ]
    for call in calls:
        with pytest.raises(errors.NotFound):
            call()


# -- writes --------------------------------------------------------------------


def test_upsert_is_idempotent_by_face_id(store: FaceStore) -> None:
    store.create_gallery(_config())
    [face] = _faces(_unit(np.random.default_rng(3), 1))
    store.upsert_faces("g1", [face])
    store.upsert_faces("g1", [face])
    assert store.counts("g1") == (1, 1)

    moved = StoredFace(face.face_id, "someone-else", "g1", face.vector, "fp-1", 5.0, {"new": "yes"})
    store.upsert_faces("g1", [moved])
    assert store.counts("g1") == (1, 1)
    assert store.subject_faces("g1", face.subject_id) == []
    [stored] = store.subject_faces("g1", "someone-else")
    assert stored.metadata == {"new": "yes"} and stored.created_at == 5.0


def test_bad_faces_are_rejected_and_nothing_is_written(store: FaceStore) -> None:
    store.create_gallery(_config())
    good = _faces(_unit(np.random.default_rng(4), 2))
    bad_vectors = [
        np.zeros(DIM, np.float32),
        np.full(DIM, np.nan, np.float32),
        np.ones((2, DIM), np.float32),
    ]
    for vector in bad_vectors:
        bad = StoredFace(str(uuid.uuid4()), "s", "g1", vector, "fp-1", 0.0)
        with pytest.raises(errors.InvalidArgument):
            store.upsert_faces("g1", [good[0], bad])
    not_uuid = StoredFace("face-1", "s", "g1", good[1].vector, "fp-1", 0.0)
    with pytest.raises(errors.InvalidArgument):
        store.upsert_faces("g1", [good[0], not_uuid])
    assert store.counts("g1") == (0, 0)
    with pytest.raises(errors.InvalidArgument):
        store.search("g1", np.zeros(DIM, np.float32), 3)
    with pytest.raises(errors.InvalidArgument):
        store.search("g1", good[0].vector, 0)


def test_wrong_dim_is_invalid_argument(store: FaceStore) -> None:
    store.create_gallery(_config())
    [face] = _faces(_unit(np.random.default_rng(5), 1, dim=DIM + 1))
    with pytest.raises(errors.InvalidArgument):
        store.upsert_faces("g1", [face])
    with pytest.raises(errors.InvalidArgument) as info:
        store.search("g1", face.vector, 3)
    assert "not aligned" not in str(info.value)  # the engine's own text stays in the log
    assert store.counts("g1") == (0, 0)


def test_existing_face_ids(filled: tuple[FaceStore, np.ndarray, list[StoredFace]]) -> None:
    store, _, faces = filled
    absent = str(uuid.uuid4())
    asked = [faces[0].face_id, absent, "not-a-uuid", faces[5].face_id]
    assert store.existing_face_ids("g1", asked) == {faces[0].face_id, faces[5].face_id}
    assert store.existing_face_ids("g1", []) == set()


# -- reads ---------------------------------------------------------------------


def test_search_matches_brute_force(
    filled: tuple[FaceStore, np.ndarray, list[StoredFace]],
) -> None:
    store, vectors, faces = filled
    queries = _unit(np.random.default_rng(8), 15)
    for query in queries:
        hits = store.search("g1", query * 3.0, 10)  # not unit length on purpose
        expected = _brute_force(vectors, faces, query, 10)
        assert [h.face_id for h in hits] == [fid for fid, _ in expected]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-4)
        assert all(-1.0 <= h.score <= 1.0 for h in hits)
    by_id = {f.face_id: f for f in faces}
    top = store.search("g1", vectors[42], 1)[0]
    assert top.face_id == faces[42].face_id and top.score == pytest.approx(1.0, abs=1e-5)
    assert top.subject_id == faces[42].subject_id
    assert top.metadata == by_id[top.face_id].metadata


def test_subject_filter(filled: tuple[FaceStore, np.ndarray, list[StoredFace]]) -> None:
    store, vectors, faces = filled
    subject = faces[30].subject_id
    own = [i for i, f in enumerate(faces) if f.subject_id == subject]
    query = _unit(np.random.default_rng(9), 1)[0]
    hits = store.search("g1", query, 10, subject_id=subject)
    expected = _brute_force(vectors[own], [faces[i] for i in own], query, 10)
    assert [h.face_id for h in hits] == [fid for fid, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-4)
    assert {h.subject_id for h in hits} == {subject}
    # The same two hits, scores equal to float32 precision: qdrant-client
    # 1.20's local engine (both qdrant parametrisations) renormalises its
    # stored vectors in place on every search (local/distances.py,
    # cosine_similarity), so a score can move by an ulp after the first one.
    again = store.search("g1", query, 2, subject_id=subject)
    assert [(h.face_id, h.subject_id, h.metadata) for h in again] == [
        (h.face_id, h.subject_id, h.metadata) for h in hits[:2]
    ]
    np.testing.assert_allclose([h.score for h in again], [h.score for h in hits[:2]], atol=1e-6)
    assert store.search("g1", query, 5, subject_id="nobody") == []


def test_deleted_faces_are_never_returned(
    filled: tuple[FaceStore, np.ndarray, list[StoredFace]],
) -> None:
    store, vectors, faces = filled
    subject = faces[9].subject_id
    gone = {f.face_id for f in faces if f.subject_id == subject}
    assert store.delete_subject("g1", subject) == 3
    assert store.delete_subject("g1", subject) == 0
    assert store.subject_faces("g1", subject) == []

    assert store.delete_face("g1", faces[100].face_id) == faces[100].subject_id
    gone.add(faces[100].face_id)
    with pytest.raises(errors.NotFound):
        store.delete_face("g1", faces[100].face_id)
    with pytest.raises(errors.NotFound):
        store.delete_face("g1", "not-a-uuid")

    for i in (9, 10, 11, 100):
        hits = store.search("g1", vectors[i], len(faces))
        assert len(hits) == len(faces) - 4
        assert gone.isdisjoint(h.face_id for h in hits)
        assert store.search("g1", vectors[i], 1)[0].score < 0.999
    assert store.existing_face_ids("g1", sorted(gone)) == set()
    assert gone.isdisjoint(f.face_id for f in store.iter_faces("g1"))
    assert store.counts("g1") == (99, 296)


def test_list_subjects_pages_in_order(
    filled: tuple[FaceStore, np.ndarray, list[StoredFace]],
) -> None:
    store, _, faces = filled
    store.upsert_faces("g1", _faces(_unit(np.random.default_rng(10), 2), per_subject=1))
    expected: dict[str, int] = {}
    for f in faces:
        expected[f.subject_id] = expected.get(f.subject_id, 0) + 1
    # The two extra faces overwrote face-0 and face-1, moving face-1 to subj-00001.
    expected["subj-00000"] = 2
    expected["subj-00001"] = 4
    rows: list[tuple[str, int]] = []
    after = None
    while True:
        page = store.list_subjects("g1", after, 7)
        assert len(page) <= 7
        rows.extend(page)
        if len(page) < 7:
            break
        after = page[-1][0]
    assert rows == sorted(expected.items())
    assert store.list_subjects("g1", "subj-00050", 2) == [("subj-00051", 3), ("subj-00052", 3)]
    assert store.list_subjects("g1", "subj-0004", 1) == [("subj-00040", 3)]
    assert store.list_subjects("g1", "zzz", 5) == []
    assert store.counts("g1") == (100, 300)


def test_iter_faces_round_trip(filled: tuple[FaceStore, np.ndarray, list[StoredFace]]) -> None:
    store, _, faces = filled
    exported = {f.face_id: f for f in store.iter_faces("g1")}
    assert set(exported) == {f.face_id for f in faces}
    for face in faces:
        got = exported[face.face_id]
        np.testing.assert_allclose(got.vector, face.vector, atol=1e-6)
        assert got.vector.dtype == np.float32 and got.vector.shape == (DIM,)
        assert (got.subject_id, got.gallery, got.model_fingerprint) == (
            face.subject_id,
            "g1",
            "fp-1",
        )
        assert got.created_at == face.created_at
        assert got.metadata == face.metadata and got.quality == face.quality
    subject = store.subject_faces("g1", faces[4].subject_id)
    assert sorted(f.face_id for f in subject) == sorted(f.face_id for f in faces[3:6])


def test_closed_store_is_unavailable(store: FaceStore) -> None:
    store.create_gallery(_config())
    store.close()
    with pytest.raises(errors.Unavailable):
        store.check_health()
    with pytest.raises(errors.Unavailable):
        store.counts("g1")


# -- both backends agree -------------------------------------------------------


def test_backends_agree(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    vectors = _unit(rng, 500)
    faces = _faces(vectors, per_subject=5)
    edge = _edge(tmp_path / "edge")
    server = QdrantStore(location=":memory:")
    try:
        for s in (edge, server):
            s.create_gallery(_config())
            s.upsert_faces("g1", faces)
        for query in _unit(rng, 20):
            a = edge.search("g1", query, 20)
            b = server.search("g1", query, 20)
            assert [h.face_id for h in a] == [h.face_id for h in b]
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-4)
            sa = edge.search("g1", query, 3, subject_id="subj-00042")
            sb = server.search("g1", query, 3, subject_id="subj-00042")
            assert [h.face_id for h in sa] == [h.face_id for h in sb]
        assert edge.list_subjects("g1", None, 1000) == server.list_subjects("g1", None, 1000)
        assert edge.counts("g1") == server.counts("g1") == (100, 500)
    finally:
        edge.close()
        server.close()


# -- edge only -----------------------------------------------------------------


def test_set_subject_metadata_rewrites_payload_only(
    filled: tuple[FaceStore, np.ndarray, list[StoredFace]],
) -> None:
    store, vectors, faces = filled
    store.delete_face("g1", faces[0].face_id)  # subj-00000 keeps faces 1 and 2
    store.set_subject_metadata("g1", "subj-00000", {"team": "b"})
    after = {f.face_id: f for f in store.subject_faces("g1", "subj-00000")}
    assert set(after) == {faces[1].face_id, faces[2].face_id}  # the deleted one stays gone
    assert all(f.metadata == {"team": "b"} for f in after.values())  # "row" is replaced
    for i in (1, 2):
        np.testing.assert_allclose(after[faces[i].face_id].vector, vectors[i], atol=1e-6)
        assert after[faces[i].face_id].created_at == faces[i].created_at
    assert store.subject_faces("g1", "subj-00001")[0].metadata != {"team": "b"}
    store.set_subject_metadata("g1", "nobody", {"team": "c"})  # no-op, no error
    assert store.counts("g1") == (100, 299)
    with pytest.raises(errors.NotFound):
        store.set_subject_metadata("nope", "subj-00000", {})


def test_face_subject(filled: tuple[FaceStore, np.ndarray, list[StoredFace]]) -> None:
    store, _, faces = filled
    assert store.face_subject("g1", faces[4].face_id) == "subj-00001"
    assert store.face_subject("g1", faces[4].face_id.upper()) == "subj-00001"
    assert store.face_subject("g1", str(uuid.uuid4())) is None
    assert store.face_subject("g1", "not-a-uuid") is None
    with pytest.raises(errors.NotFound):
        store.face_subject("nope", faces[4].face_id)


def test_qdrant_delete_subject_takes_faces_written_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another replica enrols a face of the subject between the count and the
    # delete: deleting by filter (not by a list of ids read before) takes it.
    store = QdrantStore(location=":memory:")
    try:
        store.create_gallery(_config())
        faces = _faces(_unit(np.random.default_rng(3), 4), per_subject=4)
        store.upsert_faces("g1", faces[:3])
        client = store._engine._client
        real_delete = client.delete

        def delete_after_a_concurrent_enrol(*args: object, **kwargs: object) -> object:
            store._engine._serial.__exit__(None, None, None)  # let the "other replica" write
            try:
                store.upsert_faces("g1", faces[3:])
            finally:
                store._engine._serial.__enter__()
            return real_delete(*args, **kwargs)  # type: ignore[arg-type]

        with monkeypatch.context() as patch:
            patch.setattr(client, "delete", delete_after_a_concurrent_enrol)
            assert store.delete_subject("g1", "subj-00000") == 3
        assert store.subject_faces("g1", "subj-00000") == []
    finally:
        store.close()


def test_edge_corrupt_gallery_config_names_the_gallery(tmp_path: Path) -> None:
    store = _edge(tmp_path)
    store.create_gallery(_config())
    store.close()
    config_file = tmp_path / "galleries" / "g1" / "config.json"
    good = config_file.read_text()
    config_file.write_text("{not json")
    with pytest.raises(errors.FailedPrecondition, match="'g1' is corrupt"):
        _edge(tmp_path)
    config_file.write_text(good)
    _edge(tmp_path).close()  # the failed open released the directory's lock


class _DiskFullShards:
    """qdrant_edge with EdgeShard.create failing as on a full disk."""

    class EdgeShard:
        @staticmethod
        def create(path: str, config: object) -> object:
            raise OSError(errno.ENOSPC, "No space left on device")

    def __init__(self, qe: object) -> None:
        self._qe = qe

    def __getattr__(self, name: str) -> object:
        return getattr(self._qe, name)


def test_edge_a_failed_gallery_creation_reports_its_cause_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _edge(tmp_path)
    try:
        engine = store._engine
        monkeypatch.setattr(engine, "_qe", _DiskFullShards(engine._qe))
        with pytest.raises(OSError) as info:
            store.create_gallery(_config())
        assert info.value.errno == errno.ENOSPC
        monkeypatch.undo()
        assert store.list_galleries() == []
        assert not (tmp_path / "galleries" / "g1").exists()
        store.create_gallery(_config())
        store.upsert_faces("g1", _faces(_unit(np.random.default_rng(4), 2)))
        assert store.counts("g1") == (1, 2)
    finally:
        store.close()


def test_edge_persists_across_reopen(tmp_path: Path) -> None:
    vectors = _unit(np.random.default_rng(12), 50)
    faces = _faces(vectors)
    store = _edge(tmp_path)
    store.create_gallery(_config())
    store.upsert_faces("g1", faces)
    store.delete_face("g1", faces[0].face_id)
    store.close()

    reopened = _edge(tmp_path)
    try:
        assert reopened.get_gallery("g1") == _config()
        assert reopened.counts("g1") == (17, 49)
        assert reopened.search("g1", vectors[3], 1)[0].face_id == faces[3].face_id
        assert reopened.existing_face_ids("g1", [faces[0].face_id]) == set()
    finally:
        reopened.close()


def test_edge_path_is_locked_to_one_store(tmp_path: Path) -> None:
    first = _edge(tmp_path)
    try:
        with pytest.raises(errors.Unavailable, match="in use"):
            _edge(tmp_path)
    finally:
        first.close()
    _edge(tmp_path).close()  # released on close


def test_edge_upsert_survives_kill_9(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import time, uuid, numpy as np
        from pathlib import Path
        from server.domain import GalleryConfig, StoredFace
        from server.store.edge import EdgeStore
        store = EdgeStore(Path({str(tmp_path)!r}))
        store.create_gallery(GalleryConfig("g1", "fp-1", {DIM}, 0.4, 0.0))
        vectors = np.random.default_rng(13).normal(size=(20, {DIM})).astype(np.float32)
        store.upsert_faces("g1", [
            StoredFace(str(uuid.uuid4()), f"s{{i // 3}}", "g1", v, "fp-1", 0.0)
            for i, v in enumerate(vectors)
        ])
        print("acknowledged", flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, cwd=REPO
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"acknowledged"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    store = _edge(tmp_path)
    try:
        assert store.counts("g1") == (7, 20)
    finally:
        store.close()


def test_edge_background_hnsw_build(tmp_path: Path) -> None:
    rng = np.random.default_rng(14)
    vectors = _unit(rng, 900)
    faces = _faces(vectors)
    store = _edge(tmp_path, hnsw_min_faces=200)
    try:
        store.create_gallery(_config())
        store.upsert_faces("g1", faces[:600])
        assert store.index_info("g1").building
        # Writes while the build runs must be replayed onto the new index.
        store.upsert_faces("g1", faces[600:])
        store.delete_subject("g1", faces[0].subject_id)
        for query in _unit(rng, 5):  # searches keep working meanwhile
            expected = _brute_force(vectors[3:], faces[3:], query, 5)
            assert [h.face_id for h in store.search("g1", query, 5)] == [f for f, _ in expected]
        assert store.wait_for_builds(60)
        info = store.index_info("g1")
        assert info.faces == 897 and info.indexed >= 600 and not info.building

        queries = _unit(rng, 30)
        found = 0
        for query in queries:
            hits = store.search("g1", query, 10)
            exact = dict(_brute_force(vectors[3:], faces[3:], query, 10))
            found += len(exact.keys() & {h.face_id for h in hits})
            for h in hits:
                if h.face_id in exact:
                    assert h.score == pytest.approx(exact[h.face_id], abs=1e-4)
        assert found / (10 * len(queries)) >= 0.97
        assert store.counts("g1") == (299, 897)
    finally:
        store.close()
    reopened = _edge(tmp_path, hnsw_min_faces=200)
    try:
        assert reopened.index_info("g1").indexed >= 600
        assert reopened.counts("g1") == (299, 897)
        assert [p.name for p in (tmp_path / "galleries" / "g1").glob("shard-*")] != []
        assert len(list((tmp_path / "galleries" / "g1").glob("shard-*"))) == 1
    finally:
        reopened.close()


def test_edge_build_waits_for_a_held_build_lock(tmp_path: Path) -> None:
    faces = _faces(_unit(np.random.default_rng(15), 400))
    gallery_dir = tmp_path / "galleries" / "g1"
    store = _edge(tmp_path)
    store.create_gallery(_config())
    store.close()
    # An orphaned build child of an earlier registry: it holds the gallery's
    # build lock and writes its copy into a spare shard directory.
    holder = os.open(gallery_dir / "build.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    orphan_file = gallery_dir / "shard-1" / "segments" / "half-written"
    orphan_file.parent.mkdir(parents=True)
    orphan_file.write_bytes(b"orphan")
    try:
        store = _edge(tmp_path, hnsw_min_faces=200)
        try:
            assert orphan_file.read_bytes() == b"orphan", "opening left the orphan's folder"
            store.upsert_faces("g1", faces)
            assert not store.wait_for_builds(1.0), "the build waits for the lock"
            info = store.index_info("g1")
            assert (info.faces, info.indexed, info.building) == (400, 0, True)
            assert orphan_file.read_bytes() == b"orphan", "the build left the orphan's folder"
            assert store.search("g1", faces[7].vector, 1)[0].face_id == faces[7].face_id
        finally:
            os.close(holder)  # the orphan ends
            holder = -1
        assert store.wait_for_builds(60)
        info = store.index_info("g1")
        assert (info.faces, info.indexed, info.building) == (400, 400, False)
        assert [p.name for p in gallery_dir.glob("shard-*")] == ["shard-1"]
        assert not orphan_file.exists()
        assert store.search("g1", faces[7].vector, 1)[0].face_id == faces[7].face_id
    finally:
        if holder >= 0:
            os.close(holder)
        store.close()


def test_edge_build_child_exits_when_its_parent_is_already_gone(tmp_path: Path) -> None:
    # A --parent-pid other than its actual parent is what the child sees
    # when the registry died before the child could ask for the death signal.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.store._edge_optimize",
            str(tmp_path / "no-shard"),
            "--parent-pid",
            str(os.getppid()),
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == PARENT_GONE, result.stderr.decode(errors="replace")


# -- qdrant only ---------------------------------------------------------------


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("prefer_grpc", [True, False])
def test_dead_qdrant_server_is_unavailable(prefer_grpc: bool) -> None:
    store = QdrantStore(f"http://127.0.0.1:{_unused_port()}", prefer_grpc=prefer_grpc, timeout_s=2)
    started = time.monotonic()
    with pytest.raises(errors.Unavailable) as info:
        store.check_health()
    assert str(info.value) == "the store is unavailable"  # no address, no client text
    with pytest.raises(errors.Unavailable) as info:
        store.search("g1", np.ones(DIM, np.float32), 3)
    assert str(info.value) == "the store is unavailable"
    with pytest.raises(errors.Unavailable):
        store.create_gallery(_config())
    assert time.monotonic() - started < 5
    store.close()


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    edge = open_store(RegistrySettings(store="edge", data_dir=tmp_path, hnsw_min_faces=0))
    try:
        assert edge.backend == "edge" and (tmp_path / "qdrant" / "LOCK").exists()
        edge.check_health()
    finally:
        edge.close()
    server = open_store(
        RegistrySettings(store="qdrant", qdrant_url=f"http://127.0.0.1:{_unused_port()}")
    )
    assert server.backend == "qdrant"
    with pytest.raises(errors.Unavailable):
        server.check_health()
    server.close()
