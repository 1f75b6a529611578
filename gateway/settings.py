"""Gateway configuration (environment variables ``LIKENESS_GATEWAY_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """Where the gateway listens and which services it calls; built in
    ``main()`` (or by ``likeness serve``) and passed down."""

    model_config = SettingsConfigDict(env_prefix="LIKENESS_GATEWAY_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 to serve other hosts.")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port; 0 picks a free one.")
    registry_address: str = Field("127.0.0.1:50052", description="host:port of the Registry.")
    embedder_address: str | None = Field(
        "127.0.0.1:50051", description="host:port of the Embedder (for /v1/embed and /v1/info)."
    )
    timeout_s: float = Field(10.0, gt=0, description="Deadline of each gRPC call, seconds.")
    max_upload_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest image accepted per upload, bytes."
    )
