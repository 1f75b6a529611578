"""Training augmentation: pixels and landmarks move together, and a horizontal
flip relabels the 68 points so that each keeps its meaning.

Pixel centres sit at integer coordinates (cv2, dlib), so mirroring a row of
S pixels maps x to S - 1 - x. A dot is a small Gaussian blob whose centroid
is measured to a fraction of a pixel.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from embedder.landmarks import FLIP_PERMUTATION, NUM_LANDMARKS, flip_landmarks
from trainer.augment import augment

S = 64
C = (S - 1) / 2.0  # the vertical mirror axis
Point = tuple[float, float]


def _frontal_face() -> np.ndarray:
    """A left-right symmetric frontal face in the iBUG 300-W 68-point order,
    written out from the scheme itself (not from FLIP_PERMUTATION): the
    subject's right side (jaw 0-7, brow 17-21, eye 36-41, mouth corner 48) is
    on the image's left."""
    pts: list[Point] = []
    for i in range(17):  # jaw, image left -> chin -> image right
        t = np.pi * i / 16
        pts.append((C - 24 * np.cos(t), 24 + 28 * np.sin(t)))
    for k in range(5):  # subject's right brow, outer -> inner
        pts.append((C - 20 + 4 * k, 18 - (2 - abs(k - 2))))
    for k in range(5):  # subject's left brow, inner -> outer
        pts.append((C + 4 + 4 * k, 18 - (2 - abs(k - 2))))
    pts += [(C, 22 + 3 * j) for j in range(4)]  # nose bridge, top -> tip
    pts += [(C - 6 + 3 * k, 34 + 0.5 * (2 - abs(k - 2))) for k in range(5)]  # nostrils
    # Eyes: outer corner, two upper lid points, inner corner, two lower lid points.
    right_eye: list[Point] = [(-18, 24), (-15, 22), (-11, 22), (-8, 24), (-11, 26), (-15, 26)]
    left_eye = [(8, 24), (11, 22), (15, 22), (18, 24), (15, 26), (11, 26)]
    # Outer lip clockwise from the subject's right corner, then the inner lip.
    outer_lip: list[Point] = [(-12, 42), (-8, 40), (-4, 39), (0, 40), (4, 39), (8, 40), (12, 42)]
    outer_lip += [(8, 45), (4, 46), (0, 46.5), (-4, 46), (-8, 45)]
    inner_lip = [(-9, 42), (-4, 41), (0, 41.5), (4, 41), (9, 42), (4, 43.5), (0, 44), (-4, 43.5)]
    pts += [(C + dx, y) for dx, y in right_eye + left_eye + outer_lip + inner_lip]
    face = np.array(pts, dtype=np.float32)
    assert face.shape == (NUM_LANDMARKS, 2)
    return face


FACE = _frontal_face()


def _mirror(points: np.ndarray) -> np.ndarray:
    """The expected landmarks of a horizontally flipped crop."""
    out = points[..., FLIP_PERMUTATION, :].copy()
    out[..., 0] = S - 1 - out[..., 0]
    return out


def _dots(points: np.ndarray) -> np.ndarray:
    """One crop per point: black, with a Gaussian dot (sigma 1 px) at that point."""
    ys, xs = np.mgrid[0:S, 0:S].astype(np.float32)
    d2 = (xs[None] - points[:, 0, None, None]) ** 2 + (ys[None] - points[:, 1, None, None]) ** 2
    return np.repeat((255.0 * np.exp(-d2 / 2.0))[..., None], 3, axis=3).astype(np.float32)


def _centroids(crops: np.ndarray) -> np.ndarray:
    """(N, 2) (x, y) centroid of the bright dot of each crop (background removed)."""
    img = crops.mean(axis=3)
    img = np.clip(img - np.median(img, axis=(1, 2), keepdims=True), 0.0, None)
    ys, xs = np.mgrid[0:S, 0:S]
    total = img.sum(axis=(1, 2))
    out: np.ndarray = (
        np.stack([(img * xs).sum(axis=(1, 2)), (img * ys).sum(axis=(1, 2))], axis=1)
        / total[:, None]
    )
    return out


def _augment(
    crops: np.ndarray, marks: np.ndarray, seed: int, max_shift: float
) -> tuple[np.ndarray, np.ndarray]:
    out, pts = augment(tf.constant(crops), tf.constant(marks), tf.constant([seed, 7]), S, max_shift)
    return out.numpy(), pts.numpy()


def test_flip_permutation_is_an_involution_pairing_mirror_features() -> None:
    perm = FLIP_PERMUTATION
    assert sorted(perm.tolist()) == list(range(NUM_LANDMARKS))
    np.testing.assert_array_equal(perm[perm], np.arange(NUM_LANDMARKS))
    assert perm[0] == 16 and perm[8] == 8  # jaw ends swap, chin stays
    assert perm[36] == 45 and perm[39] == 42  # outer and inner eye corners
    assert perm[48] == 54 and perm[57] == 57 and perm[30] == 30


def test_flip_permutation_maps_a_symmetric_face_onto_itself() -> None:
    # Wrong pairs (e.g. lower lid with upper lid) would move points by pixels.
    np.testing.assert_allclose(_mirror(FACE), FACE, atol=1e-4)


def test_serving_flip_landmarks_agrees_with_a_pixel_flip() -> None:
    np.testing.assert_allclose(flip_landmarks(FACE, S), FACE, atol=0.05)


def test_flip_moves_dots_and_landmarks_together() -> None:
    # Asymmetric landmarks, so a flipped set is told apart from an unflipped one;
    # crop n shows only landmark n.
    rng = np.random.default_rng(0)
    marks = np.repeat(rng.uniform(12, 52, size=(1, NUM_LANDMARKS, 2)), NUM_LANDMARKS, axis=0)
    marks = marks.astype(np.float32)
    crops, pts = _augment(_dots(marks[0]), marks, seed=1, max_shift=0.0)
    centroids = _centroids(crops)
    flipped = np.array([np.allclose(p, _mirror(marks[0]), atol=1e-3) for p in pts])
    kept = np.array([np.allclose(p, marks[0], atol=1e-3) for p in pts])
    assert (flipped ^ kept).all(), "landmarks neither kept nor mirrored"
    assert 0 < flipped.sum() < NUM_LANDMARKS, "the seed should flip some crops, not all"
    index = np.arange(NUM_LANDMARKS)
    # After a flip the dot of landmark n carries index FLIP_PERMUTATION[n].
    expected = pts[index, np.where(flipped, FLIP_PERMUTATION, index)]
    np.testing.assert_allclose(centroids, expected, atol=0.25)
    np.testing.assert_allclose(centroids[flipped, 0], S - 1 - marks[0, flipped, 0], atol=0.25)


def test_flipping_a_symmetric_face_leaves_its_landmarks_in_place() -> None:
    marks = np.repeat(FACE[None], 16, axis=0)
    crops = np.zeros((16, S, S, 3), np.float32)
    _, pts = _augment(crops, marks, seed=3, max_shift=0.0)
    np.testing.assert_allclose(pts, marks, atol=1e-3)


def test_shift_and_scale_move_dots_and_landmarks_together() -> None:
    rng = np.random.default_rng(1)
    marks = np.repeat(rng.uniform(12, 52, size=(1, NUM_LANDMARKS, 2)), NUM_LANDMARKS, axis=0)
    marks = marks.astype(np.float32)
    crops, pts = _augment(_dots(marks[0]), marks, seed=2, max_shift=0.06)
    centroids = _centroids(crops)
    index = np.arange(NUM_LANDMARKS)
    error = np.minimum(
        np.linalg.norm(centroids - pts[index, index], axis=1),
        np.linalg.norm(centroids - pts[index, FLIP_PERMUTATION], axis=1),
    )
    assert error.max() < 0.3, error.max()
    # The crops really moved: neither the input nor its mirror image.
    moved = np.minimum(
        np.abs(pts - marks).mean(axis=(1, 2)), np.abs(pts - _mirror(marks)).mean(axis=(1, 2))
    )
    assert np.median(moved) > 0.5


def test_brightness_and_contrast_jitter_stay_in_range() -> None:
    crops = np.full((32, S, S, 3), 128.0, np.float32)
    crops[:, :, : S // 2] = 100.0  # two levels: contrast is measurable
    crops[:, :, S // 2 :] = 156.0
    out, _ = _augment(crops, np.repeat(FACE[None], 32, axis=0), seed=4, max_shift=0.0)
    assert out.min() >= 0.0 and out.max() <= 255.0
    # Columns away from the mirror-axis (a flip swaps the halves).
    contrast = np.abs(out[:, :, -4:].mean(axis=(1, 2, 3)) - out[:, :, :4].mean(axis=(1, 2, 3)))
    assert ((contrast > 0.75 * 56 - 1e-3) & (contrast < 1.25 * 56 + 1e-3)).all()
    means = out.mean(axis=(1, 2, 3))
    assert ((means > 128 - 25 - 1e-3) & (means < 128 + 25 + 1e-3)).all()
    assert means.std() > 3.0, "brightness should vary between crops"


def test_augmentation_is_a_function_of_the_seed() -> None:
    crops = _dots(FACE[:4])
    marks = np.repeat(FACE[None], 4, axis=0)
    a = _augment(crops, marks, seed=5, max_shift=0.06)
    b = _augment(crops, marks, seed=5, max_shift=0.06)
    c = _augment(crops, marks, seed=6, max_shift=0.06)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[1], c[1])
