"""Seeded views of a training image for distillation with consistent targets.

A view is the whole image mirrored or not, degraded in one of a few ways a
production photo is (blur, low resolution, heavy JPEG, grey, colour cast) and
aligned with slightly jittered landmarks (the noise of a real landmark fit).
The teacher and the student see the *same* view, so the teacher's descriptor
is the exact target for what the student sees; distilling from descriptors of
the clean image while the student sees an altered one asks it to match a
function the teacher never computed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from embedder.landmarks import eye_centres, flip_landmarks

DEGRADATIONS = ("none", "blur", "low_res", "jpeg", "grey", "colour")

#: Bounds of the alignment jitter: rotation in degrees, scale as a fraction,
#: shift as a fraction of the inter-ocular distance.
MAX_ROTATION_DEG = 5.0
MAX_SCALE = 0.05
MAX_SHIFT = 0.08


@dataclass(frozen=True)
class View:
    """``image`` (H, W, 3) RGB uint8 as the view shows it; ``landmarks`` (68, 2)
    its true points (x, y) in image pixels; ``align_points`` (68, 2) the
    jittered points both teacher and student align with; what was done."""

    image: np.ndarray
    landmarks: np.ndarray
    align_points: np.ndarray
    mirrored: bool
    degradation: str


def view_rng(seed: int, key: str) -> np.random.Generator:
    """The generator for image ``key`` (its path) under view ``seed``: a view
    is the same whichever worker or shard computes it, so caches resume."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def make_view(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> View:
    """One random view of ``image`` (H, W, 3) RGB uint8 with its 68 landmarks
    (x, y) in image pixels: mirrored with probability 1/2, one of
    :data:`DEGRADATIONS` drawn uniformly, alignment points jittered by a
    similarity transform within :data:`MAX_ROTATION_DEG`, :data:`MAX_SCALE`
    and :data:`MAX_SHIFT`."""
    mirrored = bool(rng.random() < 0.5)
    points = landmarks.astype(np.float64)
    if mirrored:
        image = np.ascontiguousarray(image[:, ::-1])
        points = flip_landmarks(points, image.shape[1])
    degradation = DEGRADATIONS[int(rng.integers(len(DEGRADATIONS)))]
    image = _degrade(image, degradation, rng)
    return View(image, points, _jitter(points, rng), mirrored, degradation)


def _degrade(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "blur":
        sigma = rng.uniform(0.8, 2.0)
        return cv2.GaussianBlur(image, (0, 0), sigma)
    if kind == "low_res":
        h, w = image.shape[:2]
        factor = rng.uniform(0.25, 0.5)
        small = cv2.resize(
            image,
            (max(8, round(w * factor)), max(8, round(h * factor))),
            interpolation=cv2.INTER_AREA,
        )
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if kind == "jpeg":
        quality = int(rng.integers(10, 36))
        # OpenCV codecs take BGR; the chroma conversion depends on channel order.
        ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if decoded is None:
            raise RuntimeError("JPEG decoding failed")
        return np.ascontiguousarray(decoded[:, :, ::-1])
    if kind == "grey":
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if kind == "colour":
        gamma = rng.uniform(0.6, 1.6)
        gains = rng.uniform(0.85, 1.15, size=3)
        out = 255.0 * (image / 255.0) ** gamma * gains
        return np.clip(out, 0, 255).astype(np.uint8)
    return image


def _jitter(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    right, left = eye_centres(points)
    inter_ocular = float(np.linalg.norm(right - left))
    centre = (right + left) / 2.0
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    scale = 1.0 + rng.uniform(-MAX_SCALE, MAX_SCALE)
    shift = rng.uniform(-MAX_SHIFT, MAX_SHIFT, size=2) * inter_ocular
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    rot = np.array([[c, -s], [s, c]])
    out: np.ndarray = (points - centre) @ rot.T + centre + shift
    return out
