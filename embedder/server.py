"""The Embedder gRPC server: construction, health, reflection, shutdown.

With ``api_key`` set, every call must present it (``authorization: Bearer
<key>``, see :mod:`likeness.service_key`) except the gRPC health service,
which stays open so that orchestrators and the container probe need no
secret: it says only SERVING or not. Reflection needs the key.
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from pydantic import ValidationError

from embedder.backends import load_backend
from embedder.batcher import Batcher
from embedder.detect import FaceDetector
from embedder.pipeline import FacePipeline
from embedder.servicer import EmbedderServicer
from embedder.settings import EmbedderSettings, is_loopback
from likeness import logs
from likeness.interceptor import ErrorInterceptor
from likeness.service_key import ServiceKeyInterceptor
from likeness.v1 import embedder_pb2, embedder_pb2_grpc

log = logging.getLogger("likeness.embedder")
SERVICE_NAME = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name


def log_exposure(settings: EmbedderSettings) -> bool:
    """Log a warning, and return True, when ``settings`` serve other hosts
    (a bind address other than loopback) without a key."""
    if settings.api_key is not None or is_loopback(settings.host):
        return False
    log.warning(
        "embedder serves other hosts without a key: anyone who reaches the port can "
        "embed faces; set LIKENESS_EMBEDDER_API_KEY (and the registry's "
        "LIKENESS_REGISTRY_EMBEDDER_API_KEY)",
        extra={"host": settings.host, "port": settings.port},
    )
    return True


class EmbedderServer:
    """A started-on-demand Embedder: the model and detector load in the
    constructor (seconds), ``start()`` binds ``settings.host:settings.port``
    (port 0 picks a free one, see ``port``)."""

    def __init__(self, settings: EmbedderSettings) -> None:
        self.settings = settings
        self.backend = load_backend(
            settings.backend, settings.model_dir, settings.tf_threads, settings.runtime
        )
        detector = FaceDetector(
            kind=settings.detector,
            upsample=settings.upsample,
            score_threshold=settings.detection_threshold,
            max_side=settings.max_detect_side,
        )
        self._batcher = Batcher(self.backend, settings.max_batch, settings.batch_wait_ms)
        self.pipeline = FacePipeline(
            detector,
            self._batcher,
            self.backend.manifest.input_size,
            settings.max_image_pixels,
            self.backend.manifest.crop_template,
        )
        self._health = health.HealthServicer()
        options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ]
        interceptors: list[grpc.ServerInterceptor] = [ErrorInterceptor()]
        if settings.api_key is not None:
            # First: a refused call reaches neither the servicer nor the log
            # of errors.
            interceptors.insert(0, ServiceKeyInterceptor(settings.api_key))
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="embed"),
            interceptors=interceptors,
            options=options,
            maximum_concurrent_rpcs=settings.workers * 16,
        )
        embedder_pb2_grpc.add_EmbedderServicer_to_server(
            EmbedderServicer(self.pipeline, self.backend), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        address = f"{settings.host}:{settings.port}"
        # EmbedderSettings guarantees both or neither are set.
        if settings.tls_cert is not None and settings.tls_key is not None:
            creds = grpc.ssl_server_credentials(
                [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())]
            )
            self.port = self._server.add_secure_port(address, creds)
        else:
            self.port = self._server.add_insecure_port(address)
        self._stopped = threading.Event()

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    def start(self) -> None:
        self._server.start()
        for name in ("", SERVICE_NAME):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "embedder listening",
            extra={
                "address": self.address,
                "model": self.backend.manifest.fingerprint,
                "runtime": self.backend.runtime,
                "api_key_required": self.settings.api_key is not None,
            },
        )
        log_exposure(self.settings)

    def stop(self, grace_s: float | None = None) -> None:
        """Refuse new calls, let in-flight ones finish for ``grace_s`` seconds
        (default: ``settings.grace_s``)."""
        grace = self.settings.grace_s if grace_s is None else grace_s
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        self._batcher.close()
        self._stopped.set()

    def wait(self) -> None:
        self._stopped.wait()


def create_server(settings: EmbedderSettings) -> EmbedderServer:
    """Build (load models, bind the port) without starting."""
    return EmbedderServer(settings)


def serve(settings: EmbedderSettings) -> None:
    """Run until SIGINT/SIGTERM, then drain in-flight calls for
    ``settings.grace_s`` seconds."""
    server = create_server(settings)
    server.start()

    def _stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.wait()


def main() -> None:
    try:
        settings = EmbedderSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise SystemExit(f"embedder: invalid settings: {problems}") from None
    logs.configure(settings.log_level)
    serve(settings)


if __name__ == "__main__":
    main()
