"""Duplicate pairs (FindDuplicates): the one definition the registry answers
with and the client returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DuplicatePair:
    """Two different subjects (``subject_a`` < ``subject_b``) whose faces
    ``face_a`` and ``face_b`` score ``score`` (cosine similarity, the best
    over all their face pairs)."""

    subject_a: str
    subject_b: str
    score: float
    face_a: str
    face_b: str


@dataclass(frozen=True)
class DuplicatePage:
    """One page of duplicate pairs, best score first; ``total`` pairs in all
    pages at ``min_score`` (cosine); ``next_page_token`` empty on the last
    page."""

    pairs: tuple[DuplicatePair, ...]
    next_page_token: str
    total: int
    min_score: float
