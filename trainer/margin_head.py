"""The optional margin head (CosFace/ArcFace style) of a training stage: one
trainable centre per labelled training person, scored by
trainer.losses.margin_head_loss. Training only: the centres live beside the
network, never in it, so the exported model (weights and LiteRT file) is the
same network with or without the head.

Its classes are the labelled people of the training split: the recipe's test
people (LFW DevTest, [test_people] lists) have left the data before the
split (trainer.train), and the validation people are held out by it, so no
test or validation person ever gets a centre.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.data import FaceData


def head_classes(data: FaceData) -> np.ndarray:
    """The head's classes: the labelled people of ``data`` (the training
    split), sorted; a face's class is its index here."""
    classes: np.ndarray = np.unique(data.person[data.person != ""])
    return classes


def class_index(person: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(N,) int32 class of each face of ``person`` in sorted ``classes``, -1
    for unlabelled faces (the head leaves them out). Raises ValueError for a
    labelled face whose person is not a class (a face of a held-out person)."""
    labelled = person != ""
    if len(classes):
        index = np.searchsorted(classes, person).clip(0, len(classes) - 1)
        stray = labelled & (classes[index] != person)
    else:
        index, stray = np.zeros(len(person), np.int64), labelled
    if stray.any():
        names = sorted(set(person[stray].tolist()))
        raise ValueError(f"{len(names)} people are not classes of the head, e.g. {names[:3]}")
    return np.where(labelled, index, -1).astype(np.int32)


def initial_centres(classes: int, dim: int, seed: int) -> np.ndarray:
    """(classes, dim) float32 starting centres, a function of the seed and
    the shape only: unit-variance normal rows (the loss normalises them)."""
    rng = np.random.default_rng([seed, classes, dim])
    centres: np.ndarray = rng.standard_normal((classes, dim)).astype(np.float32)
    return centres


def save_head(path: Path, classes: np.ndarray, centres: np.ndarray) -> None:
    """Write the head (its classes and centres) to ``path`` (.npz)."""
    np.savez(path, classes=classes, centres=centres)


def load_head(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(classes, centres) written by :func:`save_head`."""
    with np.load(path) as npz:
        return npz["classes"], npz["centres"]


def starting_centres(
    classes: np.ndarray, dim: int, seed: int, parent_head: Path | None
) -> np.ndarray:
    """The centres a stage starts from: the parent stage's trained head when
    it has one over the same classes and dimension (a fine-tuning stage keeps
    the centres its embedding was trained against), else
    :func:`initial_centres`."""
    if parent_head is not None and parent_head.exists():
        parent_classes, centres = load_head(parent_head)
        if np.array_equal(parent_classes, classes) and centres.shape[1] == dim:
            return centres.astype(np.float32)
    return initial_centres(len(classes), dim, seed)
