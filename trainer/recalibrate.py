"""Operating points for a model already shipped: on the validation faces of
the run that trained it (its run folder: the faces it held out), or, when
that folder is gone, on the recipe's held-out validation people drawn again
(the same seeded split of the same listings; only their faces are cached).
The shipped weights calibrate on them (trainer.calibrate, one definition).
The faces and the embedding are trusted only when they give back the
artifact's own recorded calibration: the same number of faces and the same
threshold at its FAR by its recorded rule. The points returned follow the
recipe's rule, which may be a newer one. The weights, and so the
fingerprint, never change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from embedder.manifest import Manifest, load_manifest, read_manifest, sha256_file, write_manifest
from embedder.model import ModelConfig, load_model
from likeness.operating_points import OperatingPoint, point_name
from trainer.calibrate import POOLED, Calibration, calibrate_embeddings
from trainer.data import FaceData, concat_faces, load_faces, validation_people
from trainer.recipe import Recipe
from trainer.run import RunFolder
from trainer.sources import excluded_people, list_source, stage_spec

#: How far the recomputed threshold may lie from the recorded one (float32
#: rounding of the same embeddings).
_TOLERANCE = 1e-5


def recalibrate_artifact(
    recipe: Recipe,
    artifact: Path,
    cache_root: Path,
    workers: int = 2,
    report: Callable[[str], None] = print,
) -> Calibration:
    """Calibrate the artifact's weights (likeness-mobilenet) on the
    recipe's validation people drawn again; their faces are cached under
    ``cache_root/s<size>/<source>-validation``. Raises ValueError when a
    face is not found in one of their images (the split would no longer be
    the trained one's) or the recorded calibration is not reproduced."""
    from trainer.cache import build_cache

    _recorded(artifact)
    stage = recipe.final
    cfg = recipe.config(stage, cache_root, Path())
    excluded = excluded_people(recipe)
    listings = [list_source(source, excluded) for source in recipe.sources]
    person = np.array([p for listing in listings for p, _ in listing.items], dtype=str)
    held_out = validation_people(person, cfg.val_fraction, cfg.seed)
    parts, names = [], []
    for listing in listings:
        items = [(p, path) for p, path in listing.items if p in held_out]
        if not items:
            continue
        out = cache_root / f"s{stage.input_size}" / f"{listing.source.name}-validation"
        report(f"{listing.source.name}: caching {len(items)} faces of validation people")
        build_cache(items, out, stage_spec(recipe, listing.source, stage), workers)
        faces = load_faces([out])
        if len(faces) != len(items):
            raise ValueError(
                f"{out}: faces found in {len(faces)} of {len(items)} images; where the run"
                " folder is kept, calibrate on its faces (--run)"
            )
        parts.append(faces)
        names.append(np.full(len(faces), listing.source.name))
    return _checked(recipe, artifact, concat_faces(parts), np.concatenate(names))


def recalibrate_from_run(recipe: Recipe, artifact: Path, run: RunFolder) -> Calibration:
    """Calibrate the artifact's weights on the validation faces of ``run``,
    the run folder whose final weights the artifact ships (byte for byte).
    Raises ValueError for another run's folder or when the recorded
    calibration is not reproduced."""
    from trainer.calibrate import validation_faces, validation_sources
    from trainer.config import TrainConfig

    manifest = _recorded(artifact)
    if sha256_file(run.final_weights) != manifest.files.get(manifest.weights):
        raise ValueError(f"{run.path}: its final weights are not the ones {artifact} ships")
    cfg = TrainConfig.load(run.config)
    return _checked(recipe, artifact, validation_faces(run, cfg), validation_sources(run, cfg))


def _recorded(artifact: Path) -> Manifest:
    manifest = load_manifest(artifact)
    if not isinstance(manifest.extra.get("calibration"), dict):
        raise ValueError(f"{artifact}: the manifest records no calibration to reproduce")
    return manifest


def _checked(recipe: Recipe, artifact: Path, val: FaceData, sources: np.ndarray) -> Calibration:
    """The calibration of ``val`` by the recipe's rule, once the one the
    manifest records (by its own rule) is reproduced on the same faces."""
    from trainer.embed import embed_views
    from trainer.evaluate import unit

    manifest = _recorded(artifact)
    recorded = manifest.extra["calibration"]
    if len(val) != recorded.get("validation_faces"):
        raise ValueError(
            f"{len(val)} validation faces, the manifest records {recorded.get('validation_faces')}"
        )
    model = load_model(ModelConfig.from_dict(manifest.config), artifact / manifest.weights)
    far, seed, views = float(recorded["far"]), recipe.calibration_seed, recipe.test_views
    emb = unit(embed_views(model, val, recipe.final.input_size, views))
    rule = str(recorded.get("rule", POOLED))
    check = calibrate_embeddings(emb, val, sources, views, far, seed, rule)
    if abs(check.threshold - float(recorded["threshold"])) > _TOLERANCE:
        raise ValueError(
            f"threshold at FAR {far:g} ({rule}) is {check.threshold}, the manifest records"
            f" {recorded['threshold']}: not the split or views the model was calibrated on"
        )
    if rule == recipe.calibration_rule:
        return check
    return calibrate_embeddings(emb, val, sources, views, far, seed, recipe.calibration_rule)


def write_points(
    folder: Path,
    points: tuple[OperatingPoint, ...],
    far: float,
    note: dict[str, Any] | None = None,
) -> Manifest:
    """Write ``points`` into an artifact's manifest with the one at ``far``
    as default (its threshold becomes ``default_threshold``), keeping the
    file hashes and the fingerprint. ``note`` joins the manifest's extras."""
    manifest = read_manifest(folder)
    default = point_name(far)
    chosen = next(p for p in points if p.name == default)
    updated = replace(
        manifest,
        default_threshold=chosen.threshold,
        operating_points=points,
        default_operating_point=default,
        extra={**manifest.extra, **(note or {})},
    )
    write_manifest(folder, updated)
    return updated
