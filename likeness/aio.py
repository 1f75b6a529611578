"""The Likeness client on asyncio (``grpc.aio``): :class:`AsyncLikenessClient`.

    async with AsyncLikenessClient("127.0.0.1:50052", api_key=key) as client:
        await client.enroll("alice", images=[alice_jpeg])
        result = await client.verify("alice", probe_jpeg)

The same calls, arguments, results (frozen dataclasses) and typed
exceptions as :class:`likeness.client.LikenessClient`, built by the same
request and conversion code; the same service config (retries of the safe
methods by gRPC, optional round_robin) and channel options. Create and use
it inside a running event loop.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio

from likeness import _client_convert as convert
from likeness._client_base import (
    bearer,
    check_timeouts,
    credentials_of,
    method_name,
    options_of,
)
from likeness._client_errors import LikenessRpcError, from_rpc_error
from likeness._client_retry import RetryPolicy
from likeness._client_types import (
    DEFAULT_GALLERY,
    ApiKey,
    CompareResult,
    CreatedApiKey,
    Embedding,
    EmbedResult,
    EnrollResult,
    ExportedFace,
    Gallery,
    GalleryStats,
    IdentifyResult,
    ModelInfo,
    Subject,
    SubjectPage,
    VerifyResult,
)
from likeness.selection import FaceSelection
from likeness.selection import to_pb as selection_pb
from likeness.v1 import embedder_pb2, embedder_pb2_grpc, registry_pb2, registry_pb2_grpc

__all__ = ["AsyncLikenessClient"]

Probe = convert.Probe


class _AsyncCaller:
    """Awaits unary calls of one target with a deadline and typed errors."""

    def __init__(self, target: str, metadata: Sequence[tuple[str, str]]) -> None:
        self.target = target
        self.metadata = tuple(metadata)

    def error(self, exc: grpc.RpcError, method: str) -> LikenessRpcError:
        return from_rpc_error(exc, method=method, target=self.target)

    async def unary(self, method: Callable[..., Any], request: Any, timeout_s: float) -> Any:
        try:
            return await method(request, timeout=timeout_s, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise self.error(exc, method_name(method)) from exc


class AsyncLikenessClient:
    """Client of one Registry (with its Admin service) and optionally one
    Embedder, on asyncio; arguments as for :class:`likeness.client.LikenessClient`.
    Use as ``async with``, or await :meth:`close`."""

    def __init__(
        self,
        registry_address: str,
        embedder_address: str | None = None,
        *,
        api_key: str | None = None,
        tls: bool | str | Path = False,
        timeout_s: float = 10.0,
        stream_timeout_s: float = 600.0,
        retry: RetryPolicy | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
        service_config: Mapping[str, Any] | None = None,
    ) -> None:
        check_timeouts(timeout_s, stream_timeout_s)
        self.registry_address = registry_address
        self.embedder_address = embedder_address
        self.timeout_s = timeout_s
        self.stream_timeout_s = stream_timeout_s
        metadata = bearer(api_key)
        credentials = credentials_of(tls)
        options = options_of(channel_options, service_config, retry)
        self._registry_channel = _channel(registry_address, credentials, options)
        self._registry_stub: Any = registry_pb2_grpc.RegistryStub(self._registry_channel)
        self._admin_stub: Any = registry_pb2_grpc.AdminStub(self._registry_channel)
        self._registry = _AsyncCaller(registry_address, metadata)
        self._embedder_channel: grpc.aio.Channel | None = None
        self._embedder_stub: Any = None
        self._embedder: _AsyncCaller | None = None
        if embedder_address is not None:
            self._embedder_channel = _channel(embedder_address, credentials, options)
            self._embedder_stub = embedder_pb2_grpc.EmbedderStub(self._embedder_channel)
            self._embedder = _AsyncCaller(embedder_address, metadata)

    def with_api_key(self, api_key: str | None) -> AsyncLikenessClient:
        """A view of this client sending ``api_key`` instead (None: no key),
        over the same channels: cheap, e.g. one per HTTP request of a
        gateway. Closing either closes the channels of both."""
        view = copy.copy(self)
        metadata = bearer(api_key)
        view._registry = _AsyncCaller(self.registry_address, metadata)
        if self.embedder_address is not None:
            view._embedder = _AsyncCaller(self.embedder_address, metadata)
        return view

    async def close(self) -> None:
        """Close the channels; calls in flight are cancelled."""
        await self._registry_channel.close()
        if self._embedder_channel is not None:
            await self._embedder_channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _registry_call(self, name: str, request: Any) -> Any:
        method = getattr(self._registry_stub, name)
        return await self._registry.unary(method, request, self.timeout_s)

    async def _admin_call(self, name: str, request: Any) -> Any:
        method = getattr(self._admin_stub, name)
        return await self._registry.unary(method, request, self.timeout_s)

    async def _embedder_call(self, name: str, request: Any) -> Any:
        if self._embedder is None:
            raise ValueError("this AsyncLikenessClient has no embedder_address")
        method = getattr(self._embedder_stub, name)
        return await self._embedder.unary(method, request, self.timeout_s)

    # -- Embedder ---------------------------------------------------------

    async def embed(
        self, image: bytes, selection: FaceSelection = FaceSelection.DEFAULT
    ) -> EmbedResult:
        """As :meth:`LikenessClient.embed`."""
        request = embedder_pb2.EmbedRequest(image=image, selection=selection_pb(selection))
        return convert.embed_result(await self._embedder_call("Embed", request))

    async def embed_batch(
        self, images: Sequence[bytes], selection: FaceSelection = FaceSelection.DEFAULT
    ) -> list[EmbedResult | LikenessRpcError]:
        """As :meth:`LikenessClient.embed_batch`."""
        request = embedder_pb2.EmbedBatchRequest(
            items=[
                embedder_pb2.EmbedRequest(image=i, selection=selection_pb(selection))
                for i in images
            ]
        )
        response = await self._embedder_call("EmbedBatch", request)
        return convert.embed_batch_results(response, self.embedder_address or "")

    async def info(self) -> ModelInfo:
        """As :meth:`LikenessClient.info`."""
        return convert.model_info(await self._embedder_call("Info", embedder_pb2.InfoRequest()))

    # -- Registry: faces and decisions -------------------------------------

    async def enroll(
        self,
        subject_id: str,
        images: Sequence[bytes] = (),
        embeddings: Sequence[Embedding] = (),
        *,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        gallery: str = DEFAULT_GALLERY,
        selection: FaceSelection = FaceSelection.DEFAULT,
    ) -> EnrollResult:
        """As :meth:`LikenessClient.enroll`."""
        request = convert.enroll_request(
            gallery, subject_id, images, embeddings, metadata, idempotency_key, selection
        )
        return convert.enroll_result(await self._registry_call("Enroll", request))

    async def verify(
        self, subject_id: str, probe: Probe, *, gallery: str = DEFAULT_GALLERY
    ) -> VerifyResult:
        """As :meth:`LikenessClient.verify`."""
        request = registry_pb2.VerifyRequest(
            gallery=gallery, subject_id=subject_id, probe=convert.probe_pb(probe)
        )
        return convert.verify_result(await self._registry_call("Verify", request))

    async def identify(
        self,
        probe: Probe,
        *,
        top_k: int = 5,
        min_score: float | None = None,
        gallery: str = DEFAULT_GALLERY,
    ) -> IdentifyResult:
        """As :meth:`LikenessClient.identify`."""
        request = convert.identify_request(gallery, probe, top_k, min_score)
        return convert.identify_result(await self._registry_call("Identify", request))

    async def compare(self, a: Probe, b: Probe, *, gallery: str = "") -> CompareResult:
        """As :meth:`LikenessClient.compare`."""
        request = registry_pb2.CompareRequest(
            a=convert.probe_pb(a), b=convert.probe_pb(b), gallery=gallery
        )
        return convert.compare_result(await self._registry_call("Compare", request))

    # -- Registry: subjects and galleries -----------------------------------

    async def get_subject(self, subject_id: str, *, gallery: str = DEFAULT_GALLERY) -> Subject:
        """As :meth:`LikenessClient.get_subject`."""
        request = registry_pb2.GetSubjectRequest(gallery=gallery, subject_id=subject_id)
        return convert.subject(await self._registry_call("GetSubject", request))

    async def list_subjects(
        self, *, gallery: str = DEFAULT_GALLERY, page_size: int = 100, page_token: str = ""
    ) -> SubjectPage:
        """As :meth:`LikenessClient.list_subjects`."""
        request = registry_pb2.ListSubjectsRequest(
            gallery=gallery, page_size=page_size, page_token=page_token
        )
        return convert.subject_page(await self._registry_call("ListSubjects", request))

    async def delete_subject(self, subject_id: str, *, gallery: str = DEFAULT_GALLERY) -> int:
        """As :meth:`LikenessClient.delete_subject` (never retried)."""
        request = registry_pb2.DeleteSubjectRequest(gallery=gallery, subject_id=subject_id)
        return int((await self._registry_call("DeleteSubject", request)).faces_deleted)

    async def delete_face(self, face_id: str, *, gallery: str = DEFAULT_GALLERY) -> str:
        """As :meth:`LikenessClient.delete_face` (never retried)."""
        request = registry_pb2.DeleteFaceRequest(gallery=gallery, face_id=face_id)
        return str((await self._registry_call("DeleteFace", request)).subject_id)

    async def stats(self, *, gallery: str = DEFAULT_GALLERY) -> GalleryStats:
        """As :meth:`LikenessClient.stats`."""
        request = registry_pb2.StatsRequest(gallery=gallery)
        return convert.gallery_stats(await self._registry_call("Stats", request))

    async def create_gallery(
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
        """As :meth:`LikenessClient.create_gallery` (never retried)."""
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
        return convert.gallery(await self._registry_call("CreateGallery", request))

    async def update_gallery(self, name: str, *, operating_point: str) -> Gallery:
        """As :meth:`LikenessClient.update_gallery`."""
        request = registry_pb2.UpdateGalleryRequest(name=name, operating_point=operating_point)
        return convert.gallery(await self._registry_call("UpdateGallery", request))

    async def list_galleries(self) -> list[Gallery]:
        """As :meth:`LikenessClient.list_galleries`."""
        response = await self._registry_call("ListGalleries", registry_pb2.ListGalleriesRequest())
        return [convert.gallery(g) for g in response.galleries]

    async def delete_gallery(self, name: str) -> int:
        """As :meth:`LikenessClient.delete_gallery` (never retried)."""
        request = registry_pb2.DeleteGalleryRequest(name=name)
        return int((await self._registry_call("DeleteGallery", request)).faces_deleted)

    async def export_gallery(self, name: str) -> AsyncIterator[ExportedFace]:
        """As :meth:`LikenessClient.export_gallery`."""
        method = "/likeness.v1.Registry/ExportGallery"
        call = self._registry_stub.ExportGallery(
            registry_pb2.ExportGalleryRequest(gallery=name),
            timeout=self.stream_timeout_s,
            metadata=self._registry.metadata,
        )
        try:
            async for msg in call:
                yield convert.exported_face(msg)
        except grpc.RpcError as exc:
            raise self._registry.error(exc, method) from exc
        finally:
            call.cancel()

    # -- Admin: API keys -------------------------------------------------

    async def create_api_key(self, name: str, scopes: Mapping[str, str]) -> CreatedApiKey:
        """As :meth:`LikenessClient.create_api_key` (never retried)."""
        request = registry_pb2.CreateApiKeyRequest(name=name, scopes=dict(scopes))
        response = await self._admin_call("CreateApiKey", request)
        return CreatedApiKey(convert.api_key(response.key), response.secret)

    async def list_api_keys(self) -> list[ApiKey]:
        """As :meth:`LikenessClient.list_api_keys`."""
        response = await self._admin_call("ListApiKeys", registry_pb2.ListApiKeysRequest())
        return [convert.api_key(k) for k in response.keys]

    async def revoke_api_key(self, key_id: str) -> None:
        """As :meth:`LikenessClient.revoke_api_key`."""
        await self._admin_call("RevokeApiKey", registry_pb2.RevokeApiKeyRequest(key_id=key_id))


def _channel(
    address: str, credentials: grpc.ChannelCredentials | None, options: list[tuple[str, Any]]
) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=options)
