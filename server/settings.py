"""Registry configuration (environment variables ``LIKENESS_REGISTRY_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from likeness.service_key import ServiceKey
from likeness.serving import is_loopback


class InsecureBindError(ValueError):
    """A non-loopback host without API keys and without allow_insecure_no_keys."""


class RegistrySettings(BaseSettings):
    """Settings of the Registry service; built in ``main()`` and passed down."""

    # Hidden inputs: a rejected key must not be echoed into a log.
    model_config = SettingsConfigDict(
        env_prefix="LIKENESS_REGISTRY_", extra="ignore", hide_input_in_errors=True
    )

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 to serve other hosts.")
    port: int = Field(50052, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    metrics_port: int = Field(9095, ge=0, le=65535, description="Prometheus /metrics; 0 = off.")
    embedder_address: str = Field("127.0.0.1:50051", description="host:port of the Embedder.")
    embedder_timeout_s: float = Field(
        10.0, gt=0, description="Longest wait for one embedder call, seconds."
    )
    embedder_tls_ca: Path | None = Field(
        None,
        description="PEM root certificate of the Embedder's TLS server; unset = plaintext.",
    )
    embedder_api_key: ServiceKey | None = Field(
        None,
        description="The Embedder's shared key (its LIKENESS_EMBEDDER_API_KEY), sent on every "
        "call; unset = none sent.",
    )
    store: Literal["edge", "qdrant"] = Field("edge", description="edge = embedded Qdrant engine.")
    data_dir: Path = Field(Path("var"), description="Edge store, API keys and audit log live here.")
    qdrant_url: str = Field(
        "http://127.0.0.1:6334",
        description='Qdrant server (store=qdrant); ":memory:" = in-process, not persisted.',
    )
    qdrant_api_key: str | None = None
    qdrant_prefer_grpc: bool = True
    hnsw_min_faces: int = Field(
        20_000, ge=0, description="Edge: build the HNSW index in the background past this size."
    )
    hnsw_ef: int = Field(
        512,
        ge=16,
        le=4096,
        description="Edge: HNSW candidates per search; 512 gave recall@1 0.993 at 1M faces.",
    )
    api_keys_required: bool = Field(
        False, description="Reject calls without a valid API key (set true in production)."
    )
    bootstrap_admin_key: str | None = Field(
        None, description="An admin key (all galleries) accepted in addition to stored keys."
    )
    allow_insecure_no_keys: bool = Field(
        False,
        description="Serve a non-loopback host with api_keys_required false (every "
        "caller is admin); without it such a server refuses to start.",
    )
    audit_log: Path | None = Field(
        None, description="JSON-lines audit log; default data_dir/audit.jsonl."
    )
    audit_max_bytes: int = Field(
        100 * 1024 * 1024,
        ge=0,
        description="Rotate the audit log before it passes this size, bytes; 0 = never "
        "(rotate externally: SIGHUP reopens it).",
    )
    audit_backups: int = Field(
        5, ge=1, le=1000, description="Rotated audit logs kept (audit.jsonl.1 is the newest)."
    )
    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    workers: int = Field(16, ge=1, le=256)
    grace_s: float = Field(10.0, ge=0, description="Shutdown drains in-flight calls this long.")
    log_level: str = "INFO"
    tls_cert: Path | None = Field(None, description="PEM certificate chain; needs tls_key.")
    tls_key: Path | None = Field(None, description="PEM private key; needs tls_cert.")

    @model_validator(mode="after")
    def _tls_pair(self) -> RegistrySettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be set together")
        return self

    def check_exposure(self) -> None:
        """Protected mode: InsecureBindError when the server would serve other
        hosts (host not loopback) with every keyless caller as admin
        (api_keys_required false) and allow_insecure_no_keys is not set.

        A check of its own, not a validator: tools that only read the
        settings (the container health check) must not refuse them."""
        if self.api_keys_required or self.allow_insecure_no_keys or is_loopback(self.host):
            return
        raise InsecureBindError(
            f"host {self.host!r} is not a loopback address and api_keys_required is false, "
            "so every caller without a key would be admin; set "
            "LIKENESS_REGISTRY_API_KEYS_REQUIRED=true (api_keys_required, with stored keys "
            "or bootstrap_admin_key), or LIKENESS_REGISTRY_ALLOW_INSECURE_NO_KEYS=true "
            "(allow_insecure_no_keys) to serve without keys anyway"
        )
