"""One-shot job: create a sharded, replicated gallery on a Qdrant cluster.

Calls the registry's CreateGallery with the shard number, replication
factor and write consistency factor from ``LIKENESS_GALLERY_*`` (see
:class:`GallerySetupSettings`). A gallery that already exists counts as
success (its settings are left as they are, and logged): the job can run
on every ``docker compose up``. Exit status 0 on success, 1 on any other
error (the status code and message are logged).

Usage: ``python create_gallery.py`` (configuration from the environment).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import grpc
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from likeness import logs
from likeness.v1 import registry_pb2, registry_pb2_grpc

log = logging.getLogger("likeness.deploy.create_gallery")


class GallerySetupSettings(BaseSettings):
    """What to create and where (environment ``LIKENESS_GALLERY_*``).

    ``shard_number``, ``replication_factor``, ``write_consistency_factor``:
    0 leaves Qdrant's default. ``api_key``: an admin key, sent as
    ``authorization: Bearer``; needed when the registry requires keys.
    """

    model_config = SettingsConfigDict(env_prefix="LIKENESS_GALLERY_", extra="ignore")

    registry_address: str = Field("127.0.0.1:50052", description="host:port of a registry.")
    name: str = "default"
    shard_number: int = Field(2, ge=0)
    replication_factor: int = Field(2, ge=0)
    write_consistency_factor: int = Field(1, ge=0)
    api_key: str | None = None
    timeout_s: float = Field(30.0, gt=0, description="Deadline of the call, seconds.")


def create_gallery(settings: GallerySetupSettings) -> registry_pb2.Gallery | None:
    """Create the gallery; returns it, or None when it already existed.

    Raises grpc.RpcError for any other failure.
    """
    metadata = [("authorization", f"Bearer {settings.api_key}")] if settings.api_key else []
    request = registry_pb2.CreateGalleryRequest(
        name=settings.name,
        shard_number=settings.shard_number,
        replication_factor=settings.replication_factor,
        write_consistency_factor=settings.write_consistency_factor,
    )
    with grpc.insecure_channel(settings.registry_address) as channel:
        stub: Any = registry_pb2_grpc.RegistryStub(channel)  # type: ignore[no-untyped-call]
        try:
            gallery: registry_pb2.Gallery = stub.CreateGallery(
                request, timeout=settings.timeout_s, metadata=metadata, wait_for_ready=True
            )
        except grpc.RpcError as exc:
            if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                return None
            raise
    return gallery


def main() -> int:
    """Run the job; returns the exit status."""
    settings = GallerySetupSettings()
    logs.configure("INFO")
    fields = {
        "gallery": settings.name,
        "registry": settings.registry_address,
        "shard_number": settings.shard_number,
        "replication_factor": settings.replication_factor,
        "write_consistency_factor": settings.write_consistency_factor,
    }
    try:
        gallery = create_gallery(settings)
    except grpc.RpcError as exc:
        code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        log.error("gallery not created", extra={**fields, "code": code, "details": details})
        return 1
    if gallery is None:
        log.info("gallery exists; its settings are unchanged", extra=fields)
    else:
        log.info("gallery created", extra={**fields, "model": gallery.model_fingerprint})
    return 0


if __name__ == "__main__":
    sys.exit(main())
