"""Prometheus metrics of the embedder, served over HTTP at ``/metrics``.

- ``likeness_embedder_stage_seconds{stage}``: wall seconds of each pipeline
  stage per image: decode, detect (face boxes), landmarks (68 points of
  every face found), align (crops of the selected faces), embed (waiting for
  and running the model's batch);
- ``likeness_embedder_faces_per_image``: faces embedded per image;
- ``likeness_embedder_batch_faces``: faces per model call (micro-batching);
- ``likeness_embedder_images_total{outcome}``: images processed, by outcome
  (ok, or the domain error's name, e.g. NotFound for no face).

The detector has no escalation (one detector per server), so there is no
escalation counter. Each server has its own collector registry, so several
servers (tests) can live in one process.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

STAGES = ("decode", "detect", "landmarks", "align", "embed")
_STAGE_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
_COUNT_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256)


class EmbedderMetrics:
    """The embedder's collectors; it is the pipeline's and the batcher's
    observer (see :class:`embedder.pipeline.StageObserver`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.stage = Histogram(
            "likeness_embedder_stage_seconds",
            "Seconds per image spent in each pipeline stage.",
            ("stage",),
            buckets=_STAGE_BUCKETS_S,
            registry=self.registry,
        )
        self.faces = Histogram(
            "likeness_embedder_faces_per_image",
            "Faces embedded per image.",
            buckets=_COUNT_BUCKETS,
            registry=self.registry,
        )
        self.batch = Histogram(
            "likeness_embedder_batch_faces",
            "Faces per model call.",
            buckets=_COUNT_BUCKETS,
            registry=self.registry,
        )
        self.images = Counter(
            "likeness_embedder_images",
            "Images processed, by outcome (ok or the error's name).",
            ("outcome",),
            registry=self.registry,
        )
        self._httpd: Any = None

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage.labels(stage=stage).observe(seconds)

    def observe_image(self, outcome: str, faces: int) -> None:
        self.images.labels(outcome=outcome).inc()
        if outcome == "ok":
            self.faces.observe(faces)

    def observe_batch(self, faces: int) -> None:
        self.batch.observe(faces)

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port``; returns the bound port."""
        httpd, _ = start_http_server(port, addr=host, registry=self.registry)
        self._httpd = httpd
        return int(httpd.server_port)

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
