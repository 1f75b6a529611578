"""Training objectives on L2-normalised embeddings (TensorFlow).

Distances are squared Euclidean on the unit sphere, d = 2 - 2 cos, in [0, 4].
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf


def pairwise_sq_distances(embeddings: Any) -> Any:
    """(N, N) squared distances of (N, D) unit vectors: 2 - 2 * cosine, clipped at 0."""
    cos = tf.matmul(embeddings, embeddings, transpose_b=True)
    return tf.maximum(2.0 - 2.0 * cos, 0.0)


def semi_hard_negatives(distances: Any, labels: Any) -> tuple[Any, Any]:
    """Online semi-hard mining (FaceNet, Schroff et al. 2015).

    For every anchor-positive pair (a, p) with the same label, a != p, the
    negative is the closest one *farther* than the positive:
    argmin_n {d(a, n) : d(a, n) > d(a, p)}; when no negative is farther, the
    farthest negative. Returns (mask of valid (a, p) pairs, (N, N) chosen
    negative distance per pair).
    """
    labels = tf.reshape(labels, [-1])
    same = tf.equal(labels[:, None], labels[None, :])
    n = tf.shape(labels)[0]
    positive_mask = tf.logical_and(same, tf.logical_not(tf.eye(n, dtype=tf.bool)))
    negative_mask = tf.logical_not(same)
    big = tf.constant(1e9, distances.dtype)
    # d_an[a, p, n]: distance anchor->negative candidate, broadcast over p.
    d_ap = distances[:, :, None]
    d_an = distances[:, None, :]
    neg = negative_mask[:, None, :]
    farther = tf.logical_and(neg, d_an > d_ap)
    closest_farther = tf.reduce_min(tf.where(farther, d_an, big), axis=2)
    has_farther = tf.reduce_any(farther, axis=2)
    farthest = tf.reduce_max(tf.where(neg, d_an, -big), axis=2)
    chosen = tf.where(has_farther, closest_farther, farthest)
    has_negative = tf.reduce_any(negative_mask, axis=1)[:, None]
    return tf.logical_and(positive_mask, has_negative), chosen


def triplet_semi_hard_loss(embeddings: Any, labels: Any, margin: float) -> Any:
    """Mean over valid anchor-positive pairs of max(d(a,p) - d(a,n) + margin, 0),
    n chosen by :func:`semi_hard_negatives`; ``margin`` in squared-distance units."""
    distances = pairwise_sq_distances(embeddings)
    mask, d_an = semi_hard_negatives(distances, labels)
    losses = tf.maximum(distances - d_an + margin, 0.0)
    mask_f = tf.cast(mask, losses.dtype)
    return tf.reduce_sum(losses * mask_f) / tf.maximum(tf.reduce_sum(mask_f), 1.0)


def distillation_loss(embeddings: Any, targets: Any, weights: Any) -> Any:
    """Weighted mean of 1 - cos(embedding, target) over rows with weight > 0;
    ``targets`` are unit vectors (the teacher's), ``weights`` (N,) 0 or 1."""
    cos = tf.reduce_sum(embeddings * targets, axis=1)
    return tf.reduce_sum((1.0 - cos) * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def relation_loss(embeddings: Any, targets: Any) -> Any:
    """Similarity-structure distillation: mean over pairs i != j of
    (cos(e_i, e_j) - cos(t_i, t_j))^2, cosines of unit vectors in [-1, 1].

    Unlike :func:`distillation_loss` it asks only for the teacher's pairwise
    scores, the quantity verification thresholds, not its coordinates, so it
    is zero for any rotation of the teacher's embedding.
    """
    n = tf.shape(embeddings)[0]
    off_diagonal = 1.0 - tf.eye(n, dtype=embeddings.dtype)
    student = tf.matmul(embeddings, embeddings, transpose_b=True)
    teacher = tf.matmul(targets, targets, transpose_b=True)
    squared = tf.square(student - teacher) * off_diagonal
    return tf.reduce_sum(squared) / tf.maximum(tf.reduce_sum(off_diagonal), 1.0)


#: Margin-head kinds: CosFace subtracts the margin from the true class's
#: cosine, ArcFace adds it to the true class's angle.
MARGIN_KINDS = ("cosface", "arcface")


def margin_head_loss(
    embeddings: Any, labels: Any, class_weights: Any, scale: float, margin: float, kind: str
) -> Any:
    """Margin softmax over the labelled people (CosFace, Wang et al. 2018;
    ArcFace, Deng et al. 2019), a training-only head.

    ``embeddings`` (N, D) unit vectors; ``labels`` (N,) int class index of
    each face's person, -1 for unlabelled faces (left out); ``class_weights``
    (C, D) one trainable centre per person, normalised here. Logits are
    ``scale`` x cosine to each centre, the true class's made harder by
    ``margin`` (cosine units for "cosface", radians for "arcface", whose
    angle is capped at pi). Returns the mean cross-entropy over labelled
    rows, 0 when there is none."""
    if kind not in MARGIN_KINDS:
        raise ValueError(f"margin head kind {kind!r} is not one of {', '.join(MARGIN_KINDS)}")
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    centres = tf.math.l2_normalize(class_weights, axis=1)
    cos = tf.clip_by_value(tf.matmul(embeddings, centres, transpose_b=True), -1.0, 1.0)
    labelled = labels >= 0
    onehot = tf.one_hot(tf.maximum(labels, 0), tf.shape(centres)[0], dtype=cos.dtype)
    if kind == "cosface":
        target = cos - margin
    else:
        # cos(theta + m) from the cosine (no acos: it is ill-conditioned at
        # cosine 1); past theta = pi - m the angle stays at pi.
        sine = tf.sqrt(tf.maximum(1.0 - tf.square(cos), 0.0))
        shifted = cos * math.cos(margin) - sine * math.sin(margin)
        target = tf.where(cos > -math.cos(margin), shifted, -tf.ones_like(cos))
    logits = scale * tf.where(onehot > 0, target, cos)
    per_row = tf.nn.softmax_cross_entropy_with_logits(labels=onehot, logits=logits)
    weights = tf.cast(labelled, per_row.dtype)
    return tf.reduce_sum(per_row * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
