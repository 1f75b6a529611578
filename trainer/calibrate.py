"""Calibration: the served thresholds (operating points at FAR 1e-2, 1e-3
and 1e-4), chosen on the run's held-out training people (never test
people), with the test-time views the model will serve."""

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


@dataclass(frozen=True)
class Calibration:
    """Thresholds (cosine similarity) at ``far`` on held-out training people;
    ours from faces embedded with the test-time views of ``tta_flip`` and
    ``tta_shift_px`` (embedder.model.InferenceViews). ``operating_points``
    (ours) and ``dlib_operating_points``: thresholds at each of :data:`FARS`
    on the same pairs, ``threshold`` being the one at ``far``."""

    far: float
    threshold: float
    dlib_threshold: float
    validation_faces: int
    tta_shift_px: int = 0
    tta_flip: bool = True
    operating_points: tuple[OperatingPoint, ...] = field(default_factory=tuple)
    dlib_operating_points: tuple[OperatingPoint, ...] = field(default_factory=tuple)

    @property
    def views(self) -> InferenceViews:
        """The test-time views the threshold holds for."""
        return InferenceViews(flip=self.tta_flip, shift_px=self.tta_shift_px)

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
) -> tuple[OperatingPoint, ...]:
    """One point per FAR of ``fars`` (none where the pairs are too few to
    reach it): the threshold (cosine, to 4 decimals as served) at which at
    most that fraction of the sampled different-person
    pairs of ``embeddings`` (L2-normalised, one per face of ``people``, all
    sources pooled) score >= it, with the TAR and FAR it gives on the pairs
    of each source (both faces from it; ``sources`` names each face's).
    All same-person pairs and :data:`IMPOSTOR_PAIRS` different-person pairs
    (trainer.metrics.sample_pairs, seeded by ``seed``), as
    trainer.evaluate.calibrate_threshold draws them."""
    from trainer.metrics import sample_pairs, threshold_at_far

    a, b, same = sample_pairs(people, n_different=IMPOSTOR_PAIRS, seed=seed)
    scores = np.sum(embeddings[a] * embeddings[b], axis=1)
    points = []
    for far in fars:
        exact = threshold_at_far(scores, same, far)
        if not math.isfinite(exact):
            # Too few different-person pairs to reach this FAR: no point.
            log.warning("no threshold at FAR %g: too few different-person pairs", far)
            continue
        # Served to 4 decimals, as default_threshold always was; the rates
        # are measured at the served value (its FAR may differ from the
        # target by the pairs between the two).
        threshold = round(exact, 4)
        rates = tuple(
            _rate(str(name), scores, same, a, b, people, sources, threshold)
            for name in sorted(set(sources.tolist()))
        )
        points.append(OperatingPoint(point_name(far), far, threshold, rates))
    return tuple(points)


def _rate(
    source: str,
    scores: np.ndarray,
    same: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    people: np.ndarray,
    sources: np.ndarray,
    threshold: float,
) -> SourceRate:
    inside = (sources[a] == source) & (sources[b] == source)
    genuine, impostor = scores[inside & same], scores[inside & ~same]
    faces = people[sources == source]
    counts = np.unique(faces, return_counts=True)[1]
    distinct = (len(faces) * (len(faces) - 1) - int(np.sum(counts * (counts - 1)))) // 2
    return SourceRate(
        source=source,
        tar=float(np.mean(genuine >= threshold)) if len(genuine) else 0.0,
        far=float(np.mean(impostor >= threshold)) if len(impostor) else 0.0,
        people=len(counts),
        faces=len(faces),
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


def calibrate(run: RunFolder, views: InferenceViews, far: float, seed: int) -> Calibration:
    """Thresholds of the run's model, embedding every face as ``views``, and
    of dlib-resnet at ``far`` and at each of :data:`FARS` on the run's
    validation people (all sources pooled, rates per source); saved in the
    run folder."""
    model, cfg = run_model(run)
    val, sources = validation_faces(run, cfg), validation_sources(run, cfg)
    result = calibrate_faces(model, cfg.model.input_size, val, sources, views, far, seed)
    run.calibration.write_text(json.dumps(asdict(result), indent=2))
    return result


def calibrate_faces(
    model: Any,
    size: int,
    val: FaceData,
    sources: np.ndarray,
    views: InferenceViews,
    far: float,
    seed: int,
) -> Calibration:
    """:func:`calibrate` on given validation faces (``sources`` naming each
    face's) and Keras ``model`` (crops of ``size`` px)."""
    from trainer.embed import embed_views
    from trainer.evaluate import calibrate_threshold, unit

    fars = tuple(sorted({*FARS, far}, reverse=True))
    emb = unit(embed_views(model, val, size, views))
    teacher = None if val.teacher is None else unit(val.teacher)
    return Calibration(
        far=far,
        threshold=calibrate_threshold(emb, val.person, far, seed),
        dlib_threshold=(
            float("nan") if teacher is None else calibrate_threshold(teacher, val.person, far, seed)
        ),
        validation_faces=len(val),
        tta_shift_px=views.shift_px,
        tta_flip=views.flip,
        operating_points=operating_points(emb, val.person, sources, fars, seed),
        dlib_operating_points=(
            () if teacher is None else operating_points(teacher, val.person, sources, fars, seed)
        ),
    )
