"""LFW evaluation of an embedding backend, from the face caches.

Protocols (scores are cosine similarities; accept when score >= threshold):
- View 1: accuracy on pairsDevTest with the threshold that is best on
  pairsDevTrain; ROC AUC, EER and TAR at FAR = 1e-3 on pairsDevTest.
- View 2: 10-fold accuracy on pairs.txt (only meaningful for backends trained
  on outside data: our model trained on View 2 people).
- Identification on the test people: one image per person enrolled, the
  others probe; rank-1 and open-set DIR at FAR = 1% with impostors being
  test people who have a single image (never enrolled).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedder.model import InferenceViews
from trainer.data import FaceData, load_faces
from trainer.lfw import Pair, read_pairs, read_view2_folds
from trainer.metrics import (
    Roc,
    accuracy_at,
    best_accuracy,
    equal_error_rate,
    identification,
    kfold_accuracy,
    roc_auc,
    roc_curve,
    tar_at_far,
    threshold_at_far,
)
from trainer.run import RunFolder


@dataclass(frozen=True)
class EvalReport:
    """One backend's figures; accuracies are fractions in [0, 1]."""

    backend: str
    devtest_accuracy: float
    devtrain_threshold: float
    devtest_accuracy_val_threshold: float
    val_threshold: float
    devtest_auc: float
    devtest_eer: float
    devtest_tar_at_far_1e3: float
    rank1: float
    dir_at_far_1pct: float
    view2_mean: float | None
    view2_std: float | None
    missing_pairs: int
    roc: Roc


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows L2-normalised."""
    out: np.ndarray = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return out


def stem_index(data: FaceData) -> dict[str, int]:
    """Image file stem (``Name_0001``) -> row in ``data``."""
    return {Path(str(p)).stem: i for i, p in enumerate(data.path)}


def pair_scores(
    embeddings: np.ndarray, index: dict[str, int], pairs: list[Pair]
) -> tuple[np.ndarray, np.ndarray, int]:
    """(scores, same, missing) of the pairs whose both images are cached."""
    scores, same, missing = [], [], 0
    for pair in pairs:
        a, b = pair.names()
        if a not in index or b not in index:
            missing += 1
            continue
        scores.append(float(embeddings[index[a]] @ embeddings[index[b]]))
        same.append(pair.same)
    return np.array(scores), np.array(same, dtype=bool), missing


def evaluate_backend(
    name: str,
    embeddings: np.ndarray,
    data: FaceData,
    test_mask: np.ndarray,
    lfw_root: Path,
    with_view2: bool,
    val_threshold: float,
) -> EvalReport:
    """All protocols for unit ``embeddings`` (one row per face of ``data``);
    ``test_mask`` marks the faces of View 1 test people. DevTest accuracy is
    given at two thresholds: the one best on pairsDevTrain (the LFW View 1
    protocol; biased upwards when pairsDevTrain people were trained on) and
    ``val_threshold`` (best on pairs of held-out training people)."""
    index = stem_index(data)
    tr_s, tr_y, miss_tr = pair_scores(embeddings, index, read_pairs(lfw_root / "pairsDevTrain.txt"))
    te_s, te_y, miss_te = pair_scores(embeddings, index, read_pairs(lfw_root / "pairsDevTest.txt"))
    _, threshold = best_accuracy(tr_s, tr_y)
    view2_mean = view2_std = None
    if with_view2:
        folds = [
            pair_scores(embeddings, index, f) for f in read_view2_folds(lfw_root / "pairs.txt")
        ]
        view2_mean, view2_std = kfold_accuracy([f[0] for f in folds], [f[1] for f in folds])
    ident = identification_of(embeddings[test_mask], data.person[test_mask])
    return EvalReport(
        backend=name,
        devtest_accuracy=accuracy_at(te_s, te_y, threshold),
        devtrain_threshold=threshold,
        devtest_accuracy_val_threshold=accuracy_at(te_s, te_y, val_threshold),
        val_threshold=val_threshold,
        devtest_auc=roc_auc(te_s, te_y),
        devtest_eer=equal_error_rate(te_s, te_y),
        devtest_tar_at_far_1e3=tar_at_far(te_s, te_y, 1e-3),
        rank1=ident[0],
        dir_at_far_1pct=ident[1],
        view2_mean=view2_mean,
        view2_std=view2_std,
        missing_pairs=miss_tr + miss_te,
        roc=roc_curve(te_s, te_y),
    )


def identification_of(emb: np.ndarray, people: np.ndarray) -> tuple[float, float]:
    """(rank-1, DIR at FAR 1%) of unit ``emb`` labelled ``people``: the first
    face of each person with two or more faces enrolled, the rest of theirs
    probe, people with a single face are the impostors."""
    names, counts = np.unique(people, return_counts=True)
    multi = set(names[counts >= 2].tolist())
    gallery_idx, probe_idx, impostor_idx, seen = [], [], [], set()
    for i, p in enumerate(people.tolist()):
        if p not in multi:
            impostor_idx.append(i)
        elif p not in seen:
            seen.add(p)
            gallery_idx.append(i)
        else:
            probe_idx.append(i)
    res = identification(
        emb[gallery_idx], people[gallery_idx], emb[probe_idx], people[probe_idx], emb[impostor_idx]
    )
    return res.rank1, res.dir_at_far


def best_threshold(embeddings: np.ndarray, people: np.ndarray, seed: int) -> float:
    """The accuracy-maximising cosine threshold on pairs of (non-test)
    validation people: all same-person pairs (at most 3,000) and 3,000
    different-person pairs."""
    from trainer.metrics import sample_pairs

    a, b, same = sample_pairs(people, n_different=3000, seed=seed, max_same=3000)
    return best_accuracy(np.sum(embeddings[a] * embeddings[b], axis=1), same)[1]


def calibrate_threshold(embeddings: np.ndarray, people: np.ndarray, far: float, seed: int) -> float:
    """Cosine threshold at ``far`` on pairs of (non-test) validation people."""
    from trainer.metrics import sample_pairs

    a, b, same = sample_pairs(people, n_different=200_000, seed=seed)
    scores = np.sum(embeddings[a] * embeddings[b], axis=1)
    return threshold_at_far(scores, same, far)


def markdown_table(reports: list[EvalReport]) -> str:
    """The comparison table of docs/BENCHMARKS.md."""
    rows = [
        "| backend | DevTest acc (thr. from DevTrain) | DevTest acc (thr. from held-out "
        "people) | AUC | EER | TAR@FAR=1e-3 | rank-1 | DIR@FAR=1% | View 2 (10-fold) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        v2 = (
            f"{r.view2_mean:.2%} ± {r.view2_std:.2%}"
            if r.view2_mean is not None
            else "n/a (trained on View 2 people)"
        )
        rows.append(
            f"| {r.backend} | {r.devtest_accuracy:.2%} | {r.devtest_accuracy_val_threshold:.2%} "
            f"| {r.devtest_auc:.4f} | {r.devtest_eer:.2%} "
            f"| {r.devtest_tar_at_far_1e3:.2%} | {r.rank1:.2%} | {r.dir_at_far_1pct:.2%} | {v2} |"
        )
    return "\n".join(rows)


def plot_roc(reports: list[EvalReport], path: Path) -> Path:
    """ROC (TAR vs FAR, log FAR) and DET-style plot of pairsDevTest to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for r in reports:
        axes[0].plot(
            np.maximum(r.roc.far, 1e-4), r.roc.tar, label=f"{r.backend} (AUC {r.devtest_auc:.3f})"
        )
        axes[1].plot(np.maximum(r.roc.far, 1e-4), np.maximum(1 - r.roc.tar, 1e-4), label=r.backend)
    axes[0].set(xscale="log", xlabel="FAR", ylabel="TAR", title="ROC, LFW pairsDevTest")
    axes[1].set(
        xscale="log", yscale="log", xlabel="FAR", ylabel="FRR", title="DET, LFW pairsDevTest"
    )
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def evaluate_run(
    run: RunFolder, lfw_root: Path, caches: Sequence[Path], views: InferenceViews
) -> str:
    """Evaluate the run's model (every face embedded as ``views``) and
    dlib-resnet on the same cached LFW faces: ``caches`` hold the faces of
    pairsDevTrain and pairsDevTest (the LFW training source and the DevTest
    people). Writes the figures and the ROC/DET plot into the run folder;
    returns the markdown table."""
    from dataclasses import asdict

    from trainer.calibrate import run_model, validation_faces
    from trainer.embed import embed_views
    from trainer.lfw import devtest_people
    from trainer.train import check_caches_fit

    model, cfg = run_model(run)
    check_caches_fit(cfg.model, caches)
    data = load_faces(list(caches))
    test_mask = np.isin(data.person, sorted(devtest_people(lfw_root)))
    val = validation_faces(run, cfg)
    size = cfg.model.input_size
    ours = unit(embed_views(model, data, size, views))
    ours_val = best_threshold(unit(embed_views(model, val, size, views)), val.person, 7)
    reports = [
        evaluate_backend("likeness-mobilenet", ours, data, test_mask, lfw_root, False, ours_val)
    ]
    if data.teacher is not None and val.teacher is not None:
        dlib_val = best_threshold(unit(val.teacher), val.person, 7)
        reports.append(
            evaluate_backend(
                "dlib-resnet", unit(data.teacher), data, test_mask, lfw_root, True, dlib_val
            )
        )
    plot_roc(reports, run.roc_plot)
    summary = [{k: v for k, v in asdict(r).items() if k != "roc"} for r in reports]
    summary[0]["tta_shift_px"] = views.shift_px
    summary[0]["tta_flip"] = views.flip
    run.evaluation.write_text(json.dumps(summary, indent=2))
    return markdown_table(reports)
