"""Verification and identification metrics (pure numpy).

Scores are similarities (higher = more alike, e.g. cosine in [-1, 1]); a
pair is accepted when score >= threshold. FAR is the fraction of different-
person pairs accepted, TAR the fraction of same-person pairs accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Roc:
    """ROC points ordered by decreasing threshold: ``far``, ``tar`` and the
    ``thresholds`` (accept when score >= threshold) that give them."""

    far: np.ndarray
    tar: np.ndarray
    thresholds: np.ndarray


@dataclass(frozen=True)
class RankedPairs:
    """Pairs sorted once by decreasing score, so that many ROCs of the same
    pairs under different ``weights`` (resamples) cost no further sort."""

    order: np.ndarray
    same: np.ndarray
    distinct: np.ndarray
    thresholds: np.ndarray

    @staticmethod
    def of(scores: np.ndarray, same: np.ndarray) -> RankedPairs:
        """Rank similarity ``scores`` with their boolean ``same`` labels."""
        order = np.argsort(-scores, kind="stable")
        s = scores[order]
        distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
        return RankedPairs(order, same[order].astype(bool), distinct, s[distinct])

    def roc(self, weights: np.ndarray | None = None) -> Roc:
        """The ROC with each pair counted ``weights`` times (>= 0, in the
        order the pairs were given; default once each)."""
        y = self.same
        w = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64)[self.order]
        tp = np.cumsum(w * y)[self.distinct]
        fp = np.cumsum(w * ~y)[self.distinct]
        pos, neg = float(np.sum(w * y)), float(np.sum(w * ~y))
        return Roc(
            far=np.r_[0.0, fp / neg] if neg > 0 else np.r_[0.0, fp],
            tar=np.r_[0.0, tp / pos] if pos > 0 else np.r_[0.0, tp],
            thresholds=np.r_[np.inf, self.thresholds],
        )


def roc_curve(scores: np.ndarray, same: np.ndarray, weights: np.ndarray | None = None) -> Roc:
    """The ROC of similarity ``scores`` against boolean ``same`` labels;
    ``weights`` (one per pair, >= 0; default 1 each) count a pair that many
    times, as a resample of the pairs does."""
    return RankedPairs.of(scores, same).roc(weights)


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve (1 = perfect separation, 0.5 = chance)."""
    roc = roc_curve(scores, same)
    return float(np.trapezoid(roc.tar, roc.far))


def equal_error_rate(
    scores: np.ndarray, same: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """The error rate where FAR equals FRR (= 1 - TAR); ``weights`` as in
    :func:`roc_curve`."""
    return roc_eer(roc_curve(scores, same, weights))


def roc_eer(roc: Roc) -> float:
    """The equal error rate of an ROC (see :func:`equal_error_rate`)."""
    frr = 1.0 - roc.tar
    i = int(np.argmin(np.abs(frr - roc.far)))
    return float((frr[i] + roc.far[i]) / 2.0)


def threshold_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """Smallest threshold whose FAR is at most ``far`` (so the strictest
    operating point that still meets the target)."""
    roc = roc_curve(scores, same)
    ok = np.flatnonzero(roc.far <= far)
    return float(roc.thresholds[ok[-1]])


def tar_at_far(
    scores: np.ndarray, same: np.ndarray, far: float, weights: np.ndarray | None = None
) -> float:
    """TAR at the threshold given by :func:`threshold_at_far`; ``weights`` as
    in :func:`roc_curve`."""
    return roc_tar_at_far(roc_curve(scores, same, weights), far)


def roc_tar_at_far(roc: Roc, far: float) -> float:
    """TAR of an ROC at FAR ``far`` (see :func:`tar_at_far`)."""
    ok = np.flatnonzero(roc.far <= far)
    return float(roc.tar[ok[-1]])


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Fraction of pairs decided right at ``threshold``."""
    return float(np.mean((scores >= threshold) == same.astype(bool)))


def best_accuracy(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(best accuracy, its threshold): the threshold is the midpoint between
    the two neighbouring scores, so it generalises to unseen pairs."""
    s, inverse = np.unique(scores, return_inverse=True)
    candidates = np.r_[s[0] - 1e-6, (s[:-1] + s[1:]) / 2.0, s[-1] + 1e-6]
    # Candidate k accepts the scores >= s[k] (the last accepts none): right
    # decisions are the same pairs at or above s[k] and the different pairs
    # below it, counted once per distinct score (millions of pairs: no loop).
    y = same.astype(bool).ravel()
    same_at = np.bincount(inverse.ravel(), weights=y, minlength=len(s))
    diff_at = np.bincount(inverse.ravel(), weights=~y, minlength=len(s))
    same_above = np.r_[np.cumsum(same_at[::-1])[::-1], 0.0]
    diff_below = np.r_[0.0, np.cumsum(diff_at)]
    accs = (same_above + diff_below) / len(y)
    i = int(np.argmax(accs))
    return float(accs[i]), float(candidates[i])


def kfold_accuracy(
    fold_scores: list[np.ndarray], fold_same: list[np.ndarray]
) -> tuple[float, float]:
    """LFW View 2 protocol: for each fold, the threshold is chosen on the
    other folds; returns (mean, std) accuracy over folds."""
    accs = []
    for k in range(len(fold_scores)):
        train_s = np.concatenate([s for i, s in enumerate(fold_scores) if i != k])
        train_y = np.concatenate([y for i, y in enumerate(fold_same) if i != k])
        _, thr = best_accuracy(train_s, train_y)
        accs.append(accuracy_at(fold_scores[k], fold_same[k], thr))
    return float(np.mean(accs)), float(np.std(accs))


def sample_pairs(
    labels: np.ndarray, n_different: int, seed: int, max_same: int = 10_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, same): index pairs over ``labels`` (one per face): all
    same-label pairs (at most ``max_same``, sampled) and ``n_different``
    random different-label pairs. Raises ValueError when different-label
    pairs are asked for but ``labels`` holds fewer than two labels."""
    if n_different > 0 and len(np.unique(labels)) < 2:
        raise ValueError("different-label pairs need at least two labels")
    rng = np.random.default_rng(seed)
    same_pairs = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        for i in range(len(idx)):
            for j in range(i + 1, len(idx)):
                same_pairs.append((idx[i], idx[j]))
    sp = np.array(same_pairs, dtype=np.int64).reshape(-1, 2)
    if len(sp) > max_same:
        sp = sp[rng.choice(len(sp), max_same, replace=False)]
    diff: list[tuple[int, int]] = []
    while len(diff) < n_different:
        i, j = rng.integers(0, len(labels), 2)
        if labels[i] != labels[j]:
            diff.append((i, j))
    dp = np.array(diff, dtype=np.int64).reshape(-1, 2)
    a = np.r_[sp[:, 0], dp[:, 0]]
    b = np.r_[sp[:, 1], dp[:, 1]]
    same = np.r_[np.ones(len(sp), bool), np.zeros(len(dp), bool)]
    return a, b, same


@dataclass(frozen=True)
class Identification:
    """Closed-set rank-1 accuracy and open-set detection-and-identification
    rate (DIR) at a false-alarm rate, with the threshold that gave it."""

    rank1: float
    dir_at_far: float
    far: float
    threshold: float


def identification(
    gallery: np.ndarray,
    gallery_labels: np.ndarray,
    probes: np.ndarray,
    probe_labels: np.ndarray,
    impostors: np.ndarray,
    far: float = 0.01,
) -> Identification:
    """1:N on unit vectors: ``gallery`` (G, D) one face per enrolled person,
    ``probes`` (P, D) of enrolled people, ``impostors`` (I, D) of people not
    enrolled. Rank-1: the best gallery match is the right person. Open set:
    the threshold lets through a fraction ``far`` of impostors' best scores;
    DIR is the fraction of probes both above it and identified right."""
    sims = probes @ gallery.T
    best = np.argmax(sims, axis=1)
    correct = gallery_labels[best] == probe_labels
    impostor_best = np.sort((impostors @ gallery.T).max(axis=1))[::-1]
    k = int(np.floor(far * len(impostor_best)))
    threshold = float(impostor_best[k]) + 1e-6 if len(impostor_best) else -1.0
    accepted = sims[np.arange(len(probes)), best] >= threshold
    return Identification(
        rank1=float(correct.mean()),
        dir_at_far=float((correct & accepted).mean()),
        far=far,
        threshold=threshold,
    )
