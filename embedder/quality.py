"""Face quality measures: size, sharpness, head pose."""

from __future__ import annotations

import cv2
import numpy as np

from embedder.landmarks import CHIN, MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP, eye_centres
from likeness.quality import Quality

# A generic 3D head (millimetres; x to the subject's left as seen by the
# camera's right, y up, z towards the camera): nose tip, chin, outer eye
# corners (36 and 45), mouth corners.
_MODEL_3D = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.0, -330.0, -65.0],
        [-225.0, 170.0, -135.0],
        [225.0, 170.0, -135.0],
        [-150.0, -150.0, -125.0],
        [150.0, -150.0, -125.0],
    ],
    dtype=np.float64,
)


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of an RGB uint8 crop (higher = sharper)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def head_pose(landmarks68: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from 68 landmarks in pixels of a
    ``width`` x ``height`` image, by solvePnP against a generic 3D head with a
    pinhole camera of focal length ``width`` pixels. Accurate to roughly
    +-10 degrees; enough for gating profile faces."""
    image_points = np.array(
        [
            landmarks68[NOSE_TIP],
            landmarks68[CHIN],
            landmarks68[36],
            landmarks68[45],
            landmarks68[MOUTH_RIGHT],
            landmarks68[MOUTH_LEFT],
        ],
        dtype=np.float64,
    )
    focal = float(width)
    camera = np.array(
        [[focal, 0, width / 2.0], [0, focal, height / 2.0], [0, 0, 1]], dtype=np.float64
    )
    ok, rvec, _ = cv2.solvePnP(
        _MODEL_3D, image_points, camera, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE
    )
    right_eye, left_eye = eye_centres(landmarks68)
    dx, dy = (left_eye - right_eye).astype(np.float64)
    roll = float(np.degrees(np.arctan2(dy, dx)))
    if not ok:
        return 0.0, 0.0, roll
    rotation, _ = cv2.Rodrigues(rvec)
    # Camera y points down while the model's y points up: flip to read angles.
    r = np.diag([1.0, -1.0, -1.0]) @ rotation
    pitch = float(np.degrees(np.arctan2(r[2, 1], r[2, 2])))
    yaw = float(np.degrees(np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))))
    pitch = (pitch + 180.0) % 360.0 - 180.0
    if pitch > 90:
        pitch -= 180
    elif pitch < -90:
        pitch += 180
    return yaw, pitch, roll


def face_quality(landmarks68: np.ndarray, crop: np.ndarray, width: int, height: int) -> Quality:
    """All quality measures of one face (see :class:`likeness.quality.Quality`)."""
    right_eye, left_eye = eye_centres(landmarks68)
    yaw, pitch, roll = head_pose(landmarks68, width, height)
    return Quality(
        face_size_px=float(np.linalg.norm(left_eye - right_eye)),
        sharpness=sharpness(crop),
        yaw_deg=yaw,
        pitch_deg=pitch,
        roll_deg=roll,
    )
