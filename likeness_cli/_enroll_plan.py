"""What ``likeness enroll`` sends: one Enroll request per image file, each
with a deterministic idempotency key, so that a rerun is a no-op for the
images an earlier run enrolled (the registry derives face ids from the key).

One image per request keeps that true when a folder gains or loses files,
which a key over a group of images would not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})

_KEY_VERSION = "likeness-cli-enroll-v1"


@dataclass(frozen=True)
class Item:
    """One image file of one subject."""

    subject_id: str
    file: Path


def scan_tree(root: Path) -> list[Item]:
    """The images of a ``<subject>/<images>`` tree (LFW layout): each
    sub-folder is a subject named after it. Sorted by subject, then file;
    hidden entries and files of other types are skipped. OSError when
    ``root`` is no readable folder."""
    if not root.is_dir():
        raise NotADirectoryError(20, "not a folder", str(root))
    items: list[Item] = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        items.extend(
            Item(folder.name, f)
            for f in sorted(folder.iterdir())
            if not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
        )
    return items


def items_of(subject_id: str, files: Sequence[Path]) -> list[Item]:
    """The items of one subject's files, in the given order."""
    return [Item(subject_id, f) for f in files]


def idempotency_key(gallery: str, subject_id: str, image: bytes) -> str:
    """A key (68 characters) that is the same exactly when gallery, subject
    and image content are the same."""
    digest = hashlib.sha256()
    for part in (_KEY_VERSION, gallery, subject_id, hashlib.sha256(image).hexdigest()):
        digest.update(part.encode())
        digest.update(b"\0")
    return "cli-" + digest.hexdigest()
