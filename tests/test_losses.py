"""The semi-hard triplet miner, the triplet loss and the distillation loss.

Embeddings are hand-placed unit vectors on a circle, so every distance
(d = 2 - 2 cos) and every mining decision can be worked out by hand; a plain
Python miner checks the TensorFlow one on random batches.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from trainer.losses import (
    distillation_loss,
    margin_head_loss,
    pairwise_sq_distances,
    relation_loss,
    semi_hard_negatives,
    triplet_semi_hard_loss,
)


def _circle(*degrees: float) -> np.ndarray:
    """Unit vectors in 2-D at the given angles."""
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


def _d(delta_degrees: float) -> float:
    """Squared distance between two unit vectors ``delta_degrees`` apart."""
    return 2.0 - 2.0 * math.cos(math.radians(delta_degrees))


def _mine(emb: np.ndarray, labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    mask, chosen = semi_hard_negatives(pairwise_sq_distances(tf.constant(emb)), tf.constant(labels))
    return mask.numpy(), chosen.numpy()


def _reference(
    emb: np.ndarray, labels: list[int], margin: float
) -> tuple[dict[tuple[int, int], float], float]:
    """Plain-Python FaceNet semi-hard mining: {(a, p): chosen d(a, n)} and the loss."""
    n = len(labels)
    d = [[float(np.sum((emb[i] - emb[j]) ** 2)) for j in range(n)] for i in range(n)]
    chosen: dict[tuple[int, int], float] = {}
    for a in range(n):
        negatives = [d[a][k] for k in range(n) if labels[k] != labels[a]]
        if not negatives:
            continue
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            farther = [x for x in negatives if x > d[a][p]]
            chosen[(a, p)] = min(farther) if farther else max(negatives)
    terms = [max(d[a][p] - dn + margin, 0.0) for (a, p), dn in chosen.items()]
    return chosen, (sum(terms) / len(terms) if terms else 0.0)


def test_pairwise_distances_are_squared_euclidean_on_the_sphere() -> None:
    emb = _circle(0, 30, 90, 180)
    got = pairwise_sq_distances(tf.constant(emb)).numpy()
    expected = np.sum((emb[:, None, :] - emb[None, :, :]) ** 2, axis=2)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(got[0, 1:], [_d(30), _d(90), 4.0], atol=1e-6)
    assert (np.diag(got) >= 0).all()


def test_semi_hard_negative_is_the_closest_one_farther_than_the_positive() -> None:
    # 0: anchor (label 0) at 0 deg, 1: positive (label 0) at 30 deg,
    # 2: label 1 at 20 deg (closer than the positive: easy to beat, not semi-hard),
    # 3: label 2 at 45 deg, 4: label 3 at 90 deg.
    emb = _circle(0, 30, 20, 45, 90)
    mask, chosen = _mine(emb, [0, 0, 1, 2, 3])
    assert mask.tolist() == [
        [False, True, False, False, False],
        [True, False, False, False, False],
        [False] * 5,
        [False] * 5,
        [False] * 5,
    ]
    # Anchor 0, positive 1 (30 deg): negatives at 20, 45, 90 deg -> 45 deg.
    assert chosen[0, 1] == pytest.approx(_d(45), abs=1e-6)
    # Anchor 1, positive 0 (30 deg): negatives 10, 15, 60 deg away -> 60 deg.
    assert chosen[1, 0] == pytest.approx(_d(60), abs=1e-6)


def test_without_a_farther_negative_the_farthest_negative_is_used() -> None:
    # Positive diametrically opposite (d = 4): no negative can be farther.
    emb = _circle(0, 180, 90, 100)
    mask, chosen = _mine(emb, [0, 0, 1, 2])
    assert mask[0, 1] and mask[1, 0]
    assert chosen[0, 1] == pytest.approx(_d(100), abs=1e-6)
    # From 180 deg, the negatives are 90 and 80 deg away: the farthest is 90.
    assert chosen[1, 0] == pytest.approx(_d(90), abs=1e-6)


def test_same_label_samples_never_serve_as_negatives() -> None:
    # Three of label 0 spread out, one of label 1 close to the anchor: the
    # same-label samples at 120 and 180 deg are farther than any negative and
    # must still not be chosen.
    emb = _circle(0, 60, 120, 180, 10)
    labels = [0, 0, 0, 0, 1]
    d = pairwise_sq_distances(tf.constant(emb)).numpy()
    mask, chosen = _mine(emb, labels)
    for a, p in zip(*np.nonzero(mask), strict=True):
        assert labels[a] == labels[p] and a != p
        assert chosen[a, p] == pytest.approx(d[a, 4], abs=1e-6)
    assert mask.sum() == 12  # 4 x 3 ordered pairs of label 0


def test_a_label_with_one_sample_gives_no_anchor_positive_pair() -> None:
    emb = _circle(0, 40, 80, 120)
    mask, _ = _mine(emb, [7, 3, 3, 9])
    assert not mask[0].any() and not mask[:, 0].any()
    assert not mask[3].any() and not mask[:, 3].any()
    assert mask[1, 2] and mask[2, 1] and mask.sum() == 2


def test_no_pairs_means_zero_loss_not_nan() -> None:
    emb = tf.constant(_circle(0, 40, 80))
    assert float(triplet_semi_hard_loss(emb, tf.constant([1, 2, 3]), 0.2)) == 0.0
    # One label only: positives but no negatives, so no triplet either.
    mask, _ = _mine(_circle(0, 40, 80), [5, 5, 5])
    assert not mask.any()
    assert float(triplet_semi_hard_loss(emb, tf.constant([5, 5, 5]), 0.2)) == 0.0


def test_loss_is_the_hinge_with_the_margin() -> None:
    emb = _circle(0, 30, 20, 45, 90)
    labels = tf.constant([0, 0, 1, 2, 3])
    # Pairs (0,1): d_ap = d(30), d_an = d(45); (1,0): d_ap = d(30), d_an = d(60).
    for margin in (0.0, 0.1, 0.2, 0.5):
        expected = (max(_d(30) - _d(45) + margin, 0.0) + max(_d(30) - _d(60) + margin, 0.0)) / 2.0
        got = float(triplet_semi_hard_loss(tf.constant(emb), labels, margin))
        assert got == pytest.approx(expected, abs=1e-6), margin
    # d(45) - d(30) is about 0.32 and d(60) - d(30) about 0.73: a margin of 0.2
    # is met by both pairs, 0.5 only by (1, 0), 1.0 by neither.
    losses = [float(triplet_semi_hard_loss(tf.constant(emb), labels, m)) for m in (0.2, 0.5, 1.0)]
    assert losses[0] == 0.0
    assert losses[1] == pytest.approx((0.5 - (_d(45) - _d(30))) / 2.0, abs=1e-6)
    assert losses[2] > losses[1] > 0.0


def test_zero_loss_when_every_negative_is_beyond_the_margin() -> None:
    # Two tight clusters 90 degrees apart: d_an - d_ap is about 2 > margin.
    emb = _circle(0, 2, 4, 90, 92, 94)
    labels = tf.constant([0, 0, 0, 1, 1, 1])
    assert float(triplet_semi_hard_loss(tf.constant(emb), labels, 0.5)) == 0.0
    assert float(triplet_semi_hard_loss(tf.constant(emb), labels, 2.5)) > 0.0


@pytest.mark.parametrize("seed", range(5))
def test_miner_and_loss_match_a_plain_python_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, dim, margin = 14, 6, 0.3
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = rng.integers(0, 4, size=n).tolist()
    labels[-1] = 99  # a singleton label, never an anchor or a positive
    mask, chosen = _mine(emb, labels)
    expected, expected_loss = _reference(emb, labels, margin)
    assert {(int(a), int(p)) for a, p in zip(*np.nonzero(mask), strict=True)} == set(expected)
    for (a, p), dn in expected.items():
        assert chosen[a, p] == pytest.approx(dn, abs=1e-5)
    loss = float(triplet_semi_hard_loss(tf.constant(emb), tf.constant(labels), margin))
    assert loss == pytest.approx(expected_loss, abs=1e-5)


def test_distillation_loss_is_weighted_one_minus_cosine() -> None:
    a = _circle(0, 90)
    same = distillation_loss(tf.constant(a), tf.constant(a), tf.constant([1.0, 1.0]))
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    orthogonal = distillation_loss(tf.constant(a), tf.constant(_circle(90, 180)), tf.ones([2]))
    assert float(orthogonal) == pytest.approx(1.0, abs=1e-6)
    # Row 0 matches its target (0), row 1 is opposite (2): the weights pick.
    targets = tf.constant(_circle(0, 270))
    for weights, expected in (([1.0, 0.0], 0.0), ([0.0, 1.0], 2.0), ([1.0, 1.0], 1.0)):
        got = distillation_loss(tf.constant(a), targets, tf.constant(weights))
        assert float(got) == pytest.approx(expected, abs=1e-6), weights
    nothing = distillation_loss(tf.constant(a), targets, tf.zeros([2]))
    assert float(nothing) == 0.0


def test_relation_loss_is_the_mean_squared_error_of_pairwise_cosines() -> None:
    # Student at 0, 90, 180 degrees; teacher at 0, 60, 180: the pairs' cosines
    # differ by cos 90 - cos 60 = -0.5 for (0, 1) and cos 90 - cos 120 = +0.5
    # for (1, 2), and agree for (0, 2): mean over 6 ordered pairs of 0.25 x 4.
    student = tf.constant(_circle(0, 90, 180))
    teacher = tf.constant(_circle(0, 60, 180))
    assert float(relation_loss(student, teacher)) == pytest.approx(4 * 0.25 / 6, abs=1e-6)


def test_relation_loss_ignores_a_rotation_but_not_a_distortion() -> None:
    rng = np.random.default_rng(7)
    teacher = rng.normal(size=(12, 8)).astype(np.float32)
    teacher /= np.linalg.norm(teacher, axis=1, keepdims=True)
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    rotated = (teacher @ rotation).astype(np.float32)
    # The pointwise term sees the rotation, the relational one does not.
    assert float(distillation_loss(tf.constant(rotated), tf.constant(teacher), tf.ones([12]))) > 0.1
    assert float(relation_loss(tf.constant(rotated), tf.constant(teacher))) == pytest.approx(
        0.0, abs=1e-6
    )
    distorted = rotated + 0.3 * rng.normal(size=rotated.shape).astype(np.float32)
    distorted /= np.linalg.norm(distorted, axis=1, keepdims=True)
    assert float(relation_loss(tf.constant(distorted), tf.constant(teacher))) > 1e-3


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_the_margin_head_makes_the_true_class_harder_by_its_margin() -> None:
    # Two faces on their people's centres (0 and 90 degrees; centres given
    # unnormalised, length 3): true cosine 1, the other 0.
    emb = tf.constant(_circle(0, 90))
    centres = tf.constant(3.0 * _circle(0, 90))
    labels = tf.constant([0, 1])
    s, m = 10.0, 0.35
    cosface = float(margin_head_loss(emb, labels, centres, s, m, "cosface"))
    # logits (s (1 - m), 0): cross-entropy log(1 + e^(-s (1 - m))).
    assert cosface == pytest.approx(_softplus(-s * (1 - m)), abs=2e-6)
    arcface = float(margin_head_loss(emb, labels, centres, s, m, "arcface"))
    assert arcface == pytest.approx(_softplus(-s * math.cos(m)), abs=2e-6)
    # No margin: both are the plain scaled-cosine softmax.
    plain = _softplus(-s)
    for kind in ("cosface", "arcface"):
        assert float(margin_head_loss(emb, labels, centres, s, 0.0, kind)) == pytest.approx(
            plain, abs=2e-6
        )


def test_the_margin_head_scores_angles_and_skips_unlabelled_faces() -> None:
    # A face at 30 degrees of person 0 (centre 0), person 1's centre at 90.
    emb = tf.constant(_circle(30, 200))
    centres = tf.constant(_circle(0, 90))
    s, m = 4.0, 0.2
    arc = float(margin_head_loss(emb, tf.constant([0, -1]), centres, s, m, "arcface"))
    true_logit = s * math.cos(math.radians(30) + m)
    other_logit = s * math.cos(math.radians(60))
    assert arc == pytest.approx(_softplus(other_logit - true_logit), abs=2e-6)
    cos_ = float(margin_head_loss(emb, tf.constant([0, -1]), centres, s, m, "cosface"))
    true_logit = s * (math.cos(math.radians(30)) - m)
    assert cos_ == pytest.approx(_softplus(other_logit - true_logit), abs=2e-6)
    # ArcFace past pi - m: a face at 170 degrees of its centre keeps the angle pi.
    far = float(
        margin_head_loss(tf.constant(_circle(170)), tf.constant([0]), centres, s, m, "arcface")
    )
    assert far == pytest.approx(_softplus(s * math.cos(math.radians(80)) + s), abs=2e-6)
    # Only unlabelled faces: no term, not NaN.
    assert float(margin_head_loss(emb, tf.constant([-1, -1]), centres, s, m, "cosface")) == 0.0
    with pytest.raises(ValueError, match="sphereface"):
        margin_head_loss(emb, tf.constant([0, 1]), centres, s, m, "sphereface")
