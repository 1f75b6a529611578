"""LFW protocol files: pairs (View 1 and View 2) and the test people."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pair:
    """Two LFW images by (person, 1-based image number); ``same`` is the label."""

    person_a: str
    image_a: int
    person_b: str
    image_b: int
    same: bool

    def names(self) -> tuple[str, str]:
        """The two image file stems, e.g. ``Abel_Pacheco_0001``."""
        return f"{self.person_a}_{self.image_a:04d}", f"{self.person_b}_{self.image_b:04d}"


def parse_pairs_lines(lines: list[str]) -> list[Pair]:
    """Parse pair lines (3 fields: same person; 4 fields: different people);
    header lines of 1 or 2 fields are skipped."""
    pairs: list[Pair] = []
    for line in lines:
        f = line.split()
        if len(f) == 3:
            pairs.append(Pair(f[0], int(f[1]), f[0], int(f[2]), True))
        elif len(f) == 4:
            pairs.append(Pair(f[0], int(f[1]), f[2], int(f[3]), False))
    return pairs


def read_pairs(path: Path) -> list[Pair]:
    """All pairs of a pairs file (pairsDevTrain.txt, pairsDevTest.txt)."""
    return parse_pairs_lines(path.read_text().splitlines())


def read_view2_folds(path: Path) -> list[list[Pair]]:
    """The 10 folds of View 2 (pairs.txt), each 300 same + 300 different pairs."""
    lines = path.read_text().splitlines()
    n_folds, per = (int(x) for x in lines[0].split())
    folds: list[list[Pair]] = []
    pos = 1
    for _ in range(n_folds):
        folds.append(parse_pairs_lines(lines[pos : pos + 2 * per]))
        pos += 2 * per
    return folds


def devtest_people(lfw_root: Path) -> set[str]:
    """Every person of the View 1 test split (peopleDevTest.txt and both
    sides of every pair of pairsDevTest.txt): never to be used in training."""
    people = {p.person_a for p in read_pairs(lfw_root / "pairsDevTest.txt")}
    people |= {p.person_b for p in read_pairs(lfw_root / "pairsDevTest.txt")}
    for line in (lfw_root / "peopleDevTest.txt").read_text().splitlines()[1:]:
        if line.split():
            people.add(line.split()[0])
    return people
