"""Held-out test people: lists of people that no training or calibration
source may yield, named in a recipe's ``[test_people]`` table, and the seeded
rule that chose the committed CelebA list (trainer/data/celeba-test-people.txt).

A list file holds one person per line, named as the trainer names them (a
listed source's prefix included, e.g. ``celeba-123``); lines starting with
``#`` are comments (the header states the seed and the rule)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

#: The rule the committed CelebA list was drawn by.
CELEBA_SEED = 22
CELEBA_COUNT = 500
CELEBA_MIN_PHOTOS = 2
CELEBA_PREFIX = "celeba-"


def select_test_people(
    identities: Iterable[str],
    count: int,
    seed: int,
    prefix: str = "",
    min_photos: int = CELEBA_MIN_PHOTOS,
) -> list[str]:
    """``count`` people drawn by ``random.Random(seed)`` from those with at
    least ``min_photos`` photos; ``identities`` holds one identity per photo
    (a list's identity column). The candidates are sorted by name before the
    draw so the result does not depend on the list's order; the result is
    sorted and prefixed. ValueError when fewer than ``count`` qualify."""
    photos = Counter(identities)
    candidates = sorted(person for person, n in photos.items() if n >= min_photos)
    if count > len(candidates):
        raise ValueError(
            f"{count} test people asked for, {len(candidates)} have {min_photos}+ photos"
        )
    chosen = random.Random(seed).sample(candidates, count)
    return sorted(prefix + person for person in chosen)


def listed_identities(listing: Path) -> list[str]:
    """The identity column of a ``path<TAB>identity`` file (header skipped)."""
    rows = listing.read_text(encoding="utf-8").splitlines()
    if rows and rows[0].split("\t") == ["path", "identity"]:
        rows = rows[1:]
    return [row.split("\t")[1] for row in rows if row.strip()]


def header(count: int, seed: int, prefix: str, min_photos: int, source: str) -> list[str]:
    """The comment lines a generated list starts with: how to redraw it."""
    return [
        f"# Held-out test people (issue 22): {count} people drawn with seed {seed}",
        f"# by trainer.test_people.select_test_people from the people of {source}",
        f"# with {min_photos} or more photos (sorted by identity, random.Random({seed}).sample),",
        f"# named '{prefix}' + identity. Never train, validate or calibrate on them.",
    ]


def read_test_people(file: Path) -> set[str]:
    """The people of a list file (comments and blank lines skipped).
    ValueError names the file when it cannot be read."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"{file}: {exc}") from None
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}
