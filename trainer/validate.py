"""Held-out figures: how a model does on every pair of held-out training people.

Which weights ship is decided on these people (never on LFW's test people),
by a rule written down before the candidates finish training. Pure numpy:
``trainer.selection.validate`` embeds the faces and calls :func:`held_out_report`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from trainer.metrics import (
    RankedPairs,
    equal_error_rate,
    roc_auc,
    roc_eer,
    roc_tar_at_far,
    tar_at_far,
)


@dataclass(frozen=True)
class HeldOutReport:
    """Verification figures of one model on held-out training people.

    Scores are cosine similarities of unit embeddings; rates are fractions in
    [0, 1]. The first figures cover every unordered pair of the clean
    (cached) faces. ``view_*`` pair each clean face with a seeded view
    (trainer.views: mirrored, degraded, alignment jittered; seeds
    ``view_seeds``) of every *other* image, the case of a good enrolment photo
    against a worse probe; they are None when no views were given or the
    views make no same-person or no different-person pair.
    """

    name: str
    auc: float
    eer: float
    tar_at_far_1e3: float
    tar_at_far_1e2: float
    genuine_pairs: int
    impostor_pairs: int
    view_eer: float | None = None
    view_tar_at_far_1e3: float | None = None
    view_genuine_pairs: int = 0
    view_impostor_pairs: int = 0
    view_seeds: tuple[int, ...] = ()


@dataclass(frozen=True)
class PairedDifference:
    """How model ``name`` differs from ``reference`` on the same held-out
    pairs: ``eer`` and ``tar_at_far_1e3`` are (observed, low, high), the
    difference name - reference as a fraction (negative EER = fewer errors)
    and the central ``level`` interval of a paired bootstrap over people
    (``resamples`` resamples). ``*_better`` is the share of resamples in
    which ``name`` was strictly better (lower EER, higher TAR)."""

    name: str
    reference: str
    eer: tuple[float, float, float]
    tar_at_far_1e3: tuple[float, float, float]
    eer_better: float
    tar_better: float
    resamples: int
    level: float


def all_pairs(embeddings: np.ndarray, people: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores, same) of every unordered pair i < j of the rows of unit
    ``embeddings`` (one per face; ``people`` holds each face's person)."""
    i, j = np.triu_indices(len(people), k=1)
    scores = np.sum(embeddings[i] * embeddings[j], axis=1)
    return scores, people[i] == people[j]


def cross_pairs(
    clean: np.ndarray,
    clean_people: np.ndarray,
    clean_paths: np.ndarray,
    views: np.ndarray,
    view_people: np.ndarray,
    view_paths: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, same) of every (clean face, view) pair whose view is of
    another source image (a view of the same file would be too easy). Rows
    of ``clean`` and ``views`` are unit vectors, so scores are cosines."""
    scores = clean @ views.T
    same = clean_people[:, None] == view_people[None, :]
    other = clean_paths[:, None] != view_paths[None, :]
    return scores[other], same[other]


def held_out_report(
    name: str,
    embeddings: np.ndarray,
    people: np.ndarray,
    paths: np.ndarray,
    views: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    view_seeds: tuple[int, ...] = (),
) -> HeldOutReport:
    """Figures for unit ``embeddings`` of held-out faces (``people`` and
    source ``paths`` per row); ``views`` = (unit embeddings, people, source
    paths) of views of those faces with seeds ``view_seeds``, or None.
    Raises ValueError unless the faces make both same-person and
    different-person pairs (as when nobody was held out: the figures would
    mean nothing)."""
    scores, same = all_pairs(embeddings, people)
    if not same.any() or same.all():
        raise ValueError("held-out faces need same-person and different-person pairs")
    report = HeldOutReport(
        name=name,
        auc=roc_auc(scores, same),
        eer=equal_error_rate(scores, same),
        tar_at_far_1e3=tar_at_far(scores, same, 1e-3),
        tar_at_far_1e2=tar_at_far(scores, same, 1e-2),
        genuine_pairs=int(same.sum()),
        impostor_pairs=int((~same).sum()),
    )
    if views is None:
        return report
    v_scores, v_same = cross_pairs(embeddings, people, paths, *views)
    if not v_same.any() or v_same.all():
        return report
    return replace(
        report,
        view_eer=equal_error_rate(v_scores, v_same),
        view_tar_at_far_1e3=tar_at_far(v_scores, v_same, 1e-3),
        view_genuine_pairs=int(v_same.sum()),
        view_impostor_pairs=int((~v_same).sum()),
        view_seeds=view_seeds,
    )


def paired_bootstrap(
    name: str,
    reference: str,
    scores: np.ndarray,
    reference_scores: np.ndarray,
    same: np.ndarray,
    pair_people: tuple[np.ndarray, np.ndarray],
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """Paired bootstrap over people of the EER and TAR@FAR=1e-3 differences
    between two models scored on the same pairs (``scores`` and
    ``reference_scores``, cosines; ``same`` labels; ``pair_people`` the two
    faces' person indices, 0 .. P-1, per pair).

    Each resample draws P people with replacement; a pair then counts once
    per copy of its person (same-person pairs) or per combination of copies
    (pairs of two people), so faces of one person, whose errors go together,
    stay together. Both models see the same resamples, so their shared
    luck cancels out of the difference."""
    first, second = pair_people
    n_people = int(max(first.max(), second.max())) + 1
    rng = np.random.default_rng(seed)
    ranked, ranked_ref = RankedPairs.of(scores, same), RankedPairs.of(reference_scores, same)
    observed, observed_ref = ranked.roc(), ranked_ref.roc()
    d_eer = np.empty(resamples)
    d_tar = np.empty(resamples)
    for k in range(resamples):
        copies = np.bincount(rng.integers(0, n_people, n_people), minlength=n_people)
        weights = np.where(same, copies[first], copies[first] * copies[second]).astype(np.float64)
        roc, roc_ref = ranked.roc(weights), ranked_ref.roc(weights)
        d_eer[k] = roc_eer(roc) - roc_eer(roc_ref)
        d_tar[k] = roc_tar_at_far(roc, 1e-3) - roc_tar_at_far(roc_ref, 1e-3)
    tail = (1.0 - level) / 2.0 * 100.0
    return PairedDifference(
        name=name,
        reference=reference,
        eer=(
            roc_eer(observed) - roc_eer(observed_ref),
            float(np.percentile(d_eer, tail)),
            float(np.percentile(d_eer, 100.0 - tail)),
        ),
        tar_at_far_1e3=(
            roc_tar_at_far(observed, 1e-3) - roc_tar_at_far(observed_ref, 1e-3),
            float(np.percentile(d_tar, tail)),
            float(np.percentile(d_tar, 100.0 - tail)),
        ),
        eer_better=float(np.mean(d_eer < 0)),
        tar_better=float(np.mean(d_tar > 0)),
        resamples=resamples,
        level=level,
    )


def paired_table(differences: list[PairedDifference]) -> str:
    """The differences as markdown tables in percentage points, one per
    reference model, in the order the references first appear."""
    if not differences:
        return ""
    d0 = differences[0]
    references = list(dict.fromkeys(d.reference for d in differences))
    tables = []
    for reference in references:
        rows = [
            f"| weights vs {reference} | EER difference [{d0.level:.0%} interval] | lower EER in"
            f" | TAR@FAR=1e-3 difference [{d0.level:.0%} interval] | higher TAR in |",
            "|---|---|---|---|---|",
        ]
        for d in differences:
            if d.reference == reference:
                rows.append(
                    f"| {d.name} | {_points(d.eer)} | {d.eer_better:.0%} "
                    f"| {_points(d.tar_at_far_1e3)} | {d.tar_better:.0%} |"
                )
        tables.append("\n".join(rows))
    note = (
        f"paired bootstrap over held-out people, {d0.resamples:,} resamples;"
        ' "lower EER in" / "higher TAR in": share of resamples where the row\'s model was better'
    )
    return "\n\n".join([*tables, note])


def _points(diff: tuple[float, float, float]) -> str:
    observed, low, high = (100.0 * x for x in diff)
    return f"{observed:+.2f} [{low:+.2f}, {high:+.2f}]"


def held_out_table(reports: list[HeldOutReport]) -> str:
    """The reports as a markdown table (AUC as a fraction, rates as
    percentages), with the pair counts and view seeds of the last report."""
    with_views = any(r.view_eer is not None for r in reports)
    head = "| weights | AUC | EER | TAR@FAR=1e-3 | TAR@FAR=1e-2 |"
    rule = "|---|---|---|---|---|"
    if with_views:
        head += " clean vs view: EER | TAR@FAR=1e-3 |"
        rule += "---|---|"
    rows = [head, rule]
    for r in reports:
        row = (
            f"| {r.name} | {r.auc:.4f} | {r.eer:.2%} | {r.tar_at_far_1e3:.2%} "
            f"| {r.tar_at_far_1e2:.2%} |"
        )
        if with_views:
            row += (
                f" {r.view_eer:.2%} | {r.view_tar_at_far_1e3:.2%} |"
                if r.view_eer is not None and r.view_tar_at_far_1e3 is not None
                else " - | - |"
            )
        rows.append(row)
    if reports:
        r = reports[-1]
        footer = (
            f"\n{r.genuine_pairs:,} same-person and {r.impostor_pairs:,} different-person pairs"
        )
        if r.view_eer is not None:
            seeds = ", ".join(str(seed) for seed in r.view_seeds)
            footer += (
                f"; clean vs view (view seeds {seeds}): {r.view_genuine_pairs:,} same-person"
                f" and {r.view_impostor_pairs:,} different-person pairs"
            )
        else:
            footer += "; no views of these faces measured"
        rows.append(footer)
    return "\n".join(rows)
