"""trainer/evaluate.py on synthetic embeddings whose answers are known: the
View 1 pairs are scored from the cached faces (missing ones counted), the
DevTrain threshold is applied to DevTest, identification enrols one face
per person and treats one-image people as impostors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.data import FaceData
from trainer.evaluate import (
    EvalReport,
    evaluate_backend,
    markdown_table,
    pair_scores,
    stem_index,
    unit,
)
from trainer.lfw import Pair

PEOPLE = ["Ann_A", "Bob_B", "Cy_C", "Di_D", "Ed_E"]  # Ed_E has one image: an impostor
IMAGES = {"Ann_A": 3, "Bob_B": 3, "Cy_C": 3, "Di_D": 3, "Ed_E": 1}


def _faces(spread: float, seed: int = 0) -> tuple[FaceData, np.ndarray]:
    """One face per image; each person's faces lie within ``spread`` of a
    random direction of their own (orthogonal directions: separable)."""
    rng = np.random.default_rng(seed)
    rows, person, path = [], [], []
    for k, name in enumerate(PEOPLE):
        centre = np.eye(16)[k]
        for i in range(1, IMAGES[name] + 1):
            rows.append(centre + spread * rng.standard_normal(16))
            person.append(name)
            path.append(f"lfw/{name}/{name}_{i:04d}.jpg")
    n = len(rows)
    data = FaceData(
        crops=np.zeros((n, 4, 4, 3), np.uint8),
        landmarks=np.zeros((n, 68, 2), np.float32),
        person=np.array(person),
        path=np.array(path),
        teacher=None,
    )
    return data, unit(np.array(rows, np.float32))


def _write_pairs(root: Path) -> None:
    train = ["2", "Ann_A 1 2", "Bob_B 1 3", "Ann_A 1 Bob_B 2", "Cy_C 1 Di_D 1"]
    # One DevTest pair names an image that is not cached (Di_D_0009).
    test = ["3", "Cy_C 2 3", "Di_D 1 2", "Di_D 1 9", "Ann_A 3 Cy_C 1", "Bob_B 2 Ed_E 1"]
    (root / "pairsDevTrain.txt").write_text("\n".join(train) + "\n")
    (root / "pairsDevTest.txt").write_text("\n".join(test) + "\n")


def test_pair_scores_are_the_dot_products_of_the_cached_faces() -> None:
    data, emb = _faces(0.1)
    index = stem_index(data)
    pairs = [Pair("Ann_A", 1, "Ann_A", 2, True), Pair("Ann_A", 1, "Zed_Z", 1, False)]
    scores, same, missing = pair_scores(emb, index, pairs)
    assert missing == 1 and same.tolist() == [True]
    a, b = index["Ann_A_0001"], index["Ann_A_0002"]
    assert scores[0] == pytest.approx(float(emb[a] @ emb[b]))


def test_separable_embeddings_score_perfectly(tmp_path: Path) -> None:
    _write_pairs(tmp_path)
    data, emb = _faces(0.05)
    test_mask = np.ones(len(data), bool)
    report = evaluate_backend("synthetic", emb, data, test_mask, tmp_path, False, 0.5)
    assert report.missing_pairs == 1
    assert report.devtest_accuracy == 1.0 and report.devtest_accuracy_val_threshold == 1.0
    assert report.devtest_auc == pytest.approx(1.0) and report.devtest_eer == 0.0
    assert report.rank1 == 1.0
    assert 0.0 < report.devtrain_threshold < 1.0
    assert report.view2_mean is None and report.view2_std is None
    table = markdown_table([report])
    assert "| synthetic | 100.00% | 100.00% | 1.0000 | 0.00% |" in table
    assert "n/a (trained on View 2 people)" in table


def test_a_threshold_above_every_score_rejects_the_same_person_pairs(tmp_path: Path) -> None:
    _write_pairs(tmp_path)
    data, emb = _faces(0.05)
    report = evaluate_backend("strict", emb, data, np.ones(len(data), bool), tmp_path, False, 1.01)
    # DevTest: 2 same-person pairs (cached) rejected, 2 different-person pairs right.
    assert report.devtest_accuracy_val_threshold == pytest.approx(0.5)
    assert report.devtest_accuracy == 1.0


def test_identification_confuses_people_whose_faces_are_mixed_up(tmp_path: Path) -> None:
    _write_pairs(tmp_path)
    data, emb = _faces(0.05)
    swapped = emb.copy()
    bob = np.flatnonzero(data.person == "Bob_B")
    ann = np.flatnonzero(data.person == "Ann_A")
    # Bob's probes (his 2nd and 3rd images) look like Ann's enrolled face.
    swapped[bob[1:]] = emb[ann[0]]
    report: EvalReport = evaluate_backend(
        "mixed", swapped, data, np.ones(len(data), bool), tmp_path, False, 0.5
    )
    # 8 probes (2 per multi-image person); Bob's 2 go to Ann.
    assert report.rank1 == pytest.approx(6 / 8)
