"""Training data from face caches: splits, teacher targets, P x K batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.cache import load_cache


@dataclass(frozen=True)
class FaceData:
    """Cached faces: ``crops`` (N, S, S, 3) uint8, ``landmarks`` (N, 68, 2) crop
    pixels, ``person`` (N,) str ("" = unlabelled), ``teacher`` (N, 128) raw
    dlib descriptors or None, ``path`` (N,) source files, ``source`` (N,) str
    the name of the cache folder each face was read from (per-source
    figures), or None when not known."""

    crops: np.ndarray
    landmarks: np.ndarray
    person: np.ndarray
    path: np.ndarray
    teacher: np.ndarray | None
    source: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.person)

    def subset(self, index: np.ndarray) -> FaceData:
        return FaceData(
            self.crops[index],
            self.landmarks[index],
            self.person[index],
            self.path[index],
            None if self.teacher is None else self.teacher[index],
            None if self.source is None else self.source[index],
        )


def load_faces(cache_dirs: Sequence[Path]) -> FaceData:
    """Concatenate caches (see trainer.cache); teacher only if every cache
    has it; each face's ``source`` is its cache folder's name."""
    return concat_faces(
        [
            FaceData(
                crops=p["crop"],
                landmarks=p["landmarks"].astype(np.float32),
                person=p["person"],
                path=p["path"],
                teacher=p["teacher"].astype(np.float32) if "teacher" in p else None,
                source=np.full(len(p["person"]), Path(d).name),
            )
            for d, p in ((d, load_cache(d)) for d in cache_dirs)
        ]
    )


def concat_faces(parts: Sequence[FaceData]) -> FaceData:
    """One FaceData of ``parts`` in order; teacher (source) only if every
    part has it."""
    teachers = [p.teacher for p in parts]
    sources = [p.source for p in parts]
    return FaceData(
        crops=np.concatenate([p.crops for p in parts]),
        landmarks=np.concatenate([p.landmarks for p in parts]),
        person=np.concatenate([p.person for p in parts]),
        path=np.concatenate([p.path for p in parts]),
        teacher=None
        if any(t is None for t in teachers)
        else np.concatenate([t for t in teachers if t is not None]),
        source=None
        if any(s is None for s in sources)
        else np.concatenate([s for s in sources if s is not None]),
    )


def without_people(data: FaceData, people: Iterable[str]) -> FaceData:
    """``data`` less every face of ``people``: held-out test people leave a
    cache that holds them (a listed source's shared cache holds every person,
    its test people included, since their evaluation reads it)."""
    kept = rows_without_people(data, people)
    return data if len(kept) == len(data) else data.subset(kept)


def rows_without_people(data: FaceData, people: Iterable[str]) -> np.ndarray:
    """Indices of the rows of ``data`` that are not faces of ``people``."""
    gone = np.isin(data.person, np.array(sorted(set(people)), dtype=str))
    return np.flatnonzero(~gone)


def check_no_forbidden(data: FaceData, forbidden: Iterable[str]) -> None:
    """Raise ValueError if any face belongs to a forbidden (test) person."""
    bad = set(data.person.tolist()) & set(forbidden)
    if bad:
        raise ValueError(f"{len(bad)} test people found in training data, e.g. {sorted(bad)[:3]}")


def split_people(data: FaceData, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): a seeded ``val_fraction`` of the labelled
    people with >= 2 images is held out whole; unlabelled faces train."""
    val_people = validation_people(data.person, val_fraction, seed)
    is_val = np.array([p in val_people for p in data.person.tolist()])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def validation_people(person: np.ndarray, val_fraction: float, seed: int) -> set[str]:
    """The people :func:`split_people` holds out of faces labelled ``person``
    ("" = unlabelled): a seeded ``val_fraction`` of those with >= 2 faces."""
    people, counts = np.unique(person[person != ""], return_counts=True)
    eligible = people[counts >= 2]
    rng = np.random.default_rng(seed)
    n_val = round(len(eligible) * val_fraction)
    return set(rng.choice(eligible, size=n_val, replace=False).tolist()) if n_val else set()


def centred_targets(teacher: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Teacher descriptors minus the training mean, L2-normalised (N, 128)."""
    centred = teacher - mean[None, :]
    out: np.ndarray = (centred / np.linalg.norm(centred, axis=1, keepdims=True)).astype(np.float32)
    return out


class BatchSampler:
    """P people x K images (labelled, for the triplet loss) plus ``extra``
    faces drawn from every training face (for distillation). Deterministic:
    batch ``step`` depends only on (seed, step), so a resumed run continues
    with exactly the batches it would have seen."""

    def __init__(self, data: FaceData, people: int, per_person: int, extra: int, seed: int) -> None:
        self._p, self._k, self._extra, self._seed = people, per_person, extra, seed
        labelled = np.flatnonzero(data.person != "")
        groups: dict[str, list[int]] = {}
        for i in labelled.tolist():
            groups.setdefault(str(data.person[i]), []).append(i)
        self._groups = [np.array(v) for _, v in sorted(groups.items()) if len(v) >= per_person]
        if len(self._groups) < people:
            raise ValueError(
                f"{len(self._groups)} people with >= {per_person} images; need {people}"
            )
        self._all = np.arange(len(data))

    @property
    def people(self) -> int:
        return len(self._groups)

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices (P*K + extra,), labels (P*K,)) for one step."""
        rng = np.random.default_rng([self._seed, step])
        chosen = rng.choice(len(self._groups), size=self._p, replace=False)
        idx: list[int] = []
        labels: list[int] = []
        for label, g in enumerate(chosen):
            members = rng.choice(self._groups[g], size=self._k, replace=False)
            idx += members.tolist()
            labels += [label] * self._k
        idx += rng.choice(self._all, size=self._extra, replace=False).tolist()
        return np.array(idx), np.array(labels)
