"""Calibration: the served thresholds (operating points at FAR 1e-2, 1e-3
and 1e-4), chosen on the run's held-out training people (never test
people), with the test-time views the model will serve, by the recipe's
rule (:data:`RULES`)."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedder.model import InferenceViews
from likeness.operating_points import OperatingPoint, SourceRate, point_from_dict, point_name
from trainer.config import TrainConfig
from trainer.data import FaceData, load_faces
from trainer.run import RunFolder

log = logging.getLogger(__name__)

#: The FARs a model ships operating points at.
FARS = (1e-2, 1e-3, 1e-4)

#: Different-person pairs sampled (with repetition) to set each threshold.
IMPOSTOR_PAIRS = 200_000

#: Rule: one threshold per FAR on the different-person pairs of all
#: validation sources pooled; the source with the most pairs rules it.
POOLED = "pooled"
#: Rule: per FAR, each validation source's own threshold (on
#: :data:`IMPOSTOR_PAIRS` different-person pairs within it), and the
#: largest of them is served, so the target FAR holds on every source.
STRICTEST_SOURCE = "strictest-source"
#: The rules a recipe's ``[calibration] rule`` may name.
RULES = (POOLED, STRICTEST_SOURCE)
#: Each rule in words (model cards).
RULE_TEXT = {
    POOLED: "each threshold is the one at its FAR on the different-person pairs of all"
    " held-out sources pooled",
    STRICTEST_SOURCE: "each threshold is the largest of the held-out sources' own"
    " thresholds at its FAR (each on different-person pairs drawn within the source),"
    " so the target holds on every source",
}


@dataclass(frozen=True)
class Calibration:
    """Thresholds (cosine similarity) at ``far`` on held-out training people;
    ours from faces embedded with the test-time views of ``tta_flip`` and
    ``tta_shift_px`` (embedder.model.InferenceViews). ``operating_points``
    (ours) and ``dlib_operating_points``: thresholds at each of :data:`FARS`
    on the same pairs, ``threshold`` being the one at ``far``; both chosen
    by ``rule`` (one of :data:`RULES`)."""

    far: float
    threshold: float
    dlib_threshold: float
    validation_faces: int
    tta_shift_px: int = 0
    tta_flip: bool = True
    operating_points: tuple[OperatingPoint, ...] = field(default_factory=tuple)
    dlib_operating_points: tuple[OperatingPoint, ...] = field(default_factory=tuple)
    rule: str = POOLED

    @property
    def views(self) -> InferenceViews:
        """The test-time views the threshold holds for."""
        return InferenceViews(flip=self.tta_flip, shift_px=self.tta_shift_px)

    def record(self) -> dict[str, Any]:
        """The JSON form a manifest keeps as ``calibration`` (the points
        themselves are the manifest's ``operating_points``)."""
        return {k: v for k, v in asdict(self).items() if k != "operating_points"}

    def save(self, path: Path) -> None:
        """Write it as JSON (what :meth:`load` reads)."""
        path.write_text(json.dumps(asdict(self), indent=2))

    @staticmethod
    def load(path: Path) -> Calibration:
        raw = json.loads(path.read_text())
        for key in ("operating_points", "dlib_operating_points"):
            raw[key] = tuple(point_from_dict(p) for p in raw.get(key, ()))
        return Calibration(**raw)


def operating_points(
    embeddings: np.ndarray,
    people: np.ndarray,
    sources: np.ndarray,
    fars: tuple[float, ...],
    seed: int,
    rule: str = POOLED,
) -> tuple[OperatingPoint, ...]:
    """One point per FAR of ``fars`` (none where the pairs are too few to
    reach it) for ``embeddings`` (L2-normalised, one per face of ``people``;
    ``sources`` names each face's source): the threshold (cosine, to 4
    decimals as served) chosen by ``rule``, with the TAR and FAR it gives on
    the pairs of each source (both faces from it).

    :data:`POOLED`: at most that fraction of the different-person pairs of
    all sources pooled score >= it; all same-person pairs and
    :data:`IMPOSTOR_PAIRS` different-person pairs (trainer.metrics.sample_pairs,
    seeded by ``seed``), as trainer.evaluate.calibrate_threshold draws them.
    :data:`STRICTEST_SOURCE`: the same drawn within each source (a source
    with one person has no different-person pairs and is left out), and the
    largest of the sources' thresholds; rates on each source's own pairs.
    Raises ValueError for an unknown rule."""
    if rule == POOLED:
        pooled = _Pairs.draw(embeddings, people, seed)
        samples = {
            str(name): pooled.within(sources == name, people)
            for name in sorted(set(sources.tolist()))
        }
        chosen = {"pooled": pooled}
    elif rule == STRICTEST_SOURCE:
        samples = {}
        for name in sorted(set(sources.tolist())):
            inside = sources == name
            if len(np.unique(people[inside])) < 2:
                log.warning("source %s: one person, no different-person pairs", name)
                continue
            samples[str(name)] = _Pairs.draw(embeddings[inside], people[inside], seed)
        chosen = samples
    else:
        raise ValueError(f"unknown calibration rule {rule!r}; expected one of {RULES}")
    from trainer.metrics import threshold_at_far

    points = []
    for far in fars:
        exact = [threshold_at_far(p.scores, p.same, far) for p in chosen.values()]
        if not exact or not all(math.isfinite(t) for t in exact):
            # Too few different-person pairs to reach this FAR: no point.
            log.warning("no threshold at FAR %g: too few different-person pairs", far)
            continue
        # Served to 4 decimals, as default_threshold always was; the rates
        # are measured at the served value (its FAR may differ from the
        # target by the pairs between the two).
        threshold = round(max(exact), 4)
        rates = tuple(pairs.rate(name, threshold) for name, pairs in samples.items())
        points.append(OperatingPoint(point_name(far), far, threshold, rates))
    return tuple(points)


@dataclass(frozen=True)
class _Pairs:
    """Sampled pairs: their cosine ``scores``, whether each is a
    same-person pair, and the people of the faces they were drawn from."""

    scores: np.ndarray
    same: np.ndarray
    people: np.ndarray
    a: np.ndarray
    b: np.ndarray

    @staticmethod
    def draw(embeddings: np.ndarray, people: np.ndarray, seed: int) -> _Pairs:
        from trainer.metrics import sample_pairs

        a, b, same = sample_pairs(people, n_different=IMPOSTOR_PAIRS, seed=seed)
        scores = np.sum(embeddings[a] * embeddings[b], axis=1)
        return _Pairs(scores, same, people, a, b)

    def within(self, inside: np.ndarray, people: np.ndarray) -> _Pairs:
        """The pairs of these whose faces both lie ``inside`` (a mask over
        the faces drawn from), over those faces' ``people``."""
        keep = inside[self.a] & inside[self.b]
        return _Pairs(
            self.scores[keep], self.same[keep], people[inside], self.a[keep], self.b[keep]
        )

    def rate(self, source: str, threshold: float) -> SourceRate:
        genuine, impostor = self.scores[self.same], self.scores[~self.same]
        counts = np.unique(self.people, return_counts=True)[1]
        faces = len(self.people)
        distinct = (faces * (faces - 1) - int(np.sum(counts * (counts - 1)))) // 2
        return SourceRate(
            source=source,
            tar=float(np.mean(genuine >= threshold)) if len(genuine) else 0.0,
            far=float(np.mean(impostor >= threshold)) if len(impostor) else 0.0,
            people=len(counts),
            faces=faces,
            genuine_pairs=len(genuine),
            impostor_pairs=len(impostor),
            distinct_impostor_pairs=distinct,
        )


def run_model(run: RunFolder) -> tuple[Any, TrainConfig]:
    """The run's Keras network (final weights, else the last checkpoint's) and config."""
    from embedder.model import load_model

    cfg = TrainConfig.load(run.config)
    return load_model(cfg.model, run.weights()), cfg


def validation_faces(run: RunFolder, cfg: TrainConfig) -> FaceData:
    """The faces of the people the run held out of training."""
    return load_faces([Path(c) for c in cfg.caches]).subset(np.load(run.val_index))


def validation_sources(run: RunFolder, cfg: TrainConfig) -> np.ndarray:
    """The source (cache folder name) of each face of :func:`validation_faces`."""
    from trainer.cache import cache_paths

    names = [np.full(len(cache_paths(Path(c))), Path(c).name) for c in cfg.caches]
    out: np.ndarray = np.concatenate(names)[np.load(run.val_index)]
    return out


def calibrate(
    run: RunFolder, views: InferenceViews, far: float, seed: int, rule: str = POOLED
) -> Calibration:
    """Thresholds of the run's model, embedding every face as ``views``, and
    of dlib-resnet at ``far`` and at each of :data:`FARS` on the run's
    validation people by ``rule`` (rates per source); saved in the run
    folder."""
    model, cfg = run_model(run)
    val, sources = validation_faces(run, cfg), validation_sources(run, cfg)
    result = calibrate_faces(model, cfg.model.input_size, val, sources, views, far, seed, rule)
    result.save(run.calibration)
    return result


def calibrate_faces(
    model: Any,
    size: int,
    val: FaceData,
    sources: np.ndarray,
    views: InferenceViews,
    far: float,
    seed: int,
    rule: str = POOLED,
) -> Calibration:
    """:func:`calibrate` on given validation faces (``sources`` naming each
    face's) and Keras ``model`` (crops of ``size`` px)."""
    from trainer.embed import embed_views
    from trainer.evaluate import unit

    emb = unit(embed_views(model, val, size, views))
    return calibrate_embeddings(emb, val, sources, views, far, seed, rule)


def calibrate_embeddings(
    emb: np.ndarray,
    val: FaceData,
    sources: np.ndarray,
    views: InferenceViews,
    far: float,
    seed: int,
    rule: str = POOLED,
) -> Calibration:
    """:func:`calibrate_faces` with the faces already embedded (``emb``,
    L2-normalised, one row per face of ``val``, as ``views``)."""
    from trainer.evaluate import calibrate_threshold, unit

    fars = tuple(sorted({*FARS, far}, reverse=True))
    teacher = None if val.teacher is None else unit(val.teacher)
    ours = operating_points(emb, val.person, sources, fars, seed, rule)
    theirs = (
        () if teacher is None else operating_points(teacher, val.person, sources, fars, seed, rule)
    )

    def served(points: tuple[OperatingPoint, ...], embeddings: np.ndarray | None) -> float:
        if embeddings is None:
            return float("nan")
        if rule == POOLED:
            # Unrounded, as every pooled calibration recorded it.
            return calibrate_threshold(embeddings, val.person, far, seed)
        return next((p.threshold for p in points if p.far == far), float("nan"))

    return Calibration(
        far=far,
        threshold=served(ours, emb),
        dlib_threshold=served(theirs, teacher),
        validation_faces=len(val),
        tta_shift_px=views.shift_px,
        tta_flip=views.flip,
        operating_points=ours,
        dlib_operating_points=theirs,
        rule=rule,
    )
