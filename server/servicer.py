"""Registry and Admin gRPC servicers: protobuf <-> domain, and the
authorization of each call on its gallery (authentication and the audit line
are the :class:`server.guard.GuardInterceptor`'s); the logic is in
:mod:`server.service`."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain

import grpc

from likeness import errors, operating_points
from likeness.operating_points import OperatingPoint
from likeness.quality import quality_from_pb, quality_to_pb
from likeness.selection import FaceSelection, from_pb
from likeness.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from server.auth import ALL_GALLERIES, ApiKey, KeyStore, Role
from server.domain import (
    Candidate,
    EmbeddingInput,
    GalleryConfig,
    GalleryOptions,
    ImportedFace,
    Probe,
    StoredFace,
)
from server.guard import authorize, authorize_probe
from server.service import RegistryService


def _time_left(context: grpc.ServicerContext) -> float:
    """Seconds left of the client's deadline (very large when it set none:
    the embedder's own timeout then bounds each call)."""
    return float(context.time_remaining())


def _gallery_label(name: str) -> str:
    # The name as the request gives it, "default" when empty: malformed names
    # are rejected later by the service, with the field named.
    return name or "default"


def _embedding(e: common_pb2.Embedding) -> EmbeddingInput:
    return EmbeddingInput(values=list(e.values), model_fingerprint=e.model_fingerprint)


def _probe(p: common_pb2.Probe) -> Probe:
    kind = p.WhichOneof("kind")
    if kind == "embedding":
        return Probe(embedding=_embedding(p.embedding))
    if kind == "image":
        return Probe(image=p.image)
    return Probe()


def _gallery_pb(g: GalleryConfig) -> registry_pb2.Gallery:
    return registry_pb2.Gallery(
        name=g.name,
        model_fingerprint=g.model_fingerprint,
        dim=g.dim,
        threshold=g.threshold,
        min_face_size_px=g.min_face_size_px,
        min_sharpness=g.min_sharpness,
        max_abs_yaw_deg=g.max_abs_yaw_deg,
        created_at=g.created_at,
        gate_probes=g.gate_probes,
        operating_point=_point_pb(g.point),
    )


def _point_pb(point: OperatingPoint | None) -> common_pb2.OperatingPoint | None:
    # Galleries report the point in force without the model's rates.
    return None if point is None else operating_points.to_proto(point, rates=False)


def _face_record(f: StoredFace) -> registry_pb2.FaceRecord:
    return registry_pb2.FaceRecord(
        face_id=f.face_id,
        model_fingerprint=f.model_fingerprint,
        created_at=f.created_at,
        quality=quality_to_pb(f.quality),
    )


def _exported(f: StoredFace) -> registry_pb2.ExportedFace:
    return registry_pb2.ExportedFace(
        subject_id=f.subject_id,
        face_id=f.face_id,
        embedding=common_pb2.Embedding(
            values=f.vector.tolist(), model_fingerprint=f.model_fingerprint
        ),
        metadata=f.metadata,
        created_at=f.created_at,
        quality=quality_to_pb(f.quality),
    )


def _imported(index: int, message: registry_pb2.ImportGalleryRequest) -> ImportedFace:
    if not message.HasField("face"):
        raise errors.InvalidArgument(f"face[{index}]: missing")
    f = message.face
    return ImportedFace(
        subject_id=f.subject_id,
        face_id=f.face_id,
        embedding=_embedding(f.embedding),
        metadata=dict(f.metadata),
        created_at=f.created_at,
        quality=quality_from_pb(f.quality) if f.HasField("quality") else None,
    )


def _decision(match: bool) -> str:
    return "match" if match else "no_match"


class RegistryServicer(registry_pb2_grpc.RegistryServicer):  # type: ignore[misc]
    """likeness.v1.Registry over a :class:`RegistryService`."""

    def __init__(self, service: RegistryService) -> None:
        self._service = service

    def Enroll(  # noqa: N802
        self, request: registry_pb2.EnrollRequest, context: grpc.ServicerContext
    ) -> registry_pb2.EnrollResponse:
        gallery = _gallery_label(request.gallery)
        call = authorize(context, gallery, request.subject_id)
        selection = from_pb(request.selection, FaceSelection.REQUIRE_SINGLE)
        result = self._service.enroll(
            request.gallery,
            request.subject_id,
            images=list(request.images),
            embeddings=[_embedding(e) for e in request.embeddings],
            metadata=dict(request.metadata),
            idempotency_key=request.idempotency_key,
            selection=selection,
            timeout_s=_time_left(context),
        )
        call.decision = "replayed" if result.replayed else "enrolled"
        return registry_pb2.EnrollResponse(
            subject_id=result.subject_id,
            faces=[
                registry_pb2.EnrolledFace(face_id=f.face_id, quality=quality_to_pb(f.quality))
                for f in result.faces
            ],
            possible_duplicates=[
                registry_pb2.DuplicateCandidate(subject_id=d.subject_id, score=d.score)
                for d in result.possible_duplicates
            ],
            replayed=result.replayed,
        )

    def Verify(  # noqa: N802
        self, request: registry_pb2.VerifyRequest, context: grpc.ServicerContext
    ) -> registry_pb2.VerifyResponse:
        gallery = _gallery_label(request.gallery)
        call = authorize(context, gallery, request.subject_id)
        authorize_probe(call, gallery, request.probe)
        result = self._service.verify(
            request.gallery,
            request.subject_id,
            _probe(request.probe),
            timeout_s=_time_left(context),
        )
        call.decision, call.score = _decision(result.match), result.score
        return registry_pb2.VerifyResponse(
            score=result.score,
            threshold=result.threshold,
            match=result.match,
            face_id=result.face_id,
            probe_quality=quality_to_pb(result.probe_quality),
            operating_point=_point_pb(result.operating_point),
        )

    def Identify(  # noqa: N802
        self, request: registry_pb2.IdentifyRequest, context: grpc.ServicerContext
    ) -> registry_pb2.IdentifyResponse:
        gallery = _gallery_label(request.gallery)
        call = authorize(context, gallery)
        authorize_probe(call, gallery, request.probe)
        result = self._service.identify(
            request.gallery,
            _probe(request.probe),
            top_k=request.top_k,
            min_score=request.min_score if request.HasField("min_score") else None,
            timeout_s=_time_left(context),
            selection=from_pb(request.selection, FaceSelection.LARGEST),
        )
        if result.unknown or not result.candidates:
            call.decision = "unknown"
        else:
            best = result.candidates[0]
            call.decision, call.subject, call.score = "match", best.subject_id, best.score
        return registry_pb2.IdentifyResponse(
            candidates=_candidates_pb(result.candidates),
            unknown=result.unknown,
            threshold=result.threshold,
            probe_quality=quality_to_pb(result.probe_quality),
            faces=[
                registry_pb2.IdentifiedFace(
                    box=common_pb2.BoundingBox(
                        left=f.box[0], top=f.box[1], right=f.box[2], bottom=f.box[3]
                    ),
                    quality=quality_to_pb(f.quality),
                    candidates=_candidates_pb(f.candidates),
                    unknown=f.unknown,
                )
                for f in result.faces
            ],
            operating_point=_point_pb(result.operating_point),
        )

    def Compare(  # noqa: N802
        self, request: registry_pb2.CompareRequest, context: grpc.ServicerContext
    ) -> registry_pb2.CompareResponse:
        # Without a gallery Compare touches none: a read role anywhere will do.
        gallery = request.gallery or None
        call = authorize(context, gallery)
        result = self._service.compare(
            _probe(request.a),
            _probe(request.b),
            gallery=request.gallery,
            timeout_s=_time_left(context),
        )
        call.decision, call.score = _decision(result.match), result.score
        return registry_pb2.CompareResponse(
            score=result.score,
            threshold=result.threshold,
            match=result.match,
            quality_a=quality_to_pb(result.quality_a),
            quality_b=quality_to_pb(result.quality_b),
            operating_point=_point_pb(result.operating_point),
        )

    def GetSubject(  # noqa: N802
        self, request: registry_pb2.GetSubjectRequest, context: grpc.ServicerContext
    ) -> registry_pb2.Subject:
        gallery = _gallery_label(request.gallery)
        authorize(context, gallery, request.subject_id)
        record = self._service.get_subject(request.gallery, request.subject_id)
        return registry_pb2.Subject(
            gallery=record.gallery,
            subject_id=record.subject_id,
            faces=[_face_record(f) for f in record.faces],
            metadata=record.metadata,
        )

    def ListSubjects(  # noqa: N802
        self, request: registry_pb2.ListSubjectsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ListSubjectsResponse:
        gallery = _gallery_label(request.gallery)
        authorize(context, gallery)
        page = self._service.list_subjects(request.gallery, request.page_size, request.page_token)
        return registry_pb2.ListSubjectsResponse(
            subjects=[
                registry_pb2.SubjectSummary(subject_id=s, face_count=n) for s, n in page.subjects
            ],
            next_page_token=page.next_page_token,
        )

    def DeleteSubject(  # noqa: N802
        self, request: registry_pb2.DeleteSubjectRequest, context: grpc.ServicerContext
    ) -> registry_pb2.DeleteSubjectResponse:
        gallery = _gallery_label(request.gallery)
        call = authorize(context, gallery, request.subject_id)
        deleted = self._service.delete_subject(request.gallery, request.subject_id)
        call.decision = "deleted"
        return registry_pb2.DeleteSubjectResponse(faces_deleted=deleted)

    def DeleteFace(  # noqa: N802
        self, request: registry_pb2.DeleteFaceRequest, context: grpc.ServicerContext
    ) -> registry_pb2.DeleteFaceResponse:
        gallery = _gallery_label(request.gallery)
        call = authorize(context, gallery)
        subject = self._service.delete_face(request.gallery, request.face_id)
        call.subject, call.decision = subject, "deleted"
        return registry_pb2.DeleteFaceResponse(subject_id=subject)

    def Stats(  # noqa: N802
        self, request: registry_pb2.StatsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.StatsResponse:
        gallery = _gallery_label(request.gallery)
        authorize(context, gallery)
        stats = self._service.stats(request.gallery)
        response = registry_pb2.StatsResponse(
            gallery=_gallery_pb(stats.gallery),
            subjects=stats.subjects,
            faces=stats.faces,
            store_backend=stats.store_backend,
        )
        if request.count_duplicates:
            response.duplicate_pairs = self._service.count_duplicates(stats.gallery)
        return response

    def FindDuplicates(  # noqa: N802
        self, request: registry_pb2.FindDuplicatesRequest, context: grpc.ServicerContext
    ) -> registry_pb2.FindDuplicatesResponse:
        authorize(context, _gallery_label(request.gallery))
        page = self._service.find_duplicates(
            request.gallery,
            request.page_size,
            request.page_token,
            request.min_score if request.HasField("min_score") else None,
        )
        return registry_pb2.FindDuplicatesResponse(
            pairs=[
                registry_pb2.DuplicatePair(
                    subject_a=p.subject_a,
                    subject_b=p.subject_b,
                    score=p.score,
                    face_a=p.face_a,
                    face_b=p.face_b,
                )
                for p in page.pairs
            ],
            next_page_token=page.next_page_token,
            total_pairs=page.total,
            min_score=page.min_score,
        )

    def CreateGallery(  # noqa: N802
        self, request: registry_pb2.CreateGalleryRequest, context: grpc.ServicerContext
    ) -> registry_pb2.Gallery:
        def opt(name: str) -> float | None:
            return float(getattr(request, name)) if request.HasField(name) else None

        options = GalleryOptions(
            threshold=opt("threshold"),
            min_face_size_px=opt("min_face_size_px"),
            min_sharpness=opt("min_sharpness"),
            max_abs_yaw_deg=opt("max_abs_yaw_deg"),
            shard_number=request.shard_number,
            replication_factor=request.replication_factor,
            write_consistency_factor=request.write_consistency_factor,
            gate_probes=request.gate_probes,
            operating_point=request.operating_point,
        )
        gallery = _gallery_label(request.name)
        authorize(context, gallery)
        config = self._service.create_gallery(request.name, options, timeout_s=_time_left(context))
        return _gallery_pb(config)

    def UpdateGallery(  # noqa: N802
        self, request: registry_pb2.UpdateGalleryRequest, context: grpc.ServicerContext
    ) -> registry_pb2.Gallery:
        authorize(context, _gallery_label(request.name))
        config = self._service.update_gallery(
            request.name, request.operating_point, timeout_s=_time_left(context)
        )
        return _gallery_pb(config)

    def ListGalleries(  # noqa: N802
        self, request: registry_pb2.ListGalleriesRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ListGalleriesResponse:
        # Needs the read role on some gallery; lists only the galleries the
        # caller may read.
        call = authorize(context, None)
        galleries = [
            g for g in self._service.list_galleries() if call.principal.allows(g.name, Role.READ)
        ]
        return registry_pb2.ListGalleriesResponse(galleries=[_gallery_pb(g) for g in galleries])

    def DeleteGallery(  # noqa: N802
        self, request: registry_pb2.DeleteGalleryRequest, context: grpc.ServicerContext
    ) -> registry_pb2.DeleteGalleryResponse:
        gallery = _gallery_label(request.name)
        call = authorize(context, gallery)
        deleted = self._service.delete_gallery(request.name)
        call.decision = "deleted"
        return registry_pb2.DeleteGalleryResponse(faces_deleted=deleted)

    def ExportGallery(  # noqa: N802
        self, request: registry_pb2.ExportGalleryRequest, context: grpc.ServicerContext
    ) -> Iterator[registry_pb2.ExportedFace]:
        gallery = _gallery_label(request.gallery)
        authorize(context, gallery)
        _, faces = self._service.export_gallery(request.gallery)
        for face in faces:
            yield _exported(face)

    def ImportGallery(  # noqa: N802
        self,
        request_iterator: Iterator[registry_pb2.ImportGalleryRequest],
        context: grpc.ServicerContext,
    ) -> registry_pb2.ImportGalleryResponse:
        # The interceptor authenticated the caller before anything the client
        # streams was read; the gallery (and so the role check) comes with
        # message 1.
        first = next(request_iterator, None)
        name = first.gallery if first is not None else ""
        call = authorize(context, _gallery_label(name))
        messages = chain([first], request_iterator) if first is not None else iter(())
        result = self._service.import_gallery(
            name, (_imported(i, m) for i, m in enumerate(messages))
        )
        call.decision = f"imported={result.imported} skipped={result.skipped}"
        return registry_pb2.ImportGalleryResponse(imported=result.imported, skipped=result.skipped)


class AdminServicer(registry_pb2_grpc.AdminServicer):  # type: ignore[misc]
    """likeness.v1.Admin: API keys (admin role on "*"). ``service`` tells
    which galleries exist (a key's scopes may name only those)."""

    def __init__(self, keys: KeyStore, service: RegistryService) -> None:
        self._keys = keys
        self._service = service

    @staticmethod
    def _key_pb(key: ApiKey) -> registry_pb2.ApiKey:
        return registry_pb2.ApiKey(
            key_id=key.key_id,
            name=key.name,
            scopes={g: r.label for g, r in key.scopes.items()},
            created_at=key.created_at,
            revoked=key.revoked,
        )

    def CreateApiKey(  # noqa: N802
        self, request: registry_pb2.CreateApiKeyRequest, context: grpc.ServicerContext
    ) -> registry_pb2.CreateApiKeyResponse:
        call = authorize(context, ALL_GALLERIES)
        known = {g.name for g in self._service.list_galleries()}
        key, secret = self._keys.create(request.name, dict(request.scopes), known_galleries=known)
        call.subject, call.decision = key.key_id, "created"
        return registry_pb2.CreateApiKeyResponse(key=self._key_pb(key), secret=secret)

    def ListApiKeys(  # noqa: N802
        self, request: registry_pb2.ListApiKeysRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ListApiKeysResponse:
        authorize(context, ALL_GALLERIES)
        keys = self._keys.list()
        return registry_pb2.ListApiKeysResponse(keys=[self._key_pb(k) for k in keys])

    def RevokeApiKey(  # noqa: N802
        self, request: registry_pb2.RevokeApiKeyRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RevokeApiKeyResponse:
        call = authorize(context, ALL_GALLERIES)
        self._keys.revoke(request.key_id)
        call.subject, call.decision = request.key_id, "revoked"
        return registry_pb2.RevokeApiKeyResponse()


def _candidates_pb(candidates: list[Candidate]) -> list[registry_pb2.Candidate]:
    return [
        registry_pb2.Candidate(
            subject_id=c.subject_id, score=c.score, face_id=c.face_id, metadata=c.metadata
        )
        for c in candidates
    ]
