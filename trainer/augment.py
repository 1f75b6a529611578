"""Training augmentation (TensorFlow), applied to crops and landmarks together."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from embedder.landmarks import FLIP_PERMUTATION


def augment(
    crops: Any, landmarks: Any, seed: Any, size: int, max_shift: float = 0.06
) -> tuple[Any, Any]:
    """Random horizontal flip (landmarks mirrored with the 68-point index
    permutation), shift and scale by up to ``max_shift`` of the crop side, and
    brightness/contrast jitter. ``crops`` (N, S, S, 3) float32 0-255,
    ``landmarks`` (N, 68, 2) crop pixels; ``seed`` a (2,) int tensor."""
    n = tf.shape(crops)[0]
    s = tf.cast(size, tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, 5)
    flip = tf.random.stateless_uniform([n], seeds[0]) < 0.5
    flipped_img = crops[:, :, ::-1, :]
    flipped_pts = tf.gather(landmarks, FLIP_PERMUTATION, axis=1)
    # Pixel centres sit at integer coordinates (cv2/dlib), so reversing a row of
    # S pixels maps x to S - 1 - x.
    flipped_pts = tf.stack([s - 1.0 - flipped_pts[..., 0], flipped_pts[..., 1]], axis=-1)
    crops = tf.where(flip[:, None, None, None], flipped_img, crops)
    landmarks = tf.where(flip[:, None, None], flipped_pts, landmarks)

    shift = tf.random.stateless_uniform([n, 2], seeds[1], -max_shift, max_shift)
    scale = tf.random.stateless_uniform([n], seeds[2], 1.0 - max_shift, 1.0 + max_shift)
    # Box in normalised [0, 1] crop coordinates (y1, x1, y2, x2), centred and shifted.
    half = scale / 2.0
    cy, cx = 0.5 + shift[:, 0], 0.5 + shift[:, 1]
    boxes = tf.stack([cy - half, cx - half, cy + half, cx + half], axis=1)
    crops = tf.image.crop_and_resize(crops, boxes, tf.range(n), [size, size])
    # crop_and_resize maps normalised coordinate c to pixel c * (S - 1).
    origin = tf.stack([cx - half, cy - half], axis=1)[:, None, :] * (s - 1.0)
    landmarks = (landmarks - origin) / scale[:, None, None]

    gain = tf.random.stateless_uniform([n, 1, 1, 1], seeds[3], 0.75, 1.25)
    bias = tf.random.stateless_uniform([n, 1, 1, 1], seeds[4], -25.0, 25.0)
    mean = tf.reduce_mean(crops, axis=[1, 2, 3], keepdims=True)
    crops = tf.clip_by_value((crops - mean) * gain + mean + bias, 0.0, 255.0)
    return crops, landmarks
