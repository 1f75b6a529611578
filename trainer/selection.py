"""Choosing which weights ship: finished runs measured on every pair of the
held-out training people (trainer.validate's figures), optionally compared
with a paired bootstrap. Never LFW's test people."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedder.model import InferenceViews, ModelConfig
from trainer.average import comparable_runs
from trainer.cache import cache_exists, cache_paths, cache_spec
from trainer.config import TrainConfig
from trainer.data import FaceData, concat_faces, load_faces
from trainer.run import RunFolder
from trainer.validate import (
    HeldOutReport,
    PairedDifference,
    all_pairs,
    held_out_report,
    paired_bootstrap,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Validation:
    """What :func:`validate` measured: one report per run (every pair of the
    held-out faces, sources pooled) and, when asked for, each later run's
    paired difference to the first. ``by_source``: when the held-out faces
    come from two or more caches (sources), the same figures per cache
    folder name, on the pairs within that source (clean faces only; a source
    whose faces make no same-person pair is left out)."""

    reports: list[HeldOutReport]
    differences: list[PairedDifference]
    by_source: dict[str, list[HeldOutReport]] = field(default_factory=dict)


def validate(
    runs: Sequence[RunFolder],
    views: InferenceViews,
    bootstrap: int = 0,
    shipped: Sequence[Path] = (),
    consecutive: bool = False,
) -> Validation:
    """Held-out figures of each finished run's final weights, each face
    embedded as ``views``, all on the validation faces of the last run.
    ``shipped``: model artifact folders (manifest.json + weights, sha256
    checked) measured first, on the same faces, e.g. the model a candidate
    would replace; each must be the runs' network. Clean-vs-view pairs use
    the views of those faces in the last run's view caches; a cache counts
    only if it holds a view of every held-out face (a missing or partly
    built one is passed over with a warning), and the reports name the seeds
    used. With ``bootstrap`` > 0, every model after the first (the first
    shipped one, else the first run) is also compared with it by a paired
    bootstrap over the held-out people with that many resamples
    (trainer.validate.paired_bootstrap); with ``consecutive``, also with the
    model just before it (an ablation's arms in order, each embedded once;
    every comparison sees the same resamples). Raises ValueError when the runs
    differ in architecture, caches or validation people, one is unfinished,
    or a shipped model is another network or fails its manifest."""
    from trainer.calibrate import run_model, validation_faces
    from trainer.embed import embed_views
    from trainer.evaluate import unit
    from trainer.train import check_caches_fit

    last = comparable_runs(runs)
    check_caches_fit(last.model, last.caches)
    val = validation_faces(runs[-1], last)
    held_views, seeds = _held_out_views(last, val)
    size = last.model.input_size
    models = [_shipped_model(folder, last.model) for folder in shipped]
    models += [(str(run.path), run_model(run)[0]) for run in runs]
    reports, embeddings = [], []
    for name, model in models:
        emb = unit(embed_views(model, val, size, views))
        view_arg = (
            None
            if held_views is None
            else (
                unit(embed_views(model, held_views, size, views)),
                held_views.person,
                held_views.path,
            )
        )
        reports.append(held_out_report(name, emb, val.person, val.path, view_arg, seeds))
        embeddings.append(emb)
    names = [name for name, _ in models]
    differences = []
    if bootstrap > 0:
        codes = np.unique(val.person, return_inverse=True)[1]
        first, second = np.triu_indices(len(codes), k=1)
        pairs = [all_pairs(emb, val.person) for emb in embeddings]
        scores = [score for score, _ in pairs]
        same = pairs[0][1]
        compared = [(i, 0) for i in range(1, len(names))]
        if consecutive:
            compared += [(i, i - 1) for i in range(2, len(names))]
        for i, ref in compared:
            differences.append(
                paired_bootstrap(
                    names[i],
                    names[ref],
                    scores[i],
                    scores[ref],
                    same,
                    (codes[first], codes[second]),
                    resamples=bootstrap,
                )
            )
    return Validation(reports, differences, _by_source(names, embeddings, val))


def _shipped_model(folder: Path, network: ModelConfig) -> tuple[str, Any]:
    """A shipped artifact's fingerprint and Keras network, refused unless its
    files match its manifest and it is ``network``."""
    from embedder.model import load_model
    from trainer.recipe import verified_artifact

    manifest = verified_artifact(folder)
    config = ModelConfig.from_dict(manifest.config)
    if config != network:
        raise ValueError(f"{folder} is the network {config}; the runs' is {network}")
    return manifest.fingerprint, load_model(config, folder / manifest.weights)


def _by_source(
    names: Sequence[str], embeddings: list[np.ndarray], val: FaceData
) -> dict[str, list[HeldOutReport]]:
    sources = np.unique(val.source) if val.source is not None else np.array([], dtype=str)
    out: dict[str, list[HeldOutReport]] = {}
    for name in sources.tolist() if len(sources) > 1 else []:
        assert val.source is not None
        rows = np.flatnonzero(val.source == name)
        _, faces = np.unique(val.person[rows], return_counts=True)
        if len(faces) < 2 or faces.max() < 2:
            log.warning("held-out faces of %s make no same- and different-person pairs", name)
            continue
        out[name] = [
            held_out_report(model, emb[rows], val.person[rows], val.path[rows])
            for model, emb in zip(names, embeddings, strict=True)
        ]
    return out


def _held_out_views(cfg: TrainConfig, val: FaceData) -> tuple[FaceData | None, tuple[int, ...]]:
    from trainer.train import check_caches_fit

    parts, seeds = [], set()
    for name in cfg.view_caches:
        cache = Path(name)
        if not cache_exists(cache):
            log.warning("view cache %s not found; its views are left out", cache)
            continue
        paths = cache_paths(cache)
        if not np.isin(paths, val.path).any():
            continue  # views of other sources (unlabelled faces)
        if not np.isin(val.path, paths).all():
            log.warning("view cache %s lacks views of some held-out faces; left out", cache)
            continue
        check_caches_fit(cfg.model, [cache])
        data = load_faces([cache])
        parts.append(data.subset(np.flatnonzero(np.isin(data.path, val.path))))
        seeds.add(cache_spec(cache).view_seed or 0)
    return (concat_faces(parts) if parts else None), tuple(sorted(seeds))
