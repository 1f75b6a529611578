"""Gallery administration calls of :class:`likeness.client.LikenessClient`:
create, list, delete, export, import, and API keys (the Admin service)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import grpc

from likeness import _client_convert as convert
from likeness._client_base import ClientBase
from likeness._client_types import (
    ApiKey,
    CreatedApiKey,
    ExportedFace,
    Gallery,
    ImportResult,
)
from likeness.duplicates import DuplicatePage, DuplicatePair
from likeness.v1 import registry_pb2


class GalleryCalls(ClientBase):
    """The gallery and API-key calls of the client."""

    # -- Registry: galleries ---------------------------------------------

    def find_duplicates(
        self,
        *,
        gallery: str = "default",
        page_size: int = 0,
        page_token: str = "",
        min_score: float | None = None,
    ) -> DuplicatePage:
        """One page (1-1000 pairs, 0 = 100) of the pairs of different subjects
        whose faces score >= ``min_score`` (cosine; default the gallery's
        threshold), best first. Needs the admin role on the gallery."""
        request = registry_pb2.FindDuplicatesRequest(
            gallery=gallery, page_size=page_size, page_token=page_token
        )
        if min_score is not None:
            request.min_score = min_score
        response = self._registry.unary(
            self._registry_stub.FindDuplicates, request, timeout_s=self.timeout_s
        )
        return convert.duplicate_page(response)

    def iter_duplicates(
        self, *, gallery: str = "default", min_score: float | None = None
    ) -> Iterator[DuplicatePair]:
        """Every duplicate pair, page after page (see :meth:`find_duplicates`)."""
        token = ""
        while True:
            page = self.find_duplicates(gallery=gallery, page_token=token, min_score=min_score)
            yield from page.pairs
            token = page.next_page_token
            if not token:
                return

    def create_gallery(
        self,
        name: str,
        *,
        threshold: float | None = None,
        min_face_size_px: float | None = None,
        min_sharpness: float | None = None,
        max_abs_yaw_deg: float | None = None,
        shard_number: int = 0,
        replication_factor: int = 0,
        write_consistency_factor: int = 0,
        gate_probes: bool = False,
        operating_point: str = "",
    ) -> Gallery:
        """Create a gallery bound to the embedder's model.

        ``operating_point``: one of the model's (ModelInfo.operating_points,
        e.g. "far-1e-4"); "" = its default ("far-1e-3" for the shipped
        models); unknown: InvalidArgumentError with reason
        UNKNOWN_OPERATING_POINT. ``threshold``: a cosine similarity set by
        hand instead (the point "custom"; not with ``operating_point``);
        quality gates in inter-ocular pixels, Laplacian variance and
        degrees (0 disables a gate; None keeps the server default); the
        sharding fields apply to the "qdrant" backend only (0 = its default);
        ``gate_probes``: the gates also refuse probes of Verify, Identify and
        Compare (FailedPreconditionError with its ``reason``).
        AlreadyExistsError when the gallery exists.
        """
        request = convert.create_gallery_request(
            name,
            {
                "threshold": threshold,
                "min_face_size_px": min_face_size_px,
                "min_sharpness": min_sharpness,
                "max_abs_yaw_deg": max_abs_yaw_deg,
            },
            {
                "shard_number": shard_number,
                "replication_factor": replication_factor,
                "write_consistency_factor": write_consistency_factor,
            },
            gate_probes,
            operating_point,
        )
        response = self._registry.unary(
            self._registry_stub.CreateGallery, request, timeout_s=self.timeout_s
        )
        return convert.gallery(response)

    def update_gallery(self, name: str, *, operating_point: str) -> Gallery:
        """Move gallery ``name`` to another of its model's operating points
        (by name); Verify and Identify decide at its threshold from the next
        call. Needs the admin role on the gallery. InvalidArgumentError
        (reason UNKNOWN_OPERATING_POINT) for a name the model lacks,
        FailedPreconditionError (MODEL_MISMATCH) when the embedder serves
        another model than the gallery's."""
        request = registry_pb2.UpdateGalleryRequest(name=name, operating_point=operating_point)
        response = self._registry.unary(
            self._registry_stub.UpdateGallery, request, timeout_s=self.timeout_s
        )
        return convert.gallery(response)

    def list_galleries(self) -> list[Gallery]:
        """Every gallery the key may read."""
        response = self._registry.unary(
            self._registry_stub.ListGalleries,
            registry_pb2.ListGalleriesRequest(),
            timeout_s=self.timeout_s,
        )
        return [convert.gallery(g) for g in response.galleries]

    def delete_gallery(self, name: str) -> int:
        """Delete a gallery with every subject and face; returns how many faces."""
        request = registry_pb2.DeleteGalleryRequest(name=name)
        response = self._registry.unary(
            self._registry_stub.DeleteGallery, request, timeout_s=self.timeout_s
        )
        return int(response.faces_deleted)

    def export_gallery(self, name: str) -> Iterator[ExportedFace]:
        """Stream every stored face of a gallery, embeddings included. The
        whole stream shares one deadline of ``stream_timeout_s`` seconds."""
        method = "/likeness.v1.Registry/ExportGallery"
        calls = self._registry_stub.ExportGallery(
            registry_pb2.ExportGalleryRequest(gallery=name),
            timeout=self.stream_timeout_s,
            metadata=self._registry.metadata,
        )
        try:
            for msg in calls:
                yield convert.exported_face(msg)
        except grpc.RpcError as exc:
            raise self._registry.error(exc, method) from exc
        finally:
            calls.cancel()

    def import_gallery(self, name: str, faces: Iterable[ExportedFace]) -> ImportResult:
        """Write exported faces into gallery ``name`` (same model fingerprint);
        faces whose id is already stored are skipped and counted."""
        method = "/likeness.v1.Registry/ImportGallery"

        def requests() -> Iterator[Any]:
            for face in faces:
                yield registry_pb2.ImportGalleryRequest(
                    gallery=name, face=convert.exported_face_pb(face)
                )

        try:
            response = self._registry_stub.ImportGallery(
                requests(), timeout=self.stream_timeout_s, metadata=self._registry.metadata
            )
        except grpc.RpcError as exc:
            raise self._registry.error(exc, method) from exc
        return ImportResult(int(response.imported), int(response.skipped))

    # -- Admin: API keys -------------------------------------------------

    def create_api_key(self, name: str, scopes: Mapping[str, str]) -> CreatedApiKey:
        """Create a key with ``scopes`` (gallery or "*" -> "read" | "enroll" |
        "admin"); the returned secret is shown only this once."""
        request = registry_pb2.CreateApiKeyRequest(name=name, scopes=dict(scopes))
        response = self._registry.unary(
            self._admin_stub.CreateApiKey, request, timeout_s=self.timeout_s
        )
        return CreatedApiKey(convert.api_key(response.key), response.secret)

    def list_api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included (never their secrets)."""
        response = self._registry.unary(
            self._admin_stub.ListApiKeys,
            registry_pb2.ListApiKeysRequest(),
            timeout_s=self.timeout_s,
        )
        return [convert.api_key(k) for k in response.keys]

    def revoke_api_key(self, key_id: str) -> None:
        """Revoke a key: later calls with it are UNAUTHENTICATED."""
        self._registry.unary(
            self._admin_stub.RevokeApiKey,
            registry_pb2.RevokeApiKeyRequest(key_id=key_id),
            timeout_s=self.timeout_s,
        )
