"""Seeded training views (trainer.views) on a committed LFW photo: a view is
reproducible from (seed, image), mirrors pixels and landmarks together,
degrades only the pixels, and jitters the alignment points within bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedder.decode import decode_image
from embedder.detect import FaceDetector
from embedder.landmarks import LEFT_EYE, RIGHT_EYE, flip_landmarks
from trainer.views import (
    DEGRADATIONS,
    MAX_ROTATION_DEG,
    MAX_SCALE,
    MAX_SHIFT,
    View,
    make_view,
    view_rng,
)

PHOTO = Path(__file__).resolve().parent / "data" / "lfw" / "Emma_Watson_0001.jpg"


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, np.ndarray]:
    image = decode_image(PHOTO.read_bytes())
    (detection,) = FaceDetector().detect(image)
    return image, detection.landmarks


def _views(face: tuple[np.ndarray, np.ndarray], seed: int, n: int) -> list[View]:
    image, points = face
    return [make_view(image, points, view_rng(seed, f"img-{i}")) for i in range(n)]


def test_a_view_is_a_function_of_seed_and_image(face: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = _views(face, 1, 6), _views(face, 1, 6)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.align_points, y.align_points)
    other = _views(face, 2, 6)
    assert any(
        not np.array_equal(x.align_points, y.align_points) for x, y in zip(a, other, strict=True)
    )


def test_views_cover_mirroring_and_every_degradation(face: tuple[np.ndarray, np.ndarray]) -> None:
    views = _views(face, 1, 80)
    assert {v.degradation for v in views} == set(DEGRADATIONS)
    assert {v.mirrored for v in views} == {True, False}
    image, _ = face
    for v in views:
        assert v.image.shape == image.shape and v.image.dtype == np.uint8


def test_a_mirrored_view_mirrors_pixels_and_relabels_landmarks(
    face: tuple[np.ndarray, np.ndarray],
) -> None:
    image, points = face
    (view,) = [v for v in _views(face, 3, 40) if v.mirrored and v.degradation == "none"][:1]
    np.testing.assert_array_equal(view.image, image[:, ::-1])
    np.testing.assert_allclose(view.landmarks, flip_landmarks(points, image.shape[1]))
    # The subject's right eye is still on the image's left after mirroring.
    assert view.landmarks[RIGHT_EYE, 0].mean() < view.landmarks[LEFT_EYE, 0].mean()


def test_degradations_change_pixels_not_geometry(face: tuple[np.ndarray, np.ndarray]) -> None:
    image, points = face
    for v in _views(face, 4, 60):
        expected = flip_landmarks(points, image.shape[1]) if v.mirrored else points
        np.testing.assert_allclose(v.landmarks, expected)
        source = image[:, ::-1] if v.mirrored else image
        if v.degradation == "none":
            np.testing.assert_array_equal(v.image, source)
        else:
            assert not np.array_equal(v.image, source), v.degradation
        if v.degradation == "grey":
            assert (v.image[..., 0] == v.image[..., 1]).all()
            assert (v.image[..., 1] == v.image[..., 2]).all()
        if v.degradation in ("blur", "low_res"):
            # Less fine detail: smaller mean gradient than the source.
            grad = np.abs(np.diff(v.image.astype(float), axis=1)).mean()
            assert grad < np.abs(np.diff(source.astype(float), axis=1)).mean()


def test_alignment_jitter_stays_within_its_bounds(face: tuple[np.ndarray, np.ndarray]) -> None:
    _, points = face
    inter_ocular = np.linalg.norm(points[RIGHT_EYE].mean(0) - points[LEFT_EYE].mean(0))
    # The farthest point from the eye centre moves at most by rotation + scale + shift.
    reach = np.linalg.norm(
        points - (points[RIGHT_EYE].mean(0) + points[LEFT_EYE].mean(0)) / 2, axis=1
    )
    bound = (
        reach.max() * (np.deg2rad(MAX_ROTATION_DEG) + MAX_SCALE) + MAX_SHIFT * inter_ocular * 2**0.5
    )
    moved = [
        np.linalg.norm(v.align_points - v.landmarks, axis=1).max() for v in _views(face, 5, 50)
    ]
    assert max(moved) <= bound + 1e-6
    assert min(moved) > 0.0
