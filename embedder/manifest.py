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
from likeness.operating_points import (
    DEFAULT_NAME,
    OperatingPoint,
    check_points,
    custom,
    point_from_dict,
    point_to_dict,
)

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """What a model artifact declares.

    ``default_threshold``: cosine similarity at or above which two faces are
    judged the same person (calibrated at FAR = 1e-3 on non-test data).
    ``files``: file name -> sha256 hex. ``weights``: the main weights file.
    ``operating_points``: the calibrated thresholds a gallery may choose
    (likeness.operating_points), ``default_operating_point`` the one whose
    threshold is ``default_threshold``; a manifest without them serves its
    ``default_threshold`` alone (see :attr:`points`).
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
    operating_points: tuple[OperatingPoint, ...] = ()
    default_operating_point: str = ""

    @property
    def points(self) -> tuple[tuple[OperatingPoint, ...], str]:
        """(operating points, the default's name). A manifest that ships
        none has one, "custom" (FAR unknown), at ``default_threshold``."""
        if self.operating_points:
            return self.operating_points, self.default_operating_point
        return (custom(self.default_threshold),), custom(0.0).name

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
    known |= {"weights", "files", "config", "operating_points", "default_operating_point"}
    points, default = _operating_points(raw, path)
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
        operating_points=points,
        default_operating_point=default,
    )


def _operating_points(raw: dict[str, Any], path: Path) -> tuple[tuple[OperatingPoint, ...], str]:
    """The manifest's operating points and default name (none: ``((), "")``).
    FailedPrecondition when they are malformed, fail
    likeness.operating_points.check_points, or the default's threshold is
    not ``default_threshold``."""
    if "operating_points" not in raw:
        return (), ""
    try:
        points = tuple(point_from_dict(p) for p in raw["operating_points"])
        default = str(raw.get("default_operating_point", DEFAULT_NAME))
        check_points(points, default)
    except (KeyError, TypeError, ValueError) as exc:
        raise FailedPrecondition(f"model manifest {path}: bad operating_points: {exc}") from None
    chosen = next(p for p in points if p.name == default)
    if abs(chosen.threshold - float(raw["default_threshold"])) > 1e-9:
        raise FailedPrecondition(
            f"model manifest {path}: default_threshold {raw['default_threshold']} is not the"
            f" threshold {chosen.threshold} of the default operating point {default}"
        )
    return points, default


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
    if manifest.operating_points:
        data["default_operating_point"] = manifest.default_operating_point
        data["operating_points"] = [point_to_dict(p) for p in manifest.operating_points]
    path = folder / MANIFEST
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path
