"""Model artifacts: a folder with ``manifest.json`` and the files it hashes.

The manifest names each file with its sha256; :func:`load_manifest` refuses
an artifact whose files do not match, so a corrupted or swapped model never
serves. The fingerprint (``<model_id>@<first 12 hex of the weights hash>``)
travels with every embedding: vectors of different models never mix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from likeness.errors import FailedPrecondition

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """What a model artifact declares.

    ``default_threshold``: cosine similarity at or above which two faces are
    judged the same person (calibrated at FAR = 1e-3 on non-test data).
    ``files``: file name -> sha256 hex. ``weights``: the main weights file.
    """

    model_id: str
    backend: str
    dim: int
    input_size: int
    default_threshold: float
    weights: str
    files: dict[str, str]
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return f"{self.model_id}@{self.files[self.weights][:12]}"

    @property
    def crop_template(self) -> str:
        """The alignment template the model was trained on (embedder.align);
        models that predate the setting used "arcface"."""
        return str(self.config.get("template", "arcface"))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path) -> Manifest:
    """``folder/manifest.json`` as written, without checking the files'
    hashes (for tools that rewrite it; serving uses :func:`load_manifest`).
    Raises FailedPrecondition when the manifest is missing or unreadable."""
    path = folder / MANIFEST
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FailedPrecondition(f"cannot read model manifest {path}: {exc}") from None
    # "fingerprint" is derived (Manifest.fingerprint), never carried as extra.
    known = {"model_id", "backend", "fingerprint", "dim", "input_size", "default_threshold"}
    known |= {"weights", "files", "config"}
    return Manifest(
        model_id=raw["model_id"],
        backend=raw["backend"],
        dim=int(raw["dim"]),
        input_size=int(raw["input_size"]),
        default_threshold=float(raw["default_threshold"]),
        weights=raw["weights"],
        files=dict(raw["files"]),
        config=dict(raw.get("config", {})),
        extra={k: v for k, v in raw.items() if k not in known},
    )


def load_manifest(folder: Path, weights_dir: Path | None = None) -> Manifest:
    """Read ``folder/manifest.json`` and check every listed file's sha256.

    ``weights_dir``: where the hashed files are, when not in ``folder`` (the
    dlib-resnet manifest points into the face_recognition_models package).
    Raises FailedPrecondition on a missing manifest/file or a hash mismatch.
    """
    manifest = read_manifest(folder)
    path = folder / MANIFEST
    base = weights_dir or folder
    for name, expected in manifest.files.items():
        file = base / name
        if not file.is_file():
            raise FailedPrecondition(f"model file {file} listed in {path} is missing")
        actual = sha256_file(file)
        if actual != expected:
            raise FailedPrecondition(
                f"model file {file} has sha256 {actual}, manifest {path} expects {expected}"
            )
    return manifest


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write ``folder/manifest.json`` (hashes as given in ``manifest.files``)."""
    data: dict[str, Any] = {
        "model_id": manifest.model_id,
        "backend": manifest.backend,
        "fingerprint": manifest.fingerprint,
        "dim": manifest.dim,
        "input_size": manifest.input_size,
        "default_threshold": manifest.default_threshold,
        "weights": manifest.weights,
        "files": manifest.files,
        "config": manifest.config,
        **manifest.extra,
    }
    path = folder / MANIFEST
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path
