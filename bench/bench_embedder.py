"""Benchmark of the Embedder: our model and pipeline against dlib's.

    .venv/bin/python -m bench.bench_embedder [--images 500] [FOLDER]

FOLDER defaults to ../shared/datasets/lfw/images_deepfunneled (any folder
tree of JPEGs works). The same images (``--images`` of them, drawn with a
fixed seed from the sorted file list, then sorted) feed every variant; calls
of the variants being compared alternate in blocks of 20 images, so load
drifting on a shared machine hits both alike and the same-run ratios stay
fair.

1. Embedding step, per face, on faces already detected and landmarked once
   up front (the largest face of each image):
   - ours: ``MobileNetBackend.embed`` on the aligned crop and its landmarks,
     with flip test-time augmentation when the manifest asks for it (as
     served);
   - dlib-resnet: ``compute_face_descriptor`` on dlib's 150 px chip
     (``get_face_chip``, padding 0.25: what the descriptor does inside), from
     the same 68 landmarks;
   each with one face per call, and in batches of ``--batch`` faces.
2. End to end, image bytes -> embedding of the largest face:
   - ours: ``FacePipeline.process`` of the service as built by
     ``embedder.server.create_server`` from ``EmbedderSettings()`` (decode,
     detection cascade, 68 landmarks, alignment, quality, batcher, model);
   - ours over gRPC: one ``Embed`` call per image to that service, started
     on a loopback port (what a client sees); its times are also split by
     the detection steps each call ran (the cost of escalating);
   - a face_recognition-style dlib pipeline built from dlib calls: Pillow
     decode to RGB, HOG (upsample 1), 68 landmarks, ResNet descriptor.

Targets: embedding step >= 10x faster than dlib-resnet per face (median,
single-face calls); end to end over gRPC >= 5x the dlib pipeline (medians).
Threads per model call are set from ``EmbedderSettings.tf_threads`` as the
service does (0 = the runtime's default). Our model runs on the service's
runtime (``EmbedderSettings.runtime``: LiteRT when the artifact ships it);
when that is not Keras, the same artifact through Keras is timed in the same
blocks, for the served runtime's same-run gain.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from PIL import Image

from embedder.align import align_face
from embedder.backends import DEFAULT_MODEL, FaceInput, MobileNetBackend, manifest_views
from embedder.decode import decode_image
from embedder.detect import FaceDetector
from embedder.dlib_models import RESNET, SHAPE_68, dlib_model_path
from embedder.server import create_server
from embedder.settings import EmbedderSettings
from likeness.errors import LikenessError
from likeness.v1 import embedder_pb2, embedder_pb2_grpc

DEFAULT_FOLDER = Path("../shared/datasets/lfw/images_deepfunneled")
SEED = 20261124
#: Items per block of alternating variants (see :func:`alternate`).
BLOCK = 20


@dataclass(frozen=True)
class Stats:
    """Seconds per item of one variant."""

    times: np.ndarray

    @property
    def median_ms(self) -> float:
        return float(np.median(self.times) * 1000)

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.times, 90) * 1000)

    @property
    def per_s(self) -> float:
        return float(len(self.times) / self.times.sum())


def pick_images(folder: Path, count: int, seed: int = SEED) -> list[Path]:
    """``count`` JPEGs of ``folder`` (recursively), drawn with ``seed`` from the
    sorted list, returned sorted."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg"})
    if len(files) < count:
        raise SystemExit(f"{folder} holds {len(files)} JPEGs, fewer than {count}")
    return sorted(random.Random(seed).sample(files, count))


class DlibPipeline:
    """face_recognition's encoding path, from dlib calls: image bytes -> RGB
    (Pillow) -> HOG (upsample 1) -> 68 landmarks -> ResNet descriptor of the
    largest face (None when no face)."""

    def __init__(self) -> None:
        import dlib

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(dlib_model_path(SHAPE_68)))
        self.net = dlib.face_recognition_model_v1(str(dlib_model_path(RESNET)))

    def process(self, data: bytes) -> np.ndarray | None:
        image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        rects = self._detector(image, 1)
        if not rects:
            return None
        rect = max(rects, key=lambda r: r.area())
        shape = self._predictor(image, rect)
        return np.asarray(self.net.compute_face_descriptor(image, shape))

    def chip(self, face: FaceInput) -> np.ndarray:
        """dlib's aligned 150 px chip of a face, from its 68 landmarks."""
        dlib = self._dlib
        left, top, right, bottom = face.detection.box
        shape = dlib.full_object_detection(
            dlib.rectangle(left, top, right - 1, bottom - 1),
            [dlib.point(round(float(x)), round(float(y))) for x, y in face.detection.landmarks],
        )
        chip: np.ndarray = dlib.get_face_chip(face.image, shape, size=150, padding=0.25)
        return chip


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(count: int, *variants: Callable[[int], Any], block: int = BLOCK) -> tuple[Stats, ...]:
    """Seconds of ``variant(i)`` for each variant and each i < count, run in
    blocks of ``block`` items that rotate through the variants (each block
    starts with the next one), each block after one untimed call (so no
    variant pays for another having just evicted its weights from the CPU
    caches)."""
    out = [np.zeros(count) for _ in variants]
    for start in range(0, count, block):
        items = range(start, min(start + block, count))
        shift = (start // block) % len(variants)
        for k in [*range(shift, len(variants)), *range(shift)]:
            variants[k](start)
            for i in items:
                out[k][i] = _timed(functools.partial(variants[k], i))
    return tuple(Stats(times) for times in out)


def batched(count: int, size: int, *variants: Callable[[slice], Any]) -> tuple[Stats, ...]:
    """Per-face seconds of batched calls over ``count`` faces in batches of
    ``size``, the variants taking turns on each batch."""
    parts = [slice(start, min(start + size, count)) for start in range(0, count, size)]
    for fn in variants:
        fn(parts[0])
    out = [np.zeros(len(parts)) for _ in variants]
    for j, part in enumerate(parts):
        for k, fn in enumerate(variants):
            out[k][j] = _timed(functools.partial(fn, part)) / (part.stop - part.start)
    return tuple(Stats(times) for times in out)


def _row(name: str, s: Stats) -> str:
    return f"| {name} | {s.median_ms:.2f} | {s.p90_ms:.2f} | {s.per_s:.1f} |"


def report(
    args: argparse.Namespace,
    backend: MobileNetBackend,
    faces: int,
    single: tuple[Stats, ...],
    batch: tuple[Stats, ...],
    e2e: tuple[Stats, ...],
    no_face: tuple[int, int, int],
    steps: np.ndarray,
    threads: int,
    load: Sequence[float],
) -> str:
    ours_1, dlib_1, *keras_1 = single
    ours_b, dlib_b, *keras_b = batch
    ours_e, dlib_e, grpc_e = e2e
    runtime = backend.runtime
    lines = [
        f"Images: {args.images} from {args.folder} (seed {SEED}); faces embedded: {faces}.",
        f"Model: {backend.manifest.fingerprint} (test-time views per face: "
        f"{manifest_views(backend.manifest).count}); served runtime: {runtime}; "
        f"threads per model call: {threads or 'runtime default'}; CPUs: {os.cpu_count()}; "
        f"{platform.processor() or ''}",
        f"Load average at start / end: {load[0]:.1f} / {load[1]:.1f}.",
        "",
        "Embedding step, per face (ms; /s = faces per second):",
        "",
        "| variant | median | p90 | /s |",
        "| --- | ---: | ---: | ---: |",
        _row(f"ours ({runtime}), 1 face per call", ours_1),
        *[_row("ours (keras), 1 face per call", s) for s in keras_1],
        _row("dlib-resnet, 1 face per call", dlib_1),
        _row(f"ours ({runtime}), batches of {args.batch}", ours_b),
        *[_row(f"ours (keras), batches of {args.batch}", s) for s in keras_b],
        _row(f"dlib-resnet, batches of {args.batch}", dlib_b),
        "",
        f"Embedding step speed-up (dlib median / ours median): "
        f"{dlib_1.median_ms / ours_1.median_ms:.1f}x single, "
        f"{dlib_b.median_ms / ours_b.median_ms:.1f}x batched (target >= 10x).",
        *[
            f"Served runtime against Keras (keras median / {runtime} median): "
            f"{k1.median_ms / ours_1.median_ms:.1f}x single, "
            f"{kb.median_ms / ours_b.median_ms:.1f}x batched."
            for k1, kb in zip(keras_1, keras_b, strict=True)
        ],
        "",
        "End to end, image bytes -> embedding of the largest face, per image:",
        "",
        "| pipeline | median | p90 | images/s |",
        "| --- | ---: | ---: | ---: |",
        _row("ours (FacePipeline.process, in process)", ours_e),
        _row("ours (one Embed call over gRPC, loopback)", grpc_e),
        _row("dlib (HOG + 68 landmarks + ResNet)", dlib_e),
        "",
        f"End-to-end speed-up: in process {dlib_e.median_ms / ours_e.median_ms:.1f}x "
        f"(medians), {ours_e.per_s / dlib_e.per_s:.1f}x (images/s); over gRPC "
        f"{dlib_e.median_ms / grpc_e.median_ms:.1f}x (medians), "
        f"{grpc_e.per_s / dlib_e.per_s:.1f}x (images/s) (target >= 5x). "
        f"Images without a face: ours {no_face[0]} (gRPC {no_face[2]}), dlib {no_face[1]}.",
        "",
        "Escalation cost (gRPC calls by detection steps run; -1: no face, every step ran):",
        "",
        "| detection steps | images | median | p90 |",
        "| ---: | ---: | ---: | ---: |",
        *[
            f"| {k} | {int((steps == k).sum())} | "
            f"{Stats(grpc_e.times[steps == k]).median_ms:.1f} | "
            f"{Stats(grpc_e.times[steps == k]).p90_ms:.1f} |"
            for k in sorted(set(steps.tolist()))
        ],
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--batch", type=int, default=32, help="faces per batched call")
    args = parser.parse_args(argv)

    load_start = os.getloadavg()[0]
    paths = pick_images(args.folder, args.images)
    blobs = [p.read_bytes() for p in paths]

    settings = EmbedderSettings(port=0)
    service = create_server(settings)  # built, never started: no port is served
    backend = service.backend
    if not isinstance(backend, MobileNetBackend):
        raise SystemExit("set LIKENESS_EMBEDDER_BACKEND=likeness-mobilenet to benchmark our model")
    # The Keras runtime of the same artifact, for the served runtime's gain.
    keras = (
        [MobileNetBackend(settings.model_dir or DEFAULT_MODEL, settings.tf_threads, "keras")]
        if backend.runtime != "keras"
        else []
    )
    dlib_pipe = DlibPipeline()
    # The faces of the embedding-step timings: found by the same HOG pass for both.
    detector = FaceDetector("hog", 1, settings.detection_threshold, settings.max_detect_side)
    size = backend.manifest.input_size

    # Faces detected and landmarked once, for the embedding-step timings.
    faces: list[FaceInput] = []
    for data in blobs:
        image = decode_image(data)
        found = detector.detect(image)
        if found:
            aligned = align_face(image, found[0].landmarks, size, backend.manifest.crop_template)
            faces.append(FaceInput(image, found[0], aligned))
    chips = [dlib_pipe.chip(face) for face in faces]
    crops = np.stack([f.aligned.crop for f in faces])
    marks = np.stack([f.aligned.landmarks for f in faces])
    net = dlib_pipe.net

    single = alternate(
        len(faces),
        lambda i: backend.embed_arrays(crops[i : i + 1], marks[i : i + 1]),
        lambda i: net.compute_face_descriptor(chips[i]),
        *[
            functools.partial(lambda b, i: b.embed_arrays(crops[i : i + 1], marks[i : i + 1]), b)
            for b in keras
        ],
    )
    batch = batched(
        len(faces),
        args.batch,
        lambda s: backend.embed_arrays(crops[s], marks[s]),
        lambda s: net.compute_face_descriptor(chips[s]),
        *[functools.partial(lambda b, s: b.embed_arrays(crops[s], marks[s]), b) for b in keras],
    )

    missed: tuple[set[int], set[int], set[int]] = (set(), set(), set())
    steps = np.zeros(len(blobs), dtype=int)

    def ours(i: int) -> None:
        try:
            service.pipeline.process(blobs[i])
        except LikenessError:
            missed[0].add(i)

    service.start()
    channel = grpc.insecure_channel(service.address)
    stub = embedder_pb2_grpc.EmbedderStub(channel)

    def over_grpc(i: int) -> None:
        try:
            reply = stub.Embed(embedder_pb2.EmbedRequest(image=blobs[i]), timeout=120)
            steps[i] = reply.detection_steps
        except grpc.RpcError:
            missed[2].add(i)
            steps[i] = -1  # no face: every step ran

    def theirs(i: int) -> None:
        if dlib_pipe.process(blobs[i]) is None:
            missed[1].add(i)

    e2e = alternate(len(blobs), ours, theirs, over_grpc)
    no_face = (len(missed[0]), len(missed[1]), len(missed[2]))
    channel.close()
    service.stop(0)
    text = report(
        args,
        backend,
        len(faces),
        single,
        batch,
        e2e,
        no_face,
        steps,
        settings.tf_threads,
        (load_start, os.getloadavg()[0]),
    )
    print(text)


if __name__ == "__main__":
    main()
