"""Protobuf messages <-> the client's dataclasses (likeness._client_types)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from likeness import operating_points
from likeness._client_errors import LikenessRpcError, error_for
from likeness._client_types import (
    ApiKey,
    BoundingBox,
    Candidate,
    CompareResult,
    DuplicateCandidate,
    Embedding,
    EmbedResult,
    EnrolledFace,
    EnrollResult,
    ExportedFace,
    Face,
    FaceRecord,
    Gallery,
    GalleryStats,
    IdentifiedFace,
    IdentifyResult,
    ModelInfo,
    Point,
    Subject,
    SubjectPage,
    SubjectSummary,
    VerifyResult,
)
from likeness.duplicates import DuplicatePage, DuplicatePair
from likeness.operating_points import OperatingPoint
from likeness.quality import Quality, quality_from_pb, quality_to_pb
from likeness.reasons import ErrorInfo
from likeness.selection import FaceSelection
from likeness.selection import to_pb as selection_pb
from likeness.v1 import common_pb2, registry_pb2

Probe = bytes | Embedding

_ENROLL_KEY_PREFIX = "client-"


def quality(msg: Any, field: str) -> Quality | None:
    """The Quality in ``msg.<field>``, None when unset."""
    if not msg.HasField(field):
        return None
    return quality_from_pb(getattr(msg, field))


def embedding(msg: Any) -> Embedding:
    return Embedding(tuple(msg.values), msg.model_fingerprint)


def embedding_pb(value: Embedding) -> Any:
    return common_pb2.Embedding(
        values=list(value.values), model_fingerprint=value.model_fingerprint
    )


def probe_pb(probe: Probe) -> Any:
    """A Probe message from image bytes or an embedding."""
    if isinstance(probe, bytes | bytearray | memoryview):
        return common_pb2.Probe(image=bytes(probe))
    if isinstance(probe, Embedding):
        return common_pb2.Probe(embedding=embedding_pb(probe))
    raise TypeError(f"a probe is image bytes or an Embedding, not {type(probe).__name__}")


def embed_result(msg: Any) -> EmbedResult:
    faces = tuple(
        Face(
            box=BoundingBox(f.box.left, f.box.top, f.box.right, f.box.bottom),
            landmarks=tuple(Point(p.x, p.y) for p in f.landmarks),
            detection_score=f.detection_score,
            quality=quality(f, "quality"),
            embedding=embedding(f.embedding),
            detector=f.detector,
        )
        for f in msg.faces
    )
    return EmbedResult(faces, msg.image_width, msg.image_height, msg.detection_steps)


def model_info(msg: Any) -> ModelInfo:
    return ModelInfo(
        backend=msg.backend,
        model_id=msg.model_id,
        model_fingerprint=msg.model_fingerprint,
        dim=msg.dim,
        default_threshold=msg.default_threshold,
        input_size=msg.input_size,
        detections_by_step=dict(msg.detections_by_step),
        operating_points=tuple(operating_points.from_proto(p) for p in msg.operating_points),
        default_operating_point=msg.default_operating_point,
    )


def point(msg: Any) -> OperatingPoint | None:
    """The ``operating_point`` field of ``msg``; None when unset (an older server)."""
    if not msg.HasField("operating_point"):
        return None
    return operating_points.from_proto(msg.operating_point)


def enroll_result(msg: Any) -> EnrollResult:
    return EnrollResult(
        subject_id=msg.subject_id,
        faces=tuple(EnrolledFace(f.face_id, quality(f, "quality")) for f in msg.faces),
        possible_duplicates=tuple(
            DuplicateCandidate(d.subject_id, d.score) for d in msg.possible_duplicates
        ),
        replayed=msg.replayed,
    )


def verify_result(msg: Any) -> VerifyResult:
    return VerifyResult(
        score=msg.score,
        threshold=msg.threshold,
        match=msg.match,
        face_id=msg.face_id,
        probe_quality=quality(msg, "probe_quality"),
        operating_point=point(msg),
    )


def identify_result(msg: Any) -> IdentifyResult:
    return IdentifyResult(
        candidates=tuple(
            Candidate(c.subject_id, c.score, c.face_id, dict(c.metadata)) for c in msg.candidates
        ),
        unknown=msg.unknown,
        threshold=msg.threshold,
        probe_quality=quality(msg, "probe_quality"),
        faces=tuple(
            IdentifiedFace(
                box=BoundingBox(f.box.left, f.box.top, f.box.right, f.box.bottom),
                quality=quality(f, "quality"),
                candidates=tuple(
                    Candidate(c.subject_id, c.score, c.face_id, dict(c.metadata))
                    for c in f.candidates
                ),
                unknown=f.unknown,
            )
            for f in msg.faces
        ),
        operating_point=point(msg),
    )


def compare_result(msg: Any) -> CompareResult:
    return CompareResult(
        score=msg.score,
        threshold=msg.threshold,
        match=msg.match,
        quality_a=quality(msg, "quality_a"),
        quality_b=quality(msg, "quality_b"),
        operating_point=point(msg),
    )


def subject(msg: Any) -> Subject:
    return Subject(
        gallery=msg.gallery,
        subject_id=msg.subject_id,
        faces=tuple(
            FaceRecord(f.face_id, f.model_fingerprint, f.created_at, quality(f, "quality"))
            for f in msg.faces
        ),
        metadata=dict(msg.metadata),
    )


def subject_page(msg: Any) -> SubjectPage:
    return SubjectPage(
        subjects=tuple(SubjectSummary(s.subject_id, s.face_count) for s in msg.subjects),
        next_page_token=msg.next_page_token,
    )


def gallery(msg: Any) -> Gallery:
    return Gallery(
        name=msg.name,
        model_fingerprint=msg.model_fingerprint,
        dim=msg.dim,
        threshold=msg.threshold,
        min_face_size_px=msg.min_face_size_px,
        min_sharpness=msg.min_sharpness,
        max_abs_yaw_deg=msg.max_abs_yaw_deg,
        created_at=msg.created_at,
        gate_probes=msg.gate_probes,
        operating_point=point(msg),
    )


def gallery_stats(msg: Any) -> GalleryStats:
    return GalleryStats(
        gallery(msg.gallery),
        msg.subjects,
        msg.faces,
        msg.store_backend,
        msg.duplicate_pairs if msg.HasField("duplicate_pairs") else None,
    )


def duplicate_page(msg: Any) -> DuplicatePage:
    return DuplicatePage(
        tuple(
            DuplicatePair(p.subject_a, p.subject_b, p.score, p.face_a, p.face_b) for p in msg.pairs
        ),
        msg.next_page_token,
        msg.total_pairs,
        msg.min_score,
    )


def exported_face(msg: Any) -> ExportedFace:
    return ExportedFace(
        subject_id=msg.subject_id,
        face_id=msg.face_id,
        embedding=embedding(msg.embedding),
        metadata=dict(msg.metadata),
        created_at=msg.created_at,
        quality=quality(msg, "quality"),
    )


def exported_face_pb(value: ExportedFace) -> Any:
    return registry_pb2.ExportedFace(
        subject_id=value.subject_id,
        face_id=value.face_id,
        embedding=embedding_pb(value.embedding),
        metadata=dict(value.metadata),
        created_at=value.created_at,
        quality=quality_to_pb(value.quality),
    )


def api_key(msg: Any) -> ApiKey:
    return ApiKey(msg.key_id, msg.name, dict(msg.scopes), msg.created_at, msg.revoked)


# -- Requests built the same way by the sync and the async client -----------


def enroll_request(
    gallery: str,
    subject_id: str,
    images: Sequence[bytes],
    embeddings: Sequence[Embedding],
    metadata: Mapping[str, str] | None,
    idempotency_key: str | None,
    selection: FaceSelection,
) -> Any:
    """An EnrollRequest; a random idempotency key when none is given, so
    that the call's own retries are safe."""
    return registry_pb2.EnrollRequest(
        gallery=gallery,
        subject_id=subject_id,
        images=list(images),
        embeddings=[embedding_pb(e) for e in embeddings],
        metadata=dict(metadata or {}),
        idempotency_key=idempotency_key or _ENROLL_KEY_PREFIX + uuid.uuid4().hex,
        selection=selection_pb(selection),
    )


def identify_request(
    gallery: str,
    probe: Probe,
    top_k: int,
    min_score: float | None,
    selection: FaceSelection = FaceSelection.DEFAULT,
) -> Any:
    request = registry_pb2.IdentifyRequest(
        gallery=gallery, probe=probe_pb(probe), top_k=top_k, selection=selection_pb(selection)
    )
    if min_score is not None:
        request.min_score = min_score
    return request


def create_gallery_request(
    name: str,
    optional: Mapping[str, float | None],
    sharding: Mapping[str, int],
    gate_probes: bool = False,
    operating_point: str = "",
) -> Any:
    """A CreateGalleryRequest; ``optional`` fields left None stay unset."""
    request = registry_pb2.CreateGalleryRequest(
        name=name, gate_probes=gate_probes, operating_point=operating_point
    )
    for key, number in sharding.items():
        setattr(request, key, number)
    for field, value in optional.items():
        if value is not None:
            setattr(request, field, value)
    return request


def embed_batch_results(msg: Any, target: str) -> list[EmbedResult | LikenessRpcError]:
    """Each item of an EmbedBatchResponse: its result or its typed error."""
    out: list[EmbedResult | LikenessRpcError] = []
    for item in msg.results:
        if item.HasField("error"):
            out.append(
                error_for(
                    _status_code(item.error.code),
                    item.error.message,
                    method="/likeness.v1.Embedder/EmbedBatch",
                    target=target,
                    info=ErrorInfo(item.error.reason, dict(item.error.reason_metadata))
                    if item.error.reason
                    else None,
                )
            )
        else:
            out.append(embed_result(item.response))
    return out


def _status_code(value: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN
