"""Paths of dlib's model files shipped by the face_recognition_models package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"


def dlib_model_path(name: str) -> Path:
    """Absolute path of one of face_recognition_models' ``.dat`` files.

    Found without importing the package (its import needs pkg_resources and
    prints warnings); raises FileNotFoundError when it is not installed.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("face_recognition_models is not installed")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "models" / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{name} not found in face_recognition_models")
