"""The 68-point landmark scheme (iBUG 300-W): named indices, mirroring, normalisation.

Points are (x, y) pairs; x grows to the right, y downwards. "Left" and "right"
name the *subject's* sides: the subject's right eye (36-41) appears on the
image's left in a frontal photo.
"""

from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 68
JAW = slice(0, 17)
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
NOSE_TIP = 30
MOUTH_RIGHT = 48
MOUTH_LEFT = 54
CHIN = 8


def _flip_permutation() -> np.ndarray:
    pairs: list[tuple[int, int]] = []
    pairs += [(i, 16 - i) for i in range(17)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(10)]  # brows
    pairs += [(i, i) for i in range(27, 31)]  # nose bridge
    pairs += [(31 + i, 35 - i) for i in range(5)]  # nose base
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48 + i, 54 - i) for i in range(7)]  # upper outer lip
    pairs += [(55, 59), (56, 58), (57, 57)]  # lower outer lip
    pairs += [(60, 64), (61, 63), (62, 62), (65, 67), (66, 66)]  # inner lip
    perm = np.full(NUM_LANDMARKS, -1, dtype=np.int64)
    for a, b in pairs:
        perm[a] = b
        perm[b] = a
    assert (perm >= 0).all()
    return perm


#: FLIP_PERMUTATION[i] is the index that point i becomes after a horizontal flip.
FLIP_PERMUTATION: np.ndarray = _flip_permutation()


def flip_landmarks(points: np.ndarray, width: float) -> np.ndarray:
    """Mirror (68, 2) points of an image ``width`` pixels wide horizontally.

    Landmarks are pixel-centre coordinates (dlib, OpenCV), so reversing a row
    of ``width`` pixels maps x to ``width - 1 - x``; the indices are permuted
    so that e.g. the subject's right eye stays labelled as the right eye.
    """
    mirrored: np.ndarray = points[FLIP_PERMUTATION].copy()
    mirrored[:, 0] = width - 1.0 - mirrored[:, 0]
    return mirrored


def normalise_landmarks(points: np.ndarray, size: int) -> np.ndarray:
    """Map (68, 2) points in crop pixels of a ``size`` x ``size`` crop to [-1, 1]."""
    out: np.ndarray = (points.astype(np.float32) / np.float32(size)) * 2.0 - 1.0
    return out


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subject's right eye centre, subject's left eye centre), each (x, y) pixels."""
    return points[RIGHT_EYE].mean(axis=0), points[LEFT_EYE].mean(axis=0)
