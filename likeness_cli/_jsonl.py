"""The JSON-lines format of ``galleries export`` / ``galleries import``.

One exported face per line::

    {"subject_id": "...", "face_id": "...", "model_fingerprint": "...",
     "embedding": [0.01, ...], "metadata": {"k": "v"},
     "created_at": 1795000000.0, "quality": {"face_size_px": ..., ...} | null}

Floats are written with Python's shortest round-trip repr, so a float32
embedding comes back bit-identical.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import IO, Any

from likeness.client import Embedding, ExportedFace, Quality
from likeness.quality import QUALITY_FIELDS


class FormatError(ValueError):
    """A line that is not an exported face; the message names the line."""


def dumps(face: ExportedFace) -> str:
    """One JSON line (without the newline) for an exported face."""
    quality = (
        None
        if face.quality is None
        else {name: getattr(face.quality, name) for name in QUALITY_FIELDS}
    )
    record = {
        "subject_id": face.subject_id,
        "face_id": face.face_id,
        "model_fingerprint": face.embedding.model_fingerprint,
        "embedding": list(face.embedding.values),
        "metadata": dict(face.metadata),
        "created_at": face.created_at,
        "quality": quality,
    }
    return json.dumps(record, separators=(",", ":"))


def read(stream: IO[str], name: str) -> Iterator[ExportedFace]:
    """The faces of a JSON-lines stream; FormatError (with ``name:line``) on
    the first bad line. Blank lines are skipped."""
    lines = iter(stream)
    number = 0
    while True:
        number += 1
        try:
            line = next(lines)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise FormatError(f"{name}:{number}: not UTF-8 text") from exc
        if not line.strip():
            continue
        try:
            yield _parse(json.loads(line))
        except (ValueError, TypeError, KeyError) as exc:
            raise FormatError(f"{name}:{number}: not an exported face: {exc}") from exc


def _parse(record: Any) -> ExportedFace:
    if not isinstance(record, dict):
        raise TypeError("expected a JSON object")
    values = tuple(float(v) for v in record["embedding"])
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError("embedding must be a non-empty list of finite numbers")
    quality = record.get("quality")
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise TypeError("metadata must be an object")
    return ExportedFace(
        subject_id=_text(record, "subject_id"),
        face_id=_text(record, "face_id"),
        embedding=Embedding(values, _text(record, "model_fingerprint")),
        metadata={str(k): str(v) for k, v in metadata.items()},
        created_at=float(record.get("created_at", 0.0)),
        quality=None
        if quality is None
        else Quality(*(float(quality[name]) for name in QUALITY_FIELDS)),
    )


def _text(record: dict[str, Any], key: str) -> str:
    value = record[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value
