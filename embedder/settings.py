"""Embedder configuration (environment variables ``LIKENESS_EMBEDDER_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from likeness.service_key import MIN_KEY_LENGTH, ServiceKey


class EmbedderSettings(BaseSettings):
    """Settings of the Embedder service; built in ``main()`` and passed down."""

    # Hidden inputs: a rejected api_key must not be echoed into a log.
    model_config = SettingsConfigDict(
        env_prefix="LIKENESS_EMBEDDER_", extra="ignore", hide_input_in_errors=True
    )

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 to serve other hosts.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Prometheus /metrics port on host (per-stage latency, faces, batch "
        "sizes); 0 = off (the default: several embedders may share a host).",
    )
    backend: Literal["likeness-mobilenet", "dlib-resnet"] = "likeness-mobilenet"
    model_dir: Path | None = Field(
        None, description="Model artifact folder; default: the model shipped in embedder/models."
    )
    detector: Literal["cascade", "hog", "cnn"] = Field(
        "cascade",
        description="cascade: fast HOG pass, escalating to upsampled HOG, then the CNN (and "
        "rotations) only when nothing is found (embedder.cascade); hog or cnn: one pass with "
        "upsample and max_detect_side, as before the cascade.",
    )
    upsample: int = Field(1, ge=0, le=3, description="Single-pass detector upsampling steps.")
    detection_threshold: float = Field(0.0, description="Faces scoring below are dropped.")
    max_detect_side: int = Field(
        1024, ge=128, description="Single pass: detect on a copy at most this large, pixels."
    )
    cascade_fast_side: int = Field(
        640,
        ge=64,
        description="Cascade: the fast pass (HOG, no upsampling) runs on a copy whose longer "
        "side is at most this many pixels; faces of about 80 px in it are found.",
    )
    cascade_upsampled_side: int = Field(
        1024, ge=128, description="Cascade: longest side of the upsampled HOG step's copy, pixels."
    )
    cascade_small_side: int = Field(
        800,
        ge=0,
        description="Cascade: longest side of the twice-upsampled HOG step's copy (faces of "
        "about 20 px), pixels; 0 skips the step.",
    )
    cascade_cnn: bool = Field(
        True, description="Cascade: try the CNN last, when HOG found nothing."
    )
    cascade_cnn_side: int = Field(
        640, ge=64, description="Cascade: longest side of the CNN step's copy, pixels."
    )
    cascade_cnn_upsample: int = Field(0, ge=0, le=2, description="Cascade: CNN upsampling steps.")
    cascade_rotations: bool = Field(
        False,
        description="Cascade: when nothing is found upright, try the image turned by 90, 180 "
        "and 270 degrees (phone photos without EXIF orientation); up to 6 more HOG passes.",
    )
    cascade_weak_threshold: float = Field(
        -0.5,
        description="Cascade: HOG boxes scoring from this up to detection_threshold are faces "
        "only when dlib's CNN, run on a small crop around the box, finds a face there (faces "
        "turned a little, behind sunglasses or shaded score just below 0); for the largest face "
        "only boxes larger than every full-score face are checked, for every face all of them. "
        "Not below detection_threshold: no second opinion.",
    )
    cascade_confirm_max: int = Field(
        4,
        ge=0,
        description="Cascade: at most this many weak boxes checked by the CNN per step; 0: "
        "no second opinion.",
    )
    max_image_pixels: int = Field(40_000_000, ge=1024)
    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    workers: int = Field(4, ge=1, le=64, description="Concurrent requests served.")
    max_batch: int = Field(32, ge=1, le=256, description="Faces embedded in one model call.")
    # 0: on a CPU with LiteRT a face costs the same alone or in a batch of 32
    # (BENCHMARKS, "Embedder speed"), so a wait is pure latency; calls that
    # arrive while the model runs still share its next call.
    batch_wait_ms: float = Field(
        0.0,
        ge=0,
        description="Wait for more faces before a model call, milliseconds (0: none).",
    )
    runtime: Literal["auto", "litert", "keras"] = Field(
        "auto",
        description="How likeness-mobilenet runs: litert (the artifact's LiteRT file, fastest "
        "on a CPU), keras (TensorFlow), auto = litert when the artifact ships it.",
    )
    tf_threads: int = Field(
        1,
        ge=0,
        description="Threads per model call (LiteRT, or TensorFlow's intra- and inter-op); "
        "0 = the runtime's default (all cores). One thread is fastest per face on small hosts "
        "and leaves the other cores to detection.",
    )
    grace_s: float = Field(5.0, ge=0, description="Shutdown drains in-flight calls this long.")
    log_level: str = "INFO"
    tls_cert: Path | None = Field(None, description="PEM certificate chain; needs tls_key.")
    tls_key: Path | None = Field(
        None, validate_default=True, description="PEM private key; needs tls_cert."
    )
    api_key: ServiceKey | None = Field(
        None,
        description="Shared key: every call but the gRPC health service must send "
        "'authorization: Bearer <key>' (the registry's embedder_api_key); at least "
        f"{MIN_KEY_LENGTH} printable ASCII characters. Unset = no authentication, "
        "the local default: set it whenever the port is reachable from other hosts.",
    )

    @field_validator("tls_key")
    @classmethod
    def _tls_needs_both(cls, key: Path | None, info: ValidationInfo) -> Path | None:
        # One without the other would silently serve plaintext. A field (not
        # model) validator, so that the error names a setting: tls_key runs
        # after tls_cert and sees it, default included.
        if (info.data.get("tls_cert") is None) != (key is None):
            raise ValueError("tls_cert and tls_key must be set together (or neither)")
        return key
