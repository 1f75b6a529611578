"""The Likeness embedding network: MobileNetV2 on the aligned crop plus a
landmark branch, fused into an L2-normalised embedding.

Shared by serving (embedder.backends) and training (trainer): both build the
network here and feed it through :func:`model_inputs`, so preprocessing can
never drift between them. What only training needs (ImageNet weights,
backbone lookups) lives in trainer.network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedder.landmarks import NUM_LANDMARKS, flip_landmarks, normalise_landmarks


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: ``alpha`` MobileNetV2 width, ``input_size`` crop side in
    pixels, ``dim`` embedding length, ``landmark_branch`` whether the 68
    normalised landmarks feed the embedding, ``template`` the crop's
    alignment template (see embedder.align.TEMPLATES; serving aligns with
    the model's own)."""

    alpha: float = 0.35
    input_size: int = 112
    dim: int = 128
    landmark_branch: bool = True
    template: str = "arcface"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ModelConfig:
        """The config a manifest or run folder recorded. Artifacts written
        while ensembles existed (removed; see git history) record
        ``"towers": 1``, which is this network; more towers is refused."""
        d = dict(d)
        towers = d.pop("towers", 1)
        if towers != 1:
            raise ValueError(f"a model of {towers} towers (an ensemble) is no longer supported")
        return ModelConfig(**d)


def model_inputs(crops: np.ndarray, landmarks: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Network inputs from aligned crops (N, size, size, 3) RGB uint8 and their
    landmarks (N, 68, 2) in crop pixels: pixels stay 0-255 float32 (the
    network rescales), landmarks are normalised to [-1, 1] and flattened."""
    return {
        "image": crops.astype(np.float32),
        "landmarks": normalise_landmarks(landmarks, size).reshape(len(crops), NUM_LANDMARKS * 2),
    }


def build_model(config: ModelConfig) -> Any:
    """A Keras model mapping {"image": (N, S, S, 3) float32 0-255, "landmarks":
    (N, 136) float32 in [-1, 1]} to (N, dim) L2-normalised embeddings."""
    import keras
    from keras import layers

    size = config.input_size
    image = keras.Input((size, size, 3), name="image")
    marks = keras.Input((NUM_LANDMARKS * 2,), name="landmarks")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit_range")(image)
    backbone = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=config.alpha, include_top=False, weights=None
    )
    features = backbone(x)
    # Global depthwise convolution (MobileFaceNet): keeps where on the face a
    # feature fired, which global average pooling would throw away.
    side = features.shape[1]
    x = layers.DepthwiseConv2D(side, padding="valid", use_bias=False, name="gdc")(features)
    x = layers.BatchNormalization(name="gdc_bn")(x)
    x = layers.Flatten(name="gdc_flat")(x)
    x = layers.Dropout(0.2, name="gdc_dropout")(x)
    if config.landmark_branch:
        m = layers.Dense(128, activation="relu", name="lm_dense1")(marks)
        m = layers.Dense(64, activation="relu", name="lm_dense2")(m)
        x = layers.Concatenate(name="fuse")([x, m])
    x = layers.Dense(config.dim, use_bias=False, name="embedding_dense")(x)
    x = layers.BatchNormalization(name="embedding_bn")(x)
    out = layers.UnitNormalization(axis=-1, name="embedding")(x)
    return keras.Model({"image": image, "landmarks": marks}, out, name="likeness_embedder")


def load_model(config: ModelConfig, weights: Path) -> Any:
    """The network of :func:`build_model` with the Keras weights file ``weights``."""
    model = build_model(config)
    model.load_weights(str(weights))
    return model


def input_signature(config: ModelConfig) -> dict[str, Any]:
    """TensorFlow input specs of the network, any batch size N: "image" (N,
    S, S, 3) and "landmarks" (N, 136), float32; for tracing and export."""
    import tensorflow as tf

    size = config.input_size
    return {
        "image": tf.TensorSpec([None, size, size, 3], tf.float32, name="image"),
        "landmarks": tf.TensorSpec([None, NUM_LANDMARKS * 2], tf.float32, name="landmarks"),
    }


def mirror_faces(
    crops: np.ndarray, landmarks: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal mirror images of aligned crops (N, size, size, 3) and their
    landmarks (N, 68, 2) in crop pixels, indices permuted: the second view of
    flip test-time augmentation, shared by serving and evaluation."""
    return crops[:, :, ::-1], np.stack([flip_landmarks(p, size) for p in landmarks])


@dataclass(frozen=True)
class InferenceViews:
    """The views of each face whose embeddings are summed, then
    L2-normalised, at test time (serving, calibration and evaluation alike).

    Always the aligned crop itself; with ``flip`` its mirror image (landmarks
    permuted); with ``shift_px`` > 0 also the crop moved by that many crop
    pixels right, left, down and up (edge pixels replicated, landmarks moved
    with it), each of those mirrored too when ``flip``.
    """

    flip: bool = True
    shift_px: int = 0

    def __post_init__(self) -> None:
        if self.shift_px < 0:
            raise ValueError(f"shift_px must be >= 0, not {self.shift_px}")

    @property
    def count(self) -> int:
        """Views per face."""
        return (5 if self.shift_px else 1) * (2 if self.flip else 1)

    def apply(
        self, crops: np.ndarray, landmarks: np.ndarray, size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Crops (count * N, size, size, 3) uint8 and landmarks (count * N, 68,
        2) crop pixels of the N faces' views, view-major: rows k*N .. k*N+N-1
        are view k of every face (the order :meth:`sum` expects)."""
        s = self.shift_px
        offsets = [(0, 0), (s, 0), (-s, 0), (0, s), (0, -s)] if s else [(0, 0)]
        padded = np.pad(crops, ((0, 0), (s, s), (s, s), (0, 0)), mode="edge") if s else crops
        all_crops, all_marks = [], []
        for dx, dy in offsets:
            moved = padded[:, s - dy : s - dy + size, s - dx : s - dx + size]
            marks = landmarks + np.array([dx, dy], dtype=landmarks.dtype)
            all_crops.append(moved)
            all_marks.append(marks)
            if self.flip:
                mirrored, flipped = mirror_faces(moved, marks, size)
                all_crops.append(mirrored)
                all_marks.append(flipped)
        return np.concatenate(all_crops), np.concatenate(all_marks)

    def sum(self, outputs: np.ndarray) -> np.ndarray:
        """(N, dim) sums over the views of network outputs (count * N, dim)
        laid out as :meth:`apply` returns them (not yet normalised)."""
        n = len(outputs) // self.count
        total: np.ndarray = outputs.reshape(self.count, n, -1).sum(axis=0)
        return total
