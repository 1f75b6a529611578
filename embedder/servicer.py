"""Embedder gRPC servicer: protobuf <-> pipeline values, nothing else."""

from __future__ import annotations

import logging

import grpc

from embedder.backends import EmbeddingBackend
from embedder.pipeline import EmbedResult, FacePipeline
from likeness import operating_points, request_id
from likeness.errors import DeadlineExceeded, InvalidArgument, LikenessError
from likeness.quality import quality_to_pb
from likeness.selection import FaceSelection, from_pb
from likeness.status import status_of
from likeness.v1 import common_pb2, embedder_pb2, embedder_pb2_grpc

log = logging.getLogger("likeness.embedder")

MAX_BATCH_ITEMS = 64


def result_to_proto(result: EmbedResult, fingerprint: str) -> embedder_pb2.EmbedResponse:
    faces = []
    for face in result.faces:
        left, top, right, bottom = face.box
        faces.append(
            embedder_pb2.Face(
                box=common_pb2.BoundingBox(left=left, top=top, right=right, bottom=bottom),
                landmarks=[common_pb2.Point(x=float(x), y=float(y)) for x, y in face.landmarks],
                detection_score=face.detection_score,
                quality=quality_to_pb(face.quality),
                embedding=common_pb2.Embedding(
                    values=face.vector.tolist(), model_fingerprint=fingerprint
                ),
                detector=face.detector,
            )
        )
    return embedder_pb2.EmbedResponse(
        faces=faces,
        image_width=result.width,
        image_height=result.height,
        detection_steps=result.detection_steps,
    )


class EmbedderServicer(embedder_pb2_grpc.EmbedderServicer):
    """Serves Embed, EmbedBatch and Info over one pipeline and backend."""

    def __init__(self, pipeline: FacePipeline, backend: EmbeddingBackend) -> None:
        self._pipeline = pipeline
        self._manifest = backend.manifest
        self._backend_name = backend.manifest.backend

    def _embed(
        self, request: embedder_pb2.EmbedRequest, context: grpc.ServicerContext
    ) -> embedder_pb2.EmbedResponse:
        remaining: float | None = context.time_remaining()
        if not context.is_active() or (remaining is not None and remaining <= 0):
            # The caller has gone: detecting and embedding would be wasted.
            raise DeadlineExceeded("deadline passed or call cancelled before the image was read")
        if remaining is not None and remaining > 1e6:
            remaining = None  # no deadline set by the client
        result = self._pipeline.process(
            request.image, from_pb(request.selection, FaceSelection.LARGEST), timeout_s=remaining
        )
        return result_to_proto(result, self._manifest.fingerprint)

    def Embed(  # noqa: N802 (gRPC method name)
        self, request: embedder_pb2.EmbedRequest, context: grpc.ServicerContext
    ) -> embedder_pb2.EmbedResponse:
        return self._embed(request, context)

    def EmbedBatch(  # noqa: N802
        self, request: embedder_pb2.EmbedBatchRequest, context: grpc.ServicerContext
    ) -> embedder_pb2.EmbedBatchResponse:
        if len(request.items) > MAX_BATCH_ITEMS:
            raise InvalidArgument(
                f"items: {len(request.items)} images, at most {MAX_BATCH_ITEMS} per batch"
            )
        results = []
        expired: embedder_pb2.ItemError | None = None
        for index, item in enumerate(request.items):
            if expired is not None:
                # Past the deadline every later item would fail the same way.
                results.append(embedder_pb2.EmbedBatchResult(error=expired))
                continue
            try:
                results.append(embedder_pb2.EmbedBatchResult(response=self._embed(item, context)))
            except LikenessError as exc:
                error = embedder_pb2.ItemError(
                    code=status_of(exc).value[0],
                    message=str(exc),
                    reason=exc.reason or "",
                    reason_metadata=exc.metadata,
                )
                results.append(embedder_pb2.EmbedBatchResult(error=error))
                if isinstance(exc, DeadlineExceeded):
                    expired = error
            except Exception:
                # One image must not fail the others; like the interceptor, the
                # client gets only the request id, the log gets the traceback.
                rid = request_id.of_call(context)
                log.exception(
                    "unhandled error in a batch item",
                    extra={"method": "EmbedBatch", "item": index, "request_id": rid},
                )
                error = embedder_pb2.ItemError(
                    code=grpc.StatusCode.INTERNAL.value[0],
                    message=f"internal error (request id {rid})",
                )
                results.append(embedder_pb2.EmbedBatchResult(error=error))
        return embedder_pb2.EmbedBatchResponse(results=results)

    def Info(  # noqa: N802
        self, request: embedder_pb2.InfoRequest, context: grpc.ServicerContext
    ) -> embedder_pb2.InfoResponse:
        m = self._manifest
        points, default = m.points
        return embedder_pb2.InfoResponse(
            backend=self._backend_name,
            model_id=m.model_id,
            model_fingerprint=m.fingerprint,
            dim=m.dim,
            default_threshold=m.default_threshold,
            input_size=m.input_size,
            detections_by_step=self._pipeline.detections_by_step(),
            operating_points=[operating_points.to_proto(p) for p in points],
            default_operating_point=default,
        )
