"""Held-out figures: how a model does on every pair of held-out training people.

Which weights ship is decided on these people (never on LFW's test people),
by a rule written down before the candidates finish training. Pure numpy:
``trainer.workflow.validate`` embeds the faces and calls :func:`held_out_report`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from trainer.metrics import equal_error_rate, roc_auc, tar_at_far


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
