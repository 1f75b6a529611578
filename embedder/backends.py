"""Embedding backends: turn detected, aligned faces into L2-normalised vectors.

Two backends share the :class:`EmbeddingBackend` interface:
- ``likeness-mobilenet``: the shipped MobileNetV2 + landmark model (fast),
  served through LiteRT or Keras;
- ``dlib-resnet``: dlib's 128-d ResNet from face_recognition_models, the
  reference our model is measured against.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from embedder.align import AlignedFace
from embedder.detect import Detection
from embedder.dlib_models import RESNET, dlib_model_path
from embedder.litert import LiteRTModel
from embedder.manifest import Manifest, load_manifest
from embedder.model import InferenceViews, ModelConfig, input_signature, load_model, model_inputs
from likeness.errors import FailedPrecondition

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = MODELS_DIR / "likeness-mobilenet"
DLIB_MODEL = MODELS_DIR / "dlib-resnet"

#: How the likeness-mobilenet network runs (see MobileNetBackend).
Runtime = Literal["auto", "litert", "keras"]


@dataclass(frozen=True)
class FaceInput:
    """One face to embed: the whole RGB image, its detection and its aligned crop."""

    image: np.ndarray
    detection: Detection
    aligned: AlignedFace


class EmbeddingBackend(Protocol):
    """Embeds faces; ``manifest`` describes the model (dim, threshold, fingerprint)."""

    manifest: Manifest
    #: What runs the network: "litert", "keras" or "dlib".
    runtime: str

    def embed(self, faces: Sequence[FaceInput]) -> np.ndarray:
        """(len(faces), dim) float32 L2-normalised embeddings; thread-safe."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: np.ndarray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


class MobileNetBackend:
    """The Likeness model from an artifact folder (manifest + weights).

    ``runtime``: "litert" runs the artifact's LiteRT flatbuffer (manifest key
    ``litert``; several times faster on a CPU, no TensorFlow needed), "keras"
    rebuilds the network in Keras from the weights and runs it as one traced
    ``tf.function`` (batches of any size never retrace), "auto" takes LiteRT
    when the artifact ships it. Both give the same embeddings to float32
    rounding. ``threads``: threads per model call; 0 = the runtime's default.
    Each face is embedded as the test-time views the manifest names
    (``flip_tta``: its mirror image too; ``shift_tta_px``: shifted copies;
    embedder.model.InferenceViews), summed and normalised.
    """

    def __init__(
        self, folder: Path = DEFAULT_MODEL, tf_threads: int = 0, runtime: Runtime = "auto"
    ) -> None:
        self.manifest = load_manifest(folder)
        cfg = ModelConfig.from_dict(self.manifest.config)
        self._config = cfg
        self._views = manifest_views(self.manifest)
        litert_file = self.manifest.extra.get("litert")
        if runtime == "litert" and not litert_file:
            raise FailedPrecondition(
                f"model {self.manifest.fingerprint} in {folder} ships no LiteRT file;"
                " export it again or use the keras runtime"
            )
        self._fn: Callable[[dict[str, np.ndarray]], Any]
        if litert_file and runtime != "keras":
            # The manifest hashed the file only if it lists it among its files.
            if litert_file not in self.manifest.files:
                raise FailedPrecondition(f"{litert_file} is not hashed in {folder}'s manifest")
            self.runtime = "litert"
            self._fn = LiteRTModel(folder / litert_file, tf_threads)
        else:
            self.runtime = "keras"
            self._fn = _keras_function(folder / self.manifest.weights, cfg, tf_threads)
        size = cfg.input_size
        self.embed_arrays(np.zeros((1, size, size, 3), np.uint8), np.zeros((1, 68, 2), np.float32))

    def embed_arrays(self, crops: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Embed aligned crops (N, S, S, 3) uint8 with landmarks (N, 68, 2) in crop pixels."""
        size = self._config.input_size
        # All views of all faces in one call: on a CPU a call of a few faces
        # costs mostly per-call dispatch, so one call of V*N beats V of N.
        view_crops, view_marks = self._views.apply(crops, landmarks, size)
        outputs = np.asarray(self._fn(model_inputs(view_crops, view_marks, size)))
        return _normalise(self._views.sum(outputs))

    def embed(self, faces: Sequence[FaceInput]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.manifest.dim), np.float32)
        crops = np.stack([f.aligned.crop for f in faces])
        marks = np.stack([f.aligned.landmarks for f in faces])
        return self.embed_arrays(crops, marks)


def manifest_views(manifest: Manifest) -> InferenceViews:
    """The test-time views a likeness-mobilenet manifest asks for
    (``flip_tta``, ``shift_tta_px``; artifacts before them: none)."""
    return InferenceViews(
        flip=bool(manifest.extra.get("flip_tta", False)),
        shift_px=int(manifest.extra.get("shift_tta_px", 0)),
    )


def _keras_function(
    weights: Path, cfg: ModelConfig, threads: int
) -> Callable[[dict[str, np.ndarray]], Any]:
    import tensorflow as tf

    if threads:
        # RuntimeError: TF was initialised by an earlier backend in this process.
        with contextlib.suppress(RuntimeError):
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
    model = load_model(cfg, weights)
    fn: Callable[[dict[str, np.ndarray]], Any] = tf.function(
        lambda x: model(x, training=False), input_signature=[input_signature(cfg)]
    )
    return fn


class DlibResnetBackend:
    """dlib's ResNet face descriptor (128-d), computed on dlib's own 150 px
    chip from the 68 landmarks, then L2-normalised for cosine similarity."""

    def __init__(self, folder: Path = DLIB_MODEL) -> None:
        import dlib

        weights = dlib_model_path(RESNET)
        self.manifest = load_manifest(folder, weights_dir=weights.parent)
        self.runtime = "dlib"
        self._dlib = dlib
        self._net = dlib.face_recognition_model_v1(str(weights))
        self._lock = threading.Lock()

    def embed(self, faces: Sequence[FaceInput]) -> np.ndarray:
        dlib = self._dlib
        out = []
        for face in faces:
            left, top, right, bottom = face.detection.box
            shape = dlib.full_object_detection(
                dlib.rectangle(left, top, right - 1, bottom - 1),
                [dlib.point(round(float(x)), round(float(y))) for x, y in face.detection.landmarks],
            )
            with self._lock:
                out.append(np.array(self._net.compute_face_descriptor(face.image, shape)))
        if not out:
            return np.zeros((0, self.manifest.dim), np.float32)
        return _normalise(np.stack(out))


def load_backend(
    name: str, model_dir: Path | None = None, tf_threads: int = 0, runtime: Runtime = "auto"
) -> EmbeddingBackend:
    """Construct the backend called ``name`` ("likeness-mobilenet" or
    "dlib-resnet"); ``tf_threads`` and ``runtime`` as in MobileNetBackend."""
    if name == "likeness-mobilenet":
        return MobileNetBackend(model_dir or DEFAULT_MODEL, tf_threads=tf_threads, runtime=runtime)
    if name == "dlib-resnet":
        return DlibResnetBackend(model_dir or DLIB_MODEL)
    raise ValueError(f"unknown backend {name!r}")
