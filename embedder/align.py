"""Similarity alignment of a face to a canonical template."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from embedder.landmarks import MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP, eye_centres

# Five reference points (subject's right eye, left eye, nose tip, right and
# left mouth corner) of a 112 x 112 crop, in pixels, per template:
# - "arcface": the widely used ArcFace/InsightFace template (forehead and hair
#   in view, the chin cut off; 3.2 eye distances wide);
# - "dlib": the field of view of dlib's 150 px face chip (padding 0.25), the
#   mean position of these points in the chips dlib cut from the committed
#   LFW test photos, made symmetric (chin in view, less forehead; 2.6 eye
#   distances wide). A student distilled from dlib's descriptor sees what
#   its teacher saw.
_TEMPLATES_112: dict[str, np.ndarray] = {
    "arcface": np.array(
        [
            [38.2946, 51.6963],
            [73.5318, 51.5014],
            [56.0252, 71.7366],
            [41.5493, 92.3655],
            [70.7299, 92.2041],
        ],
        dtype=np.float64,
    ),
    "dlib": np.array(
        [[35.7, 34.8], [74.9, 34.8], [55.3, 57.2], [37.6, 77.1], [73.0, 77.1]],
        dtype=np.float64,
    ),
}

#: The names :func:`align_face` accepts as ``template``.
TEMPLATES = frozenset(_TEMPLATES_112)


@dataclass(frozen=True)
class AlignedFace:
    """A face warped to the template: ``crop`` is (size, size, 3) RGB uint8,
    ``landmarks`` the 68 points in crop pixels, ``matrix`` the 2x3 affine map
    from image to crop pixels."""

    crop: np.ndarray
    landmarks: np.ndarray
    matrix: np.ndarray


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """The template's five points taken from 68 landmarks, (5, 2) pixels."""
    right_eye, left_eye = eye_centres(landmarks68)
    return np.stack(
        [
            right_eye,
            left_eye,
            landmarks68[NOSE_TIP],
            landmarks68[MOUTH_RIGHT],
            landmarks68[MOUTH_LEFT],
        ]
    ).astype(np.float64)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping
    ``src`` (N, 2) onto ``dst`` (N, 2) (Umeyama 1991); returns a 2x3 matrix."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    var_src = (src_c**2).sum() / len(src)
    scale = float((s * d).sum() / var_src)
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def map_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Points (N, 2) (x, y) mapped by a 2x3 affine ``matrix`` (e.g.
    :attr:`AlignedFace.matrix`, image to crop pixels); float32 (N, 2)."""
    homogeneous = np.hstack([points.astype(np.float64), np.ones((len(points), 1))])
    out: np.ndarray = (homogeneous @ matrix.T).astype(np.float32)
    return out


def align_face(
    image: np.ndarray, landmarks68: np.ndarray, size: int, template: str = "arcface"
) -> AlignedFace:
    """Warp ``image`` (H, W, 3) so the face's five points land on ``template``
    (one of :data:`TEMPLATES`) scaled to ``size`` x ``size`` pixels;
    landmarks (68, 2) are image pixels (x, y). Raises ValueError for an
    unknown template."""
    if template not in _TEMPLATES_112:
        raise ValueError(f"unknown crop template {template!r}; known: {sorted(TEMPLATES)}")
    points = _TEMPLATES_112[template] * (size / 112.0)
    matrix = similarity_transform(five_points(landmarks68), points)
    crop = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
    )
    return AlignedFace(crop=crop, landmarks=map_points(landmarks68, matrix), matrix=matrix)
