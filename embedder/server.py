"""The Embedder gRPC server: the model, the pipeline and the servicer in
the shared serving shell (:mod:`likeness.serving`).

With ``api_key`` set, every call must present it (``authorization: Bearer
<key>``, see :mod:`likeness.service_key`) except the gRPC health service,
which stays open so that orchestrators and the container probe need no
secret: it says only SERVING or not. Reflection needs the key.
"""

from __future__ import annotations

import logging

import grpc

from embedder.backends import load_backend
from embedder.batcher import Batcher
from embedder.cascade import CascadeConfig, DetectionCascade
from embedder.detect import FaceDetector
from embedder.metrics import EmbedderMetrics
from embedder.pipeline import FacePipeline
from embedder.servicer import EmbedderServicer
from embedder.settings import EmbedderSettings
from likeness import logs, serving
from likeness.interceptor import ErrorInterceptor
from likeness.service_key import ServiceKeyInterceptor
from likeness.tracing import TracingInterceptor
from likeness.v1 import embedder_pb2, embedder_pb2_grpc

log = logging.getLogger("likeness.embedder")
SERVICE_NAME = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name


def log_exposure(settings: EmbedderSettings) -> bool:
    """Log a warning, and return True, when ``settings`` serve other hosts
    (a bind address other than loopback) without a key."""
    if settings.api_key is not None or serving.is_loopback(settings.host):
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
    constructor (seconds), ``start()`` serves ``settings.host:settings.port``
    (port 0 picks a free one, see ``port``)."""

    def __init__(self, settings: EmbedderSettings) -> None:
        self.settings = settings
        self.backend = load_backend(
            settings.backend, settings.model_dir, settings.tf_threads, settings.runtime
        )
        detector = detection_cascade(settings)
        self.metrics = EmbedderMetrics()
        self.metrics_port: int | None = None
        self._batcher = Batcher(
            self.backend, settings.max_batch, settings.batch_wait_ms, self.metrics.observe_batch
        )
        self.pipeline = FacePipeline(
            detector,
            self._batcher,
            self.backend.manifest.input_size,
            settings.max_image_pixels,
            self.backend.manifest.crop_template,
            observer=self.metrics,
        )
        interceptors: list[grpc.ServerInterceptor] = [ErrorInterceptor(), TracingInterceptor()]
        if settings.api_key is not None:
            # First: a refused call reaches neither the servicer nor the log
            # of errors.
            interceptors.insert(0, ServiceKeyInterceptor(settings.api_key))
        servicer = EmbedderServicer(self.pipeline, self.backend)
        try:
            self._grpc = serving.GrpcServer(
                serving.Endpoint.of(settings),
                [
                    serving.Service(
                        SERVICE_NAME,
                        lambda s: embedder_pb2_grpc.add_EmbedderServicer_to_server(servicer, s),
                    )
                ],
                interceptors,
                thread_name="embed",
            )
        except BaseException:
            self._batcher.close()
            raise
        self.port = self._grpc.port
        self._stopped = False

    @property
    def address(self) -> str:
        return self._grpc.address

    def start(self) -> None:
        if self.settings.metrics_port:
            self.metrics_port = self.metrics.serve(self.settings.host, self.settings.metrics_port)
        self._grpc.start()
        self._grpc.set_health(serving.SERVING, ("", SERVICE_NAME))
        log.info(
            "embedder listening",
            extra={
                "address": self.address,
                "model": self.backend.manifest.fingerprint,
                "runtime": self.backend.runtime,
                "api_key_required": self.settings.api_key is not None,
                "metrics_port": self.metrics_port,
            },
        )
        log_exposure(self.settings)

    def stop(self, grace_s: float | None = None) -> None:
        """Refuse new calls, let in-flight ones finish for ``grace_s`` seconds
        (default: ``settings.grace_s``)."""
        if self._stopped:
            return
        self._stopped = True
        self._grpc.stop(self.settings.grace_s if grace_s is None else grace_s)
        self._batcher.close()
        self.metrics.stop()

    def wait(self) -> None:
        self._grpc.wait()


def detection_cascade(settings: EmbedderSettings) -> DetectionCascade:
    """The detection steps ``settings`` ask for (see ``EmbedderSettings.detector``)."""
    if settings.detector == "cascade":
        return DetectionCascade.of(
            CascadeConfig(
                fast_side=settings.cascade_fast_side,
                upsampled_side=settings.cascade_upsampled_side,
                small_side=settings.cascade_small_side,
                cnn=settings.cascade_cnn,
                cnn_side=settings.cascade_cnn_side,
                cnn_upsample=settings.cascade_cnn_upsample,
                rotations=settings.cascade_rotations,
                score_threshold=settings.detection_threshold,
                weak_threshold=settings.cascade_weak_threshold,
                confirm_max=settings.cascade_confirm_max,
            )
        )
    single = FaceDetector(
        kind=settings.detector,
        upsample=settings.upsample,
        score_threshold=settings.detection_threshold,
        max_side=settings.max_detect_side,
    )
    return DetectionCascade.single(settings.detector, single)


def create_server(settings: EmbedderSettings) -> EmbedderServer:
    """Build (load models, bind the port) without starting."""
    return EmbedderServer(settings)


def serve(settings: EmbedderSettings) -> None:
    """Run until SIGINT/SIGTERM, then drain in-flight calls for
    ``settings.grace_s`` seconds."""
    with serving.StopSignals() as signals:
        server = create_server(settings)
        server.start()
        try:
            signals.wait()
        finally:
            server.stop()


def main() -> None:
    settings = serving.settings_from_env(EmbedderSettings, "embedder")
    logs.configure(settings.log_level)
    serve(settings)


if __name__ == "__main__":
    main()
