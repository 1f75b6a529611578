"""RegistryService domain logic on the in-memory qdrant store, with
precomputed-embedding probes (and the real embedder for the image paths)."""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from registry_helpers import (
    DIM,
    FINGERPRINT,
    LFW,
    THRESHOLD,
    free_port,
    near,
    open_memory_store,
    two_faces_jpeg,
    unit,
)

from likeness import errors
from likeness.quality import Quality
from likeness.selection import FaceSelection as Selection
from server.domain import (
    DEFAULT_GALLERY,
    EmbeddedFace,
    EmbeddingInput,
    GalleryOptions,
    ImportedFace,
    ModelInfo,
    Probe,
    StoredFace,
)
from server.embedder_client import EmbedderClient
from server.service import RegistryService
from server.store.base import FaceStore

pytest_plugins = ["registry_fixtures"]


def emb(v: np.ndarray, fingerprint: str = FINGERPRINT) -> EmbeddingInput:
    return EmbeddingInput(values=v.tolist(), model_fingerprint=fingerprint)


def probe(v: np.ndarray) -> Probe:
    return Probe(embedding=emb(v))


def enroll_one(svc: RegistryService, subject: str, v: np.ndarray, **kw: object) -> str:
    result = svc.enroll(kw.pop("gallery", ""), subject, embeddings=[emb(v)], **kw)  # type: ignore[arg-type]
    return result.faces[0].face_id


def counts(svc: RegistryService, gallery: str = DEFAULT_GALLERY) -> tuple[int, int]:
    stats = svc.stats(gallery)
    return stats.subjects, stats.faces


# -- happy paths -------------------------------------------------------------


def test_enroll_creates_default_gallery_bound_to_the_embedder_model(
    service: RegistryService,
) -> None:
    assert service.list_galleries() == []
    result = service.enroll("", "alice", embeddings=[emb(unit(1)), emb(unit(2))])
    assert result.subject_id == "alice"
    assert len(result.faces) == 2 and not result.replayed
    assert all(f.quality is None for f in result.faces)
    (gallery,) = service.list_galleries()
    assert (gallery.name, gallery.model_fingerprint, gallery.dim) == ("default", FINGERPRINT, DIM)
    assert gallery.threshold == pytest.approx(THRESHOLD)
    assert counts(service) == (1, 2)
    record = service.get_subject("", "alice")
    assert sorted(f.face_id for f in record.faces) == sorted(f.face_id for f in result.faces)


def test_enroll_renormalises_vectors_within_tolerance(service: RegistryService) -> None:
    v = unit(3) * 1.0005
    enroll_one(service, "bob", v)
    (face,) = service.get_subject("", "bob").faces
    assert float(np.linalg.norm(face.vector)) == pytest.approx(1.0, abs=1e-6)


def test_enroll_with_idempotency_key_never_duplicates(service: RegistryService) -> None:
    first = service.enroll("", "carol", embeddings=[emb(unit(4))], idempotency_key="req-1")
    again = service.enroll("", "carol", embeddings=[emb(unit(4))], idempotency_key="req-1")
    assert not first.replayed and again.replayed
    assert [f.face_id for f in again.faces] == [f.face_id for f in first.faces]
    assert counts(service) == (1, 1)
    other = service.enroll("", "carol", embeddings=[emb(unit(5))], idempotency_key="req-2")
    assert not other.replayed
    assert counts(service) == (1, 2)


def test_idempotency_key_reused_for_another_subject_is_refused(service: RegistryService) -> None:
    service.enroll("", "dave", embeddings=[emb(unit(6))], idempotency_key="k")
    with pytest.raises(errors.FailedPrecondition, match="idempotency_key"):
        service.enroll("", "erin", embeddings=[emb(unit(7))], idempotency_key="k")
    assert counts(service) == (1, 1)


def test_enroll_reports_possible_duplicates_of_other_subjects(service: RegistryService) -> None:
    base = unit(8)
    enroll_one(service, "frank", base)
    enroll_one(service, "frank", near(base, 100))
    result = service.enroll("", "frank-2", embeddings=[emb(near(base, 101))])
    assert [d.subject_id for d in result.possible_duplicates] == ["frank"]
    assert result.possible_duplicates[0].score >= THRESHOLD
    unrelated = service.enroll("", "gina", embeddings=[emb(unit(9))])
    assert unrelated.possible_duplicates == []
    # A new face of the same subject is no duplicate of itself.
    same = service.enroll("", "frank", embeddings=[emb(near(base, 102))])
    assert [d.subject_id for d in same.possible_duplicates] == ["frank-2"]


def test_metadata_is_kept_and_replaced_when_given(service: RegistryService) -> None:
    service.enroll("", "hank", embeddings=[emb(unit(10))], metadata={"team": "a"})
    service.enroll("", "hank", embeddings=[emb(unit(11))])
    assert service.get_subject("", "hank").metadata == {"team": "a"}
    service.enroll("", "hank", embeddings=[emb(unit(12))], metadata={"team": "b", "x": "1"})
    record = service.get_subject("", "hank")
    assert record.metadata == {"team": "b", "x": "1"}
    assert all(f.metadata == {"team": "b", "x": "1"} for f in record.faces)


def test_verify_best_score_over_the_subjects_faces(service: RegistryService) -> None:
    base = unit(20)
    enroll_one(service, "ivy", unit(21))
    best_face = enroll_one(service, "ivy", base)
    result = service.verify("", "ivy", probe(near(base, 200)))
    assert result.match and result.face_id == best_face
    assert result.score == pytest.approx(float(np.dot(base, near(base, 200))), abs=1e-4)
    assert result.threshold == pytest.approx(THRESHOLD)
    assert result.probe_quality is None
    stranger = service.verify("", "ivy", probe(unit(22)))
    assert not stranger.match and stranger.score < THRESHOLD
    with pytest.raises(errors.NotFound, match="nobody"):
        service.verify("", "nobody", probe(base))


def test_identify_aggregates_faces_per_subject_and_is_open_set(service: RegistryService) -> None:
    base = unit(30)
    for i in range(3):
        enroll_one(service, "jack", near(base, 300 + i))
    enroll_one(service, "jill", near(base, 310, noise=0.6))
    for i in range(5):
        enroll_one(service, f"other-{i}", unit(320 + i))
    result = service.identify("", probe(base), top_k=3)
    assert not result.unknown
    assert result.candidates[0].subject_id == "jack"
    assert len({c.subject_id for c in result.candidates}) == len(result.candidates)
    assert all(c.score >= THRESHOLD for c in result.candidates)
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True)

    everyone = service.identify("", probe(base), top_k=0, min_score=-1.0)
    assert len(everyone.candidates) == 5  # top_k 0 means 5

    nobody = service.identify("", probe(unit(399)))
    assert nobody.unknown and nobody.candidates == []
    loose = service.identify("", probe(unit(399)), top_k=100, min_score=-1.0)
    assert loose.unknown and len(loose.candidates) == 7


def test_identify_never_returns_a_deleted_subject(service: RegistryService) -> None:
    base = unit(40)
    enroll_one(service, "kate", base)
    enroll_one(service, "kate", near(base, 400))
    assert service.delete_subject("", "kate") == 2
    result = service.identify("", probe(base), min_score=-1.0)
    assert all(c.subject_id != "kate" for c in result.candidates)
    with pytest.raises(errors.NotFound):
        service.verify("", "kate", probe(base))
    with pytest.raises(errors.NotFound):
        service.delete_subject("", "kate")


def test_delete_face(service: RegistryService) -> None:
    keep = enroll_one(service, "liam", unit(41))
    gone = enroll_one(service, "liam", unit(42))
    assert service.delete_face("", gone) == "liam"
    assert [f.face_id for f in service.get_subject("", "liam").faces] == [keep]
    with pytest.raises(errors.NotFound):
        service.delete_face("", gone)
    with pytest.raises(errors.InvalidArgument, match="face_id"):
        service.delete_face("", "not-a-uuid")


def test_delete_face_waits_for_an_enrolment_of_its_subject(service: RegistryService) -> None:
    face = enroll_one(service, "mia", unit(43))
    lock = service._lock(DEFAULT_GALLERY, "mia")  # what a running Enroll of "mia" holds
    with lock:
        worker = threading.Thread(target=service.delete_face, args=("", face))
        worker.start()
        worker.join(0.3)
        assert worker.is_alive()  # blocked until the enrolment is done
    worker.join(5)
    assert not worker.is_alive()
    with pytest.raises(errors.NotFound):
        service.get_subject("", "mia")


class _DeleteDuringEnrol:
    """A store proxy: another replica deletes ``face_id`` right after an
    enrolment has read the subject's faces."""

    def __init__(self, store: FaceStore, face_id: str) -> None:
        self._store = store
        self._face_id = face_id

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def subject_faces(self, gallery: str, subject_id: str) -> list[StoredFace]:
        faces = self._store.subject_faces(gallery, subject_id)
        if self._face_id:
            self._store.delete_face(gallery, self._face_id)
            self._face_id = ""
        return faces


def test_metadata_update_never_brings_back_a_face_deleted_meanwhile(
    memory_store: FaceStore, info_embedder: str
) -> None:
    client = EmbedderClient(info_embedder, timeout_s=5.0, max_message_bytes=8 << 20)
    plain = RegistryService(memory_store, client)
    keep = enroll_one(plain, "noa", unit(44), metadata={"v": "1"})
    gone = enroll_one(plain, "noa", unit(45))
    racing = RegistryService(_DeleteDuringEnrol(memory_store, gone), client)  # type: ignore[arg-type]
    added = enroll_one(racing, "noa", unit(46), metadata={"v": "2"})
    record = plain.get_subject("", "noa")
    assert sorted(f.face_id for f in record.faces) == sorted([keep, added])
    assert all(f.metadata == {"v": "2"} for f in record.faces)
    np.testing.assert_allclose(record.faces[0].vector, unit(44), atol=1e-6)
    client.close()


def test_partial_replay_writes_only_the_missing_faces(service: RegistryService) -> None:
    vectors = [emb(unit(47)), emb(unit(48))]
    first = service.enroll("", "olga", embeddings=vectors, idempotency_key="k-olga")
    kept, lost = (f.face_id for f in first.faces)
    before = {f.face_id: f.created_at for f in service.get_subject("", "olga").faces}
    service.delete_face("", lost)  # as if the first attempt had stored one face only
    retry = service.enroll("", "olga", embeddings=vectors, idempotency_key="k-olga")
    assert [f.face_id for f in retry.faces] == [kept, lost] and not retry.replayed
    after = {f.face_id: f.created_at for f in service.get_subject("", "olga").faces}
    assert set(after) == {kept, lost}
    assert after[kept] == before[kept]  # the stored face was not written again


def test_reads_of_a_missing_default_gallery_are_not_found_and_create_nothing(
    memory_store: FaceStore,
) -> None:
    # The embedder is down: a read must need neither it nor a write.
    down = EmbedderClient(f"127.0.0.1:{free_port()}", timeout_s=2.0, max_message_bytes=1 << 20)
    svc = RegistryService(memory_store, down)
    face = "6c3e1c1e-0000-4000-8000-000000000002"
    reads: list[Callable[[], object]] = [
        lambda: svc.stats(""),
        lambda: svc.get_subject("", "a"),
        lambda: svc.list_subjects(""),
        lambda: svc.delete_subject("", "a"),
        lambda: svc.delete_face("", face),
        lambda: svc.export_gallery(""),
        lambda: svc.import_gallery("", iter(())),
    ]
    for read in reads:
        with pytest.raises(errors.NotFound, match="gallery 'default' not found"):
            read()
    assert svc.list_galleries() == []
    with pytest.raises(errors.Unavailable) as info:
        svc.enroll("", "a", embeddings=[emb(unit(1))])
    assert str(info.value) == "the embedder is unavailable"  # no address, no grpc text
    down.close()


class _RecordingEmbedder:
    """An EmbedderPort that records the timeout of each call."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    def info(self, timeout_s: float | None = None) -> ModelInfo:
        self.timeouts.append(timeout_s)
        return ModelInfo(FINGERPRINT, DIM, THRESHOLD)

    def embed(
        self, image: bytes, selection: Selection, timeout_s: float | None = None
    ) -> list[EmbeddedFace]:
        self.timeouts.append(timeout_s)
        quality = Quality(100.0, 50.0, 0.0, 0.0, 0.0)
        return [EmbeddedFace(unit(49), FINGERPRINT, quality, (0, 0, 10, 10))]

    def check_health(self) -> None: ...

    def close(self) -> None: ...


def test_the_clients_remaining_deadline_bounds_embedder_calls(memory_store: FaceStore) -> None:
    embedder = _RecordingEmbedder()
    svc = RegistryService(memory_store, embedder)
    svc.enroll("", "pia", images=[b"img"], timeout_s=0.8)
    svc.verify("", "pia", Probe(image=b"img"), timeout_s=0.5)
    svc.compare(Probe(image=b"a"), Probe(image=b"b"), timeout_s=0.5)
    assert len(embedder.timeouts) >= 5
    assert all(t is not None and 0 < t <= 0.8 for t in embedder.timeouts)
    svc.verify("", "pia", Probe(image=b"img"))
    assert embedder.timeouts[-1] is None  # no client deadline: the configured one applies


def test_embedder_client_caps_the_deadline(info_embedder: str) -> None:
    client = EmbedderClient(info_embedder, timeout_s=5.0, max_message_bytes=1 << 20)
    assert client.info(timeout_s=1e9).dim == DIM
    with pytest.raises(errors.DeadlineExceeded):
        client.info(timeout_s=0.0)
    client.close()


def test_compare_stores_nothing_and_uses_the_right_threshold(service: RegistryService) -> None:
    a, b = unit(50), near(unit(50), 500)
    result = service.compare(probe(a), probe(b))
    assert result.score == pytest.approx(float(np.dot(a, b)), abs=1e-5)
    assert result.threshold == pytest.approx(THRESHOLD) and result.match
    assert service.list_galleries() == []
    service.create_gallery("strict", GalleryOptions(threshold=0.999))
    strict = service.compare(probe(a), probe(b), gallery="strict")
    assert strict.threshold == pytest.approx(0.999) and not strict.match
    with pytest.raises(errors.NotFound):
        service.compare(probe(a), probe(b), gallery="missing")
    assert counts(service, "strict") == (0, 0)


def test_list_subjects_pages_in_id_order(service: RegistryService) -> None:
    ids = [f"s{i:02d}" for i in range(7)]
    for i, sid in enumerate(reversed(ids)):
        enroll_one(service, sid, unit(600 + i))
    enroll_one(service, "s03", unit(700))
    seen: list[tuple[str, int]] = []
    token = ""
    pages = 0
    while True:
        page = service.list_subjects("", page_size=3, page_token=token)
        seen.extend(page.subjects)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert [s for s, _ in seen] == ids
    assert dict(seen)["s03"] == 2
    for bad in ("%%%", "bm90LWEtdG9rZW4=", "czE6IGEgYg=="):
        with pytest.raises(errors.InvalidArgument, match="page_token"):
            service.list_subjects("", page_token=bad)
    assert len(service.list_subjects("").subjects) == 7  # 0 means 100


def test_galleries_create_list_delete(service: RegistryService) -> None:
    created = service.create_gallery(
        "door-1", GalleryOptions(threshold=0.7, min_face_size_px=40, max_abs_yaw_deg=30)
    )
    assert (created.threshold, created.min_face_size_px, created.max_abs_yaw_deg) == pytest.approx(
        (0.7, 40.0, 30.0)
    )
    assert created.model_fingerprint == FINGERPRINT
    with pytest.raises(errors.AlreadyExists):
        service.create_gallery("door-1", GalleryOptions())
    enroll_one(service, "mia", unit(60), gallery="door-1")
    enroll_one(service, "noa", unit(61), gallery="door-1")
    assert [g.name for g in service.list_galleries()] == ["door-1"]
    stats = service.stats("door-1")
    assert (stats.subjects, stats.faces) == (2, 2)
    assert stats.store_backend == "qdrant"
    assert service.delete_gallery("door-1") == 2
    assert service.list_galleries() == []
    with pytest.raises(errors.NotFound):
        service.delete_gallery("door-1")
    with pytest.raises(errors.NotFound):
        service.stats("door-1")


def test_fingerprint_mismatch_names_both_fingerprints(service: RegistryService) -> None:
    enroll_one(service, "olga", unit(70))
    with pytest.raises(errors.FailedPrecondition) as info:
        service.enroll("", "olga", embeddings=[emb(unit(71), "other-model@ffff")])
    assert "other-model@ffff" in str(info.value) and FINGERPRINT in str(info.value)
    with pytest.raises(errors.FailedPrecondition):
        service.verify("", "olga", Probe(embedding=emb(unit(70), "other-model@ffff")))
    with pytest.raises(errors.FailedPrecondition):
        service.compare(probe(unit(70)), Probe(embedding=emb(unit(70), "other-model@ffff")))
    assert counts(service) == (1, 1)


def test_export_then_import_into_another_gallery(service: RegistryService) -> None:
    for i in range(5):
        service.enroll("", f"p{i}", embeddings=[emb(unit(80 + i))], metadata={"n": str(i)})
    config, faces_iter = service.export_gallery("")
    exported = list(faces_iter)
    assert config.name == "default" and len(exported) == 5
    service.create_gallery("copy", GalleryOptions())

    def as_import(faces: list) -> Iterator[ImportedFace]:  # type: ignore[type-arg]
        for f in faces:
            yield ImportedFace(
                f.subject_id, f.face_id, emb(f.vector), dict(f.metadata), f.created_at, f.quality
            )

    first = service.import_gallery("copy", as_import(exported))
    assert (first.imported, first.skipped) == (5, 0)
    again = service.import_gallery("copy", as_import(exported))
    assert (again.imported, again.skipped) == (0, 5)
    assert counts(service, "copy") == (5, 5)
    assert service.get_subject("copy", "p3").metadata == {"n": "3"}
    hit = service.verify("copy", "p2", probe(unit(82)))
    assert hit.score == pytest.approx(1.0, abs=1e-5)

    foreign = [
        ImportedFace(
            "q", "6c3e1c1e-0000-4000-8000-000000000001", emb(unit(90), "x@1"), {}, 1.0, None
        )
    ]
    with pytest.raises(errors.FailedPrecondition):
        service.import_gallery("copy", iter(foreign))
    assert counts(service, "copy") == (5, 5)


# -- malformed requests: a clear error and nothing stored ---------------------

BAD_REQUESTS: dict[str, tuple[type[errors.LikenessError], Callable[[RegistryService], object]]] = {
    "empty subject id": (
        errors.InvalidArgument,
        lambda s: s.enroll("", "", embeddings=[emb(unit(1))]),
    ),
    "10 KB subject id": (
        errors.InvalidArgument,
        lambda s: s.enroll("", "x" * 10_240, embeddings=[emb(unit(1))]),
    ),
    "subject id with a space": (
        errors.InvalidArgument,
        lambda s: s.enroll("", "a b", embeddings=[emb(unit(1))]),
    ),
    "subject id with non-ASCII": (
        errors.InvalidArgument,
        lambda s: s.enroll("", "zoë", embeddings=[emb(unit(1))]),
    ),
    "unknown gallery": (
        errors.NotFound,
        lambda s: s.enroll("nope", "a", embeddings=[emb(unit(1))]),
    ),
    "bad gallery name": (
        errors.InvalidArgument,
        lambda s: s.enroll("Bad Name!", "a", embeddings=[emb(unit(1))]),
    ),
    "65-character gallery name": (
        errors.InvalidArgument,
        lambda s: s.create_gallery("g" * 65, GalleryOptions()),
    ),
    "wrong vector dimension": (
        errors.InvalidArgument,
        lambda s: s.enroll("", "a", embeddings=[emb(unit(1, DIM + 1))]),
    ),
    "NaN in a vector": (
        errors.InvalidArgument,
        lambda s: s.enroll("", "a", embeddings=[emb(np.full(DIM, np.nan))]),
    ),
    "infinity in a vector": (
        errors.InvalidArgument,
        lambda s: s.enroll("", "a", embeddings=[emb(np.full(DIM, np.inf))]),
    ),
    "vector not normalised": (
        errors.InvalidArgument,
        lambda s: s.enroll("", "a", embeddings=[emb(unit(1) * 2)]),
    ),
    "second vector bad, first good": (
        errors.InvalidArgument,
        lambda s: s.enroll("", "a", embeddings=[emb(unit(1)), emb(np.zeros(DIM))]),
    ),
    "missing fingerprint": (
        errors.InvalidArgument,
        lambda s: s.enroll("", "a", embeddings=[emb(unit(1), "")]),
    ),
    "no faces at all": (errors.InvalidArgument, lambda s: s.enroll("", "a")),
    "empty image": (errors.InvalidArgument, lambda s: s.enroll("", "a", images=[b""])),
    "33 metadata entries": (
        errors.InvalidArgument,
        lambda s: s.enroll(
            "", "a", embeddings=[emb(unit(1))], metadata={str(i): "v" for i in range(33)}
        ),
    ),
    "metadata value over 1024": (
        errors.InvalidArgument,
        lambda s: s.enroll("", "a", embeddings=[emb(unit(1))], metadata={"k": "v" * 1025}),
    ),
    "metadata key over 64": (
        errors.InvalidArgument,
        lambda s: s.enroll("", "a", embeddings=[emb(unit(1))], metadata={"k" * 65: "v"}),
    ),
    "idempotency key over 128": (
        errors.InvalidArgument,
        lambda s: s.enroll("", "a", embeddings=[emb(unit(1))], idempotency_key="k" * 129),
    ),
    "top_k 1e9": (errors.InvalidArgument, lambda s: s.identify("", probe(unit(1)), top_k=10**9)),
    "top_k negative": (errors.InvalidArgument, lambda s: s.identify("", probe(unit(1)), top_k=-1)),
    "min_score NaN": (
        errors.InvalidArgument,
        lambda s: s.identify("", probe(unit(1)), min_score=float("nan")),
    ),
    "NaN probe": (
        errors.InvalidArgument,
        lambda s: s.identify("", probe(np.full(DIM, np.nan))),
    ),
    "empty probe": (errors.InvalidArgument, lambda s: s.verify("", "a", Probe())),
    "page_size 1001": (errors.InvalidArgument, lambda s: s.list_subjects("", page_size=1001)),
    "threshold 2": (
        errors.InvalidArgument,
        lambda s: s.create_gallery("g", GalleryOptions(threshold=2.0)),
    ),
    "negative quality gate": (
        errors.InvalidArgument,
        lambda s: s.create_gallery("g", GalleryOptions(min_sharpness=-1.0)),
    ),
}


# The field each rejection names first, as the proto's error contract promises.
NAMED_FIELD: dict[str, str] = {
    "empty subject id": "subject_id",
    "10 KB subject id": "subject_id",
    "subject id with a space": "subject_id",
    "subject id with non-ASCII": "subject_id",
    "unknown gallery": "gallery",
    "bad gallery name": "gallery",
    "65-character gallery name": "name",
    "wrong vector dimension": "embeddings[0].values",
    "NaN in a vector": "embeddings[0].values",
    "infinity in a vector": "embeddings[0].values",
    "vector not normalised": "embeddings[0].values",
    "second vector bad, first good": "embeddings[1].values",
    "missing fingerprint": "embeddings[0].model_fingerprint",
    "no faces at all": "images, embeddings",
    "empty image": "images[0]",
    "33 metadata entries": "metadata",
    "metadata value over 1024": "metadata['k']",
    "metadata key over 64": "metadata",
    "idempotency key over 128": "idempotency_key",
    "top_k 1e9": "top_k",
    "top_k negative": "top_k",
    "min_score NaN": "min_score",
    "NaN probe": "probe.values",
    "empty probe": "probe",
    "page_size 1001": "page_size",
    "threshold 2": "threshold",
    "negative quality gate": "min_sharpness",
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_malformed_request_is_rejected_and_stores_nothing(
    service: RegistryService, case: str
) -> None:
    enroll_one(service, "existing", unit(999))
    error, call = BAD_REQUESTS[case]
    with pytest.raises(error) as info:
        call(service)
    assert str(info.value)  # a message naming the problem
    field = NAMED_FIELD[case]
    assert str(info.value).startswith((f"{field}:", f"{field} ")), str(info.value)
    assert [g.name for g in service.list_galleries()] == ["default"]
    assert counts(service) == (1, 1)


def test_rejected_first_request_does_not_create_the_default_gallery(
    service: RegistryService,
) -> None:
    with pytest.raises(errors.InvalidArgument):
        service.enroll("", "a", embeddings=[emb(unit(1, DIM + 1))])
    assert service.list_galleries() == []


# -- images, through the real embedder ----------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (no pixel data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    )


@pytest.fixture
def image_service(real_embedder: str) -> Iterator[RegistryService]:
    store = open_memory_store()
    client = EmbedderClient(real_embedder, timeout_s=30.0, max_message_bytes=8 << 20)
    yield RegistryService(store, client)
    client.close()
    store.close()


def _image(name: str) -> bytes:
    return (LFW / name).read_bytes()


def test_image_enroll_verify_identify(image_service: RegistryService) -> None:
    svc = image_service
    result = svc.enroll("", "emma", images=[_image("Emma_Watson_0001.jpg")])
    (face,) = result.faces
    assert face.quality is not None and face.quality.face_size_px > 0
    same = svc.verify("", "emma", Probe(image=_image("Emma_Watson_0001.jpg")))
    assert same.score == pytest.approx(1.0, abs=1e-3) and same.match
    assert same.probe_quality is not None
    other = svc.verify("", "emma", Probe(image=_image("Albert_Costa_0001.jpg")))
    again = svc.verify("", "emma", Probe(image=_image("Emma_Watson_0002.jpg")))
    assert again.score > other.score
    top = svc.identify("", Probe(image=_image("Emma_Watson_0001.jpg")))
    assert top.candidates[0].subject_id == "emma"


def test_image_errors_keep_their_documented_status(image_service: RegistryService) -> None:
    svc = image_service
    svc.enroll("", "emma", images=[_image("Emma_Watson_0001.jpg")])
    # Over 40 megapixels, rejected from the header: INVALID_ARGUMENT.
    with pytest.raises(errors.InvalidArgument, match=r"images\[0\]"):
        svc.enroll("", "huge", images=[_png_header(8000, 6000)])
    with pytest.raises(errors.InvalidArgument):
        svc.enroll("", "junk", images=[b"not an image at all"])
    with pytest.raises(errors.InvalidArgument):
        svc.verify("", "emma", Probe(image=_png_header(8000, 6000)))
    assert counts(svc) == (1, 1)


def test_quality_gates_reject_at_enrolment(image_service: RegistryService) -> None:
    svc = image_service
    svc.create_gallery("picky", GalleryOptions(min_face_size_px=10_000))
    with pytest.raises(errors.FailedPrecondition, match="face size"):
        svc.enroll("picky", "emma", images=[_image("Emma_Watson_0001.jpg")])
    assert counts(svc, "picky") == (0, 0)


def test_selection_all_enrolls_every_face(image_service: RegistryService) -> None:
    result = image_service.enroll("", "pair", images=[two_faces_jpeg()], selection=Selection.ALL)
    assert len(result.faces) == 2
    assert counts(image_service) == (1, len(result.faces))


def test_embedder_of_another_model_is_refused_on_a_bound_gallery(
    service: RegistryService, memory_store: FaceStore, real_embedder: str
) -> None:
    enroll_one(service, "bound", unit(1))  # "default" is now bound to FINGERPRINT
    client = EmbedderClient(real_embedder, timeout_s=30.0, max_message_bytes=8 << 20)
    try:
        other = RegistryService(memory_store, client)
        with pytest.raises(errors.FailedPrecondition) as info:
            other.enroll("", "emma", images=[_image("Emma_Watson_0001.jpg")])
        assert FINGERPRINT in str(info.value)
        assert client.info().model_fingerprint in str(info.value)
    finally:
        client.close()
    assert counts(service) == (1, 1)
