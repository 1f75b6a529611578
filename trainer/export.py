"""Export a trained model as a served artifact: weights, their LiteRT
flatbuffer, manifest and model card."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from embedder.manifest import (
    Manifest,
    load_manifest,
    read_manifest,
    sha256_file,
    write_manifest,
)
from embedder.model import InferenceViews, ModelConfig, input_signature, load_model
from trainer.recipe import Recipe
from trainer.run import RunFolder
from trainer.sources import SourceReport

WEIGHTS_NAME = "model.weights.h5"
LITERT_NAME = "model.tflite"
#: The model card: not hashed in the manifest, so it can be re-rendered
#: (``likeness-train model-card``) without changing the fingerprint.
CARD_NAME = "MODEL_CARD.md"


def export_litert(weights: Path, config: ModelConfig, path: Path) -> Path:
    """Write the network of ``config`` with ``weights`` as a LiteRT
    flatbuffer at ``path``: inputs "image" (N, S, S, 3) float32 0-255 and
    "landmarks" (N, 136) float32 in [-1, 1], any batch size N; output the
    (N, dim) unit embedding, equal to the Keras model's to float32 rounding."""
    model = load_model(config, weights)
    signature = [input_signature(config)]
    model.export(str(path), format="litert", verbose=False, input_signature=signature)
    return path


def export_model(
    weights: Path,
    config: ModelConfig,
    out_dir: Path,
    model_id: str,
    default_threshold: float,
    views: InferenceViews,
    extra: dict[str, Any],
    card: str,
) -> Manifest:
    """Copy ``weights`` into ``out_dir`` beside their LiteRT flatbuffer
    (what the embedder serves; embedder.litert), with a manifest (sha256 of
    both, fingerprint from the weights' hash, input size, dim,
    ``default_threshold`` as cosine similarity, the test-time ``views`` the
    embedder serves) and ``MODEL_CARD.md``. ``extra`` lands in the manifest
    (metrics, command)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / WEIGHTS_NAME
    shutil.copyfile(weights, target)
    litert = export_litert(target, config, out_dir / LITERT_NAME)
    manifest = Manifest(
        model_id=model_id,
        backend="likeness-mobilenet",
        dim=config.dim,
        input_size=config.input_size,
        default_threshold=round(float(default_threshold), 4),
        weights=WEIGHTS_NAME,
        files={WEIGHTS_NAME: sha256_file(target), LITERT_NAME: sha256_file(litert)},
        config=config.to_dict(),
        extra={
            "flip_tta": views.flip,
            "shift_tta_px": views.shift_px,
            "litert": LITERT_NAME,
            **extra,
        },
    )
    write_manifest(out_dir, manifest)
    (out_dir / CARD_NAME).write_text(card)
    return manifest


def update_threshold(folder: Path, threshold: float, note: dict[str, Any]) -> Manifest:
    """Rewrite the ``default_threshold`` (cosine similarity) of an existing
    artifact's manifest, e.g. dlib-resnet's, keeping its file hashes."""
    manifest = read_manifest(folder)
    extra = {k: v for k, v in manifest.extra.items() if k != "provisional_threshold"}
    updated = replace(
        manifest, default_threshold=round(float(threshold), 4), extra={**extra, **note}
    )
    write_manifest(folder, updated)
    return updated


def add_litert(folder: Path) -> Manifest:
    """Give an existing likeness-mobilenet artifact (one exported before
    artifacts carried it) the LiteRT flatbuffer of its weights, hashed in
    its manifest. The weights, and so the fingerprint, are unchanged: the
    vectors of the same faces stay the same to float32 rounding, so stored
    embeddings stay valid. Raises FailedPrecondition when the artifact's
    files do not match its manifest, ValueError when it is not a
    likeness-mobilenet artifact."""
    manifest = load_manifest(folder)
    if manifest.backend != "likeness-mobilenet":
        raise ValueError(f"{folder} holds a {manifest.backend} model, not likeness-mobilenet")
    litert = export_litert(
        folder / manifest.weights, ModelConfig.from_dict(manifest.config), folder / LITERT_NAME
    )
    updated = replace(
        manifest,
        files={**manifest.files, LITERT_NAME: sha256_file(litert)},
        extra={**manifest.extra, "litert": LITERT_NAME},
    )
    write_manifest(folder, updated)
    return updated


def export_run(
    recipe: Recipe,
    run: RunFolder,
    out_dir: Path,
    sources: list[SourceReport],
    command: str,
) -> Manifest:
    """Ship the run's final weights (the recipe's last stage) as a served
    artifact in ``out_dir``: the calibrated threshold and test-time views,
    the evaluation figures, the recipe, config and data read, and the model
    card (trainer.model_card.run_card). Raises ValueError when the run was
    evaluated with other test-time views than it was calibrated with."""
    import json
    from dataclasses import asdict

    from trainer.average import averaged_from
    from trainer.config import TrainConfig
    from trainer.model_card import run_card, run_figures

    figures = run_figures(run)
    calibration, evaluation = figures
    card = run_card(recipe, run, sources, figures)
    cfg = TrainConfig.load(run.config)
    history = json.loads(run.history.read_text())
    training: dict[str, Any] = {
        "command": command,
        "recipe": str(recipe.file),
        "stages": [stage.name for stage in recipe.stages],
        "config": cfg.to_dict(),
        "steps": history[-1]["step"] if history else 0,
        "data": [asdict(s) for s in sources],
    }
    if averaged := averaged_from(run):
        training["averaged_from"] = averaged
    extra = {
        "threshold_far": calibration.far,
        "calibration": calibration.record(),
        "evaluation": evaluation,
        "training": training,
    }
    manifest = export_model(
        run.final_weights,
        cfg.model,
        out_dir,
        recipe.model_id,
        calibration.threshold,
        calibration.views,
        extra,
        card,
    )
    if not calibration.operating_points:
        return manifest
    from trainer.recalibrate import write_points

    return write_points(out_dir, calibration.operating_points, calibration.far)
