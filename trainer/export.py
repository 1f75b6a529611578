"""Export a trained model as a served artifact: weights + manifest + model card."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from embedder.manifest import Manifest, sha256_file, write_manifest
from embedder.model import ModelConfig

WEIGHTS_NAME = "model.weights.h5"


def export_model(
    weights: Path,
    config: ModelConfig,
    out_dir: Path,
    model_id: str,
    default_threshold: float,
    flip_tta: bool,
    extra: dict[str, Any],
    card: str,
) -> Manifest:
    """Copy ``weights`` into ``out_dir`` with a manifest (sha256, fingerprint,
    input size, dim, ``default_threshold`` as cosine similarity) and
    ``MODEL_CARD.md``. ``extra`` lands in the manifest (metrics, command)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / WEIGHTS_NAME
    shutil.copyfile(weights, target)
    manifest = Manifest(
        model_id=model_id,
        backend="likeness-mobilenet",
        dim=config.dim,
        input_size=config.input_size,
        default_threshold=round(float(default_threshold), 4),
        weights=WEIGHTS_NAME,
        files={WEIGHTS_NAME: sha256_file(target)},
        config=config.to_dict(),
        extra={"flip_tta": flip_tta, **extra},
    )
    write_manifest(out_dir, manifest)
    (out_dir / "MODEL_CARD.md").write_text(card)
    return manifest


def update_threshold(folder: Path, threshold: float, note: dict[str, Any]) -> Manifest:
    """Rewrite the ``default_threshold`` (cosine similarity) of an existing
    artifact's manifest, e.g. dlib-resnet's, keeping its file hashes."""
    import json
    from dataclasses import replace

    from embedder.manifest import MANIFEST

    raw = json.loads((folder / MANIFEST).read_text())
    known = {"model_id", "backend", "fingerprint", "dim", "input_size", "default_threshold"}
    manifest = Manifest(
        model_id=raw["model_id"],
        backend=raw["backend"],
        dim=raw["dim"],
        input_size=raw["input_size"],
        default_threshold=raw["default_threshold"],
        weights=raw["weights"],
        files=raw["files"],
        config=raw.get("config", {}),
        extra={k: v for k, v in raw.items() if k not in known | {"weights", "files", "config"}},
    )
    extra = {k: v for k, v in manifest.extra.items() if k != "provisional_threshold"}
    updated = replace(
        manifest, default_threshold=round(float(threshold), 4), extra={**extra, **note}
    )
    write_manifest(folder, updated)
    return updated
