"""The two test sets of issue 22, one table: LFW pairsDevTest and every
same/different pair of the held-out CelebA-crop people
(trainer/data/celeba-test-people.txt), for a trained model and dlib-resnet
(the caches' teacher descriptors) in one run.

Scores are cosine similarities (accept when score >= threshold). Per test
set and backend: accuracy by 10-fold cross-validation over the set's pairs
(the threshold of each fold chosen on the other nine; pairs dealt to folds
by a fixed seed; as many folds as pairs below ten), ROC AUC, EER, TAR at
FAR 1e-3 and 1e-4, and rank-1 with one face per person enrolled
(trainer.evaluate.identification_of). All pairs of the CelebA people are
mostly different-person pairs, so their accuracy is dominated by those: the
pair counts are in the table. The
held-out people are measured once, for the chosen model: never to choose
or tune one (trainer/recipes/v7-rule.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedder.model import InferenceViews
from trainer.data import FaceData, load_faces
from trainer.evaluate import identification_of, pair_scores, stem_index, unit
from trainer.lfw import read_pairs
from trainer.metrics import equal_error_rate, kfold_accuracy, roc_auc, tar_at_far
from trainer.run import RunFolder

#: Folds of the accuracy, and the seed that deals pairs to them.
FOLDS = 10
FOLD_SEED = 22


@dataclass(frozen=True)
class TestSetRow:
    """One backend on one test set; rates are fractions in [0, 1]."""

    test_set: str
    backend: str
    people: int
    faces: int
    same_pairs: int
    different_pairs: int
    accuracy: float
    accuracy_std: float
    auc: float
    eer: float
    tar_at_far_1e3: float
    tar_at_far_1e4: float
    rank1: float
    #: The backend's served default threshold (cosine) and the share of
    #: same-person pairs (TAR) and different-person pairs (FAR) at or above
    #: it; None when no served threshold was given.
    served_threshold: float | None = None
    tar_at_served: float | None = None
    far_at_served: float | None = None


def all_pairs(people: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, same): every unordered pair of faces, a < b, one label per face."""
    a, b = np.triu_indices(len(people), k=1)
    return a, b, people[a] == people[b]


def pair_report(
    test_set: str,
    backend: str,
    scores: np.ndarray,
    same: np.ndarray,
    embeddings: np.ndarray,
    people: np.ndarray,
    served: float | None = None,
) -> TestSetRow:
    """The row of pairs (``scores``, ``same``) and of the faces they come
    from (unit ``embeddings``, one row per face, ``people`` its labels, for
    rank-1); with ``served``, the TAR and FAR at that threshold. ValueError
    when the pairs lack a same or a different pair."""
    same = same.astype(bool)
    if same.all() or not same.any():
        raise ValueError(f"{test_set}: needs both same-person and different-person pairs")
    folds = min(FOLDS, len(scores))
    fold = np.random.default_rng(FOLD_SEED).permutation(len(scores)) % folds
    accuracy, spread = kfold_accuracy(
        [scores[fold == k] for k in range(folds)], [same[fold == k] for k in range(folds)]
    )
    return TestSetRow(
        test_set=test_set,
        backend=backend,
        people=len(np.unique(people)),
        faces=len(people),
        same_pairs=int(same.sum()),
        different_pairs=int((~same).sum()),
        accuracy=accuracy,
        accuracy_std=spread,
        auc=roc_auc(scores, same),
        eer=equal_error_rate(scores, same),
        tar_at_far_1e3=tar_at_far(scores, same, 1e-3),
        tar_at_far_1e4=tar_at_far(scores, same, 1e-4),
        rank1=identification_of(embeddings, people)[0],
        served_threshold=served,
        tar_at_served=None if served is None else float(np.mean(scores[same] >= served)),
        far_at_served=None if served is None else float(np.mean(scores[~same] >= served)),
    )


def all_pairs_report(
    test_set: str,
    backend: str,
    embeddings: np.ndarray,
    people: np.ndarray,
    served: float | None = None,
) -> TestSetRow:
    """The row of every same/different pair of the faces of unit ``embeddings``."""
    a, b, same = all_pairs(people)
    scores = np.einsum("ij,ij->i", embeddings[a], embeddings[b])
    return pair_report(test_set, backend, scores, same, embeddings, people, served)


def devtest_report(
    backend: str,
    embeddings: np.ndarray,
    data: FaceData,
    lfw_root: Path,
    served: float | None = None,
) -> TestSetRow:
    """The row of LFW's pairsDevTest (pairs with a face not cached are left
    out) for unit ``embeddings`` of ``data``, a cache of the DevTest people."""
    pairs = read_pairs(lfw_root / "pairsDevTest.txt")
    scores, same, _ = pair_scores(embeddings, stem_index(data), pairs)
    return pair_report("LFW pairsDevTest", backend, scores, same, embeddings, data.person, served)


def held_out_faces(cache: Path, people: set[str]) -> FaceData:
    """The faces of ``people`` in ``cache`` (a source's cache holding every
    person). ValueError when none of them is there."""
    data = load_faces([cache])
    keep = np.flatnonzero(np.isin(data.person, np.array(sorted(people), dtype=str)))
    if not len(keep):
        raise ValueError(f"{cache}: holds no face of the {len(people)} listed people")
    return data.subset(keep)


def read_rows(path: Path) -> list[TestSetRow]:
    """The rows ``likeness-train test-sets`` wrote to ``path`` (JSON, a list
    of TestSetRow fields). ValueError names the file when it is not that."""
    try:
        raw = json.loads(path.read_text())
        return [TestSetRow(**row) for row in raw]
    except (OSError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not the rows of likeness-train test-sets: {exc}") from None


def markdown_table(rows: Sequence[TestSetRow]) -> str:
    """One table of both test sets and every backend."""
    lines = [
        "| test set | backend | people / faces | same / different pairs | accuracy (10-fold) "
        "| AUC | EER | TAR@FAR=1e-3 | TAR@FAR=1e-4 | rank-1 | served threshold: TAR / FAR |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        served = (
            "n/a"
            if r.served_threshold is None
            else f"{r.served_threshold:.4f}: {r.tar_at_served:.2%} / {r.far_at_served:.1e}"
        )
        lines.append(
            f"| {r.test_set} | {r.backend} | {r.people:,} / {r.faces:,} "
            f"| {r.same_pairs:,} / {r.different_pairs:,} "
            f"| {r.accuracy:.2%} ± {r.accuracy_std:.2%} | {r.auc:.4f} | {r.eer:.2%} "
            f"| {r.tar_at_far_1e3:.2%} | {r.tar_at_far_1e4:.2%} | {r.rank1:.2%} | {served} |"
        )
    return "\n".join(lines)


def evaluate_test_sets(
    run: RunFolder,
    lfw_root: Path,
    lfw_cache: Path,
    celeba_cache: Path,
    celeba_people: set[str],
    views: InferenceViews,
    served: Mapping[str, float] | None = None,
) -> list[TestSetRow]:
    """The run's model (faces embedded as ``views``) and dlib-resnet (the
    caches' teacher descriptors) on LFW pairsDevTest (``lfw_cache``: the
    DevTest people's faces) and on every pair of ``celeba_people``'s faces in
    ``celeba_cache``; rows in the order (set, backend). ``served``: a
    backend's served default threshold by backend name ("likeness-mobilenet",
    "dlib-resnet"), whose TAR and FAR each row then reports. ValueError when
    a cache does not fit the run's model or lacks teacher descriptors."""
    from trainer.calibrate import run_model
    from trainer.embed import embed_views
    from trainer.train import check_caches_fit

    model, cfg = run_model(run)
    check_caches_fit(cfg.model, [lfw_cache, celeba_cache])
    size = cfg.model.input_size
    lfw = load_faces([lfw_cache])
    celeba = held_out_faces(celeba_cache, celeba_people)
    if lfw.teacher is None or celeba.teacher is None:
        raise ValueError("the test-set caches need dlib-resnet teacher descriptors")
    rows = []
    for name, backend in (("likeness-mobilenet", None), ("dlib-resnet", "teacher")):
        lfw_emb = unit(lfw.teacher if backend else embed_views(model, lfw, size, views))
        rows.append(devtest_report(name, lfw_emb, lfw, lfw_root, (served or {}).get(name)))
    celeba_set = f"CelebA held-out ({len(celeba_people)} people listed)"
    for name, backend in (("likeness-mobilenet", None), ("dlib-resnet", "teacher")):
        emb = unit(celeba.teacher if backend else embed_views(model, celeba, size, views))
        threshold = (served or {}).get(name)
        rows.append(all_pairs_report(celeba_set, name, emb, celeba.person, threshold))
    return rows
