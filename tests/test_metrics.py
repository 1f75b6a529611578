"""Verification and identification metrics on synthetic scores worked out by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from trainer.metrics import (
    accuracy_at,
    best_accuracy,
    equal_error_rate,
    identification,
    kfold_accuracy,
    roc_auc,
    roc_curve,
    sample_pairs,
    tar_at_far,
    threshold_at_far,
)
from trainer.validate import (
    all_pairs,
    cross_pairs,
    held_out_report,
    held_out_table,
    paired_bootstrap,
    paired_table,
)

SEPARATED = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3])
SEPARATED_SAME = np.array([True, True, True, False, False, False])


def _random_scores(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping classes: same ~ N(0.6, 0.15), different ~ N(0.3, 0.15)."""
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.4
    scores = np.where(same, rng.normal(0.6, 0.15, n), rng.normal(0.3, 0.15, n))
    return scores, same


def test_perfect_separation() -> None:
    assert roc_auc(SEPARATED, SEPARATED_SAME) == 1.0
    assert equal_error_rate(SEPARATED, SEPARATED_SAME) == 0.0
    accuracy, threshold = best_accuracy(SEPARATED, SEPARATED_SAME)
    assert accuracy == 1.0
    # The midpoint between the lowest same (0.7) and the highest different (0.3).
    assert threshold == pytest.approx(0.5)
    assert tar_at_far(SEPARATED, SEPARATED_SAME, 0.0) == 1.0


def test_reversed_scores_give_auc_zero() -> None:
    assert roc_auc(-SEPARATED, SEPARATED_SAME) == 0.0
    assert equal_error_rate(-SEPARATED, SEPARATED_SAME) == 1.0


def test_small_roc_by_hand() -> None:
    # Sorted: 0.9 same, 0.8 different, 0.7 same, 0.6 different.
    scores = np.array([0.6, 0.9, 0.7, 0.8])
    same = np.array([False, True, True, False])
    roc = roc_curve(scores, same)
    np.testing.assert_allclose(roc.thresholds, [np.inf, 0.9, 0.8, 0.7, 0.6])
    np.testing.assert_allclose(roc.tar, [0.0, 0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(roc.far, [0.0, 0.0, 0.5, 0.5, 1.0])
    # 3 of the 4 (same, different) pairs are ordered right.
    assert roc_auc(scores, same) == pytest.approx(0.75)
    # FRR = 1 - TAR meets FAR at the point (FAR 0.5, TAR 0.5).
    assert equal_error_rate(scores, same) == pytest.approx(0.5)
    assert threshold_at_far(scores, same, 0.25) == pytest.approx(0.9)
    assert tar_at_far(scores, same, 0.25) == pytest.approx(0.5)
    assert accuracy_at(scores, same, 0.75) == pytest.approx(0.5)


def test_tied_scores_are_one_roc_point() -> None:
    scores = np.array([0.5, 0.5, 0.5, 0.5])
    same = np.array([True, False, True, False])
    roc = roc_curve(scores, same)
    np.testing.assert_allclose(roc.far, [0.0, 1.0])
    np.testing.assert_allclose(roc.tar, [0.0, 1.0])
    assert roc_auc(scores, same) == pytest.approx(0.5)


@pytest.mark.parametrize("far", [0.0, 0.004, 0.01, 0.05, 0.1, 0.3])
def test_threshold_at_far_meets_the_target_and_is_the_most_lenient(far: float) -> None:
    scores, same = _random_scores(seed=3)
    threshold = threshold_at_far(scores, same, far)
    assert np.mean(scores[~same] >= threshold) <= far
    # The next lower score as threshold would accept too many impostors.
    lower = scores[scores < threshold]
    if len(lower):
        assert np.mean(scores[~same] >= lower.max()) > far
    assert tar_at_far(scores, same, far) == pytest.approx(np.mean(scores[same] >= threshold))


def test_tar_at_far_is_monotone_in_far() -> None:
    scores, same = _random_scores(seed=5)
    fars = [0.0, 0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    tars = [tar_at_far(scores, same, f) for f in fars]
    assert all(b >= a for a, b in itertools.pairwise(tars))
    assert tars[-1] == 1.0 and tars[0] < tars[-2]


def test_best_accuracy_threshold_lies_between_the_classes() -> None:
    scores, same = _random_scores(seed=7)
    accuracy, threshold = best_accuracy(scores, same)
    assert np.median(scores[~same]) < threshold < np.median(scores[same])
    assert accuracy == pytest.approx(accuracy_at(scores, same, threshold))
    # No other threshold does better.
    for t in np.linspace(-0.5, 1.5, 201):
        assert accuracy_at(scores, same, float(t)) <= accuracy + 1e-12


def test_kfold_accuracy_picks_each_threshold_on_the_other_folds() -> None:
    fold_scores = [np.array([0.6, 0.7, 0.3, 0.4]) for _ in range(10)]
    fold_same = [np.array([True, True, False, False]) for _ in range(10)]
    assert kfold_accuracy(fold_scores, fold_same) == (1.0, 0.0)
    # Fold 3 has a same pair at 0.45. Tuned on fold 3 itself the threshold
    # would accept it; tuned on the other nine folds it lands at 0.5 and
    # rejects it, so fold 3 scores 3/4 and the other folds 4/4.
    fold_scores[3] = np.array([0.45, 0.7, 0.3, 0.4])
    mean, std = kfold_accuracy(fold_scores, fold_same)
    assert mean == pytest.approx((9 * 1.0 + 0.75) / 10)
    assert std == pytest.approx(np.std([1.0] * 9 + [0.75]))


def _unit(*rows: list[float]) -> np.ndarray:
    m = np.array(rows, dtype=np.float64)
    out: np.ndarray = m / np.linalg.norm(m, axis=1, keepdims=True)
    return out


GALLERY = np.eye(6)[:4]  # people 10, 11, 12, 13 along the first four axes
GALLERY_LABELS = np.array([10, 11, 12, 13])
PROBES = _unit(
    [1, 0.2, 0, 0, 0, 0],  # person 10, cosine ~0.98 to its gallery face
    [0, 1, 0, 0, 0.5, 0],  # person 11, ~0.89
    [0, 0, 1, 0, 0, 0.8],  # person 12, ~0.78
    [0, 1, 0, 0.3, 0, 0],  # person 13, but closer to person 11: a rank-1 miss
)
PROBE_LABELS = np.array([10, 11, 12, 13])
WEAK_IMPOSTORS = _unit([0.2, 0, 0, 0, 1, 0], [0, 0, 0.3, 0, 0, 1])


def test_identification_rank1_and_dir_with_weak_impostors() -> None:
    result = identification(GALLERY, GALLERY_LABELS, PROBES, PROBE_LABELS, WEAK_IMPOSTORS, far=0.0)
    assert result.rank1 == pytest.approx(0.75)
    # Impostors' best scores are ~0.20 and ~0.29: every right probe clears it.
    assert result.threshold == pytest.approx(float(_unit([0, 0, 0.3, 0, 0, 1])[0, 2]), abs=1e-5)
    assert result.dir_at_far == pytest.approx(0.75)


def test_an_impostor_above_the_threshold_lowers_dir() -> None:
    strong = np.vstack([WEAK_IMPOSTORS, _unit([0, 0.95, 0, 0, 0, 0.3])])  # ~0.954 to person 11
    result = identification(GALLERY, GALLERY_LABELS, PROBES, PROBE_LABELS, strong, far=0.0)
    assert result.rank1 == pytest.approx(0.75)
    # Only person 10's probe (~0.98) beats the strong impostor.
    assert 0.95 < result.threshold < 0.96
    assert result.dir_at_far == pytest.approx(0.25)


@pytest.mark.parametrize("far", [0.0, 0.01, 0.05, 0.1, 0.25])
def test_identification_threshold_passes_the_asked_fraction_of_impostors(far: float) -> None:
    rng = np.random.default_rng(11)
    gallery = _unit(*rng.normal(size=(20, 16)).tolist())
    impostors = _unit(*rng.normal(size=(200, 16)).tolist())
    result = identification(gallery, np.arange(20), gallery, np.arange(20), impostors, far=far)
    passed = np.mean((impostors @ gallery.T).max(axis=1) >= result.threshold)
    assert passed == pytest.approx(np.floor(far * 200) / 200)
    assert result.rank1 == 1.0 and result.far == far


def test_sample_pairs_counts_and_labels() -> None:
    labels = np.array(["a", "a", "a", "b", "b", "c"])
    a, b, same = sample_pairs(labels, n_different=7, seed=0)
    assert len(a) == len(b) == len(same) == 3 + 1 + 7  # C(3,2) + C(2,2) same pairs
    assert same.sum() == 4
    np.testing.assert_array_equal(labels[a] == labels[b], same)
    assert (a != b).all()
    assert {(int(i), int(j)) for i, j, s in zip(a, b, same, strict=True) if s} == {
        (0, 1),
        (0, 2),
        (1, 2),
        (3, 4),
    }
    again = sample_pairs(labels, n_different=7, seed=0)
    for x, y in zip((a, b, same), again, strict=True):
        np.testing.assert_array_equal(x, y)


def test_sample_pairs_caps_the_same_pairs() -> None:
    labels = np.array([0] * 10 + [1] * 2)
    a, b, same = sample_pairs(labels, n_different=5, seed=1, max_same=6)
    assert same.sum() == 6 and (~same).sum() == 5
    assert (labels[a[same]] == labels[b[same]]).all()
    assert len({(int(i), int(j)) for i, j in zip(a[same], b[same], strict=True)}) == 6


def test_sample_pairs_refuses_different_pairs_from_one_label() -> None:
    with pytest.raises(ValueError, match="two labels"):
        sample_pairs(np.array([4, 4, 4]), n_different=1, seed=0)
    a, _, same = sample_pairs(np.array([4, 4, 4]), n_different=0, seed=0)
    assert same.all() and len(a) == 3


def _unit_rows(*angles: float) -> np.ndarray:
    """Unit vectors in the plane at ``angles`` (radians): cosines worked out by hand."""
    return np.array([[np.cos(a), np.sin(a)] for a in angles])


def test_all_pairs_scores_every_unordered_pair_once() -> None:
    emb = _unit_rows(0.0, 0.0, np.pi / 2, np.pi)
    people = np.array(["a", "a", "b", "c"])
    scores, same = all_pairs(emb, people)
    # Pairs in order (0,1) (0,2) (0,3) (1,2) (1,3) (2,3).
    np.testing.assert_allclose(scores, [1.0, 0.0, -1.0, 0.0, -1.0, 0.0], atol=1e-12)
    assert same.tolist() == [True, False, False, False, False, False]


def test_cross_pairs_leave_out_a_view_of_the_same_image() -> None:
    clean = _unit_rows(0.0, np.pi / 2)
    views = _unit_rows(0.1, np.pi / 2 + 0.1, 0.2, np.pi)
    scores, same = cross_pairs(
        clean,
        np.array(["a", "a"]),
        np.array(["a1.jpg", "a2.jpg"]),
        views,
        np.array(["a", "a", "a", "b"]),
        np.array(["a1.jpg", "a2.jpg", "a1.jpg", "b1.jpg"]),
    )
    # Clean a1 meets the views of a2 and b1; clean a2 meets both views of a1 and b1.
    np.testing.assert_allclose(
        scores,
        [
            np.cos(np.pi / 2 + 0.1),
            -1.0,
            np.cos(np.pi / 2 - 0.1),
            np.cos(np.pi / 2 - 0.2),
            np.cos(np.pi / 2),
        ],
        atol=1e-12,
    )
    assert same.tolist() == [True, False, True, True, False]


def test_held_out_report_on_separated_people() -> None:
    # Two tight people far apart: every same-person pair scores above every other pair.
    emb = _unit_rows(0.0, 0.05, 0.1, 2.0, 2.05)
    people = np.array(["a", "a", "a", "b", "b"])
    paths = np.array([f"{p}{i}.jpg" for i, p in enumerate(people)])
    report = held_out_report("run", emb, people, paths)
    assert (report.auc, report.eer, report.tar_at_far_1e3, report.tar_at_far_1e2) == (
        1.0,
        0.0,
        1.0,
        1.0,
    )
    assert (report.genuine_pairs, report.impostor_pairs) == (4, 6)
    assert report.view_eer is None and "clean vs view" not in held_out_table([report])

    # A view of a0 that looks like b: its genuine pairs (with a1, a2) score
    # below its impostor pairs (with b3, b4), so it is misjudged at any threshold.
    views = (_unit_rows(1.9), np.array(["a"]), np.array(["a0.jpg"]))
    with_views = held_out_report("run", emb, people, paths, views, view_seeds=(3, 4))
    assert (with_views.view_genuine_pairs, with_views.view_impostor_pairs) == (2, 2)
    assert with_views.view_tar_at_far_1e3 == 0.0
    assert with_views.view_eer == pytest.approx(1.0)
    table = held_out_table([report, with_views])
    rows = table.splitlines()
    assert rows[0].endswith("| clean vs view: EER | TAR@FAR=1e-3 |")
    assert rows[2] == "| run | 1.0000 | 0.00% | 100.00% | 100.00% | - | - |"
    assert rows[3] == "| run | 1.0000 | 0.00% | 100.00% | 100.00% | 100.00% | 0.00% |"
    assert rows[-1] == (
        "4 same-person and 6 different-person pairs; clean vs view (view seeds 3, 4):"
        " 2 same-person and 2 different-person pairs"
    )

    # Views that make no same-person pair measure nothing: left out, not 100% EER.
    strangers = (_unit_rows(1.9), np.array(["c"]), np.array(["c0.jpg"]))
    no_genuine = held_out_report("run", emb, people, paths, strangers, view_seeds=(1,))
    assert no_genuine.view_eer is None and no_genuine.view_genuine_pairs == 0
    assert held_out_table([no_genuine]).endswith("; no views of these faces measured")


def test_held_out_report_needs_both_kinds_of_pairs() -> None:
    emb = _unit_rows(0.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="same-person and different-person"):
        held_out_report("run", emb, np.array(["a", "b", "c"]), np.array(["1", "2", "3"]))
    with pytest.raises(ValueError, match="same-person and different-person"):
        held_out_report("run", emb, np.array(["a", "a", "a"]), np.array(["1", "2", "3"]))


@pytest.mark.parametrize("seed", [0, 1])
def test_weighted_metrics_count_a_pair_as_often_as_its_weight(seed: int) -> None:
    scores, same = _random_scores(seed)
    weights = np.random.default_rng(seed + 10).integers(0, 4, len(scores))
    repeated = np.repeat(scores, weights), np.repeat(same, weights)
    assert equal_error_rate(scores, same, weights) == pytest.approx(equal_error_rate(*repeated))
    for far in (1e-2, 0.1):
        assert tar_at_far(scores, same, far, weights) == pytest.approx(tar_at_far(*repeated, far))
    assert equal_error_rate(scores, same, np.ones(len(scores))) == equal_error_rate(scores, same)


def _people_pairs(n_people: int, faces_each: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(same, first person, second person) of every unordered pair of faces."""
    people = np.repeat(np.arange(n_people), faces_each)
    i, j = np.triu_indices(len(people), k=1)
    return people[i] == people[j], people[i], people[j]


def test_paired_bootstrap_of_a_model_against_itself_finds_no_difference() -> None:
    same, first, second = _people_pairs(12, 3)
    scores = np.where(same, 0.6, 0.3) + np.random.default_rng(0).normal(0, 0.15, len(same))
    d = paired_bootstrap("b", "a", scores, scores, same, (first, second), resamples=50)
    assert d.eer == (0.0, 0.0, 0.0) and d.tar_at_far_1e3 == (0.0, 0.0, 0.0)
    assert (d.eer_better, d.tar_better) == (0.0, 0.0)


def test_paired_bootstrap_brackets_a_real_gain_and_not_noise() -> None:
    same, first, second = _people_pairs(30, 3)
    rng = np.random.default_rng(1)
    reference = np.where(same, 0.6, 0.3) + rng.normal(0, 0.15, len(same))
    # Better: every same-person pair scores 0.1 higher, nothing else moves.
    better = reference + 0.1 * same
    d = paired_bootstrap("better", "ref", better, reference, same, (first, second), 200)
    observed, low, high = d.eer
    assert observed < 0 and low <= observed <= high < 0, d.eer
    assert d.eer_better > 0.95
    # Noise: the same scores with small independent jitter, no systematic change.
    jitter = reference + rng.normal(0, 0.02, len(same))
    n = paired_bootstrap("jitter", "ref", jitter, reference, same, (first, second), 200)
    assert n.eer[1] < 0 < n.eer[2], n.eer
    table = paired_table([d, n])
    assert table.splitlines()[0].startswith("| weights vs ref | EER difference [95% interval]")
    assert table.splitlines()[2].startswith(f"| better | {100 * observed:+.2f} [")
    assert "200 resamples" in table


def test_best_accuracy_is_the_best_of_every_candidate_threshold_with_ties() -> None:
    rng = np.random.default_rng(5)
    scores = np.round(rng.normal(size=300), 1)  # many tied scores
    same = rng.random(300) < 0.3
    accuracy, threshold = best_accuracy(scores, same)
    s = np.unique(scores)
    candidates = np.r_[s[0] - 1e-6, (s[:-1] + s[1:]) / 2.0, s[-1] + 1e-6]
    each = [float(np.mean((scores >= t) == same)) for t in candidates]
    assert accuracy == pytest.approx(max(each))
    assert threshold == candidates[int(np.argmax(each))]
