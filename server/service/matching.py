"""Matching: 1:1 verification, 1:N identification, comparison of two probes.

A decision is "match" when score >= threshold (cosine similarity in [-1, 1]).
"""

from __future__ import annotations

import numpy as np

from likeness import tracing
from likeness.selection import FaceSelection
from server import _validate as check
from server.domain import (
    Candidate,
    CompareResult,
    GalleryConfig,
    IdentifiedFace,
    IdentifyResult,
    Probe,
    SearchHit,
    VerifyResult,
)
from server.service._base import (
    ServiceBase,
    deadline_in,
    seconds_left,
    subject_not_found,
)

# Identify widens its face search (x4 each round) up to this many faces
# until it has top_k distinct subjects.
_IDENTIFY_MAX_FACES = 4096


class Matching(ServiceBase):
    """The matching verbs of the registry service."""

    def verify(
        self, gallery: str, subject_id: str, probe: Probe, timeout_s: float | None = None
    ) -> VerifyResult:
        """Best score of the probe over the subject's faces; NotFound for an
        unknown subject."""
        deadline = deadline_in(timeout_s)
        name = check.gallery_name(gallery)
        subject = check.subject_id(subject_id)
        config, exists = self._resolve_gallery(name, deadline)
        probe_vector = self._probe(probe, "probe", config, deadline)
        if not exists:
            config = self._create_default(config)
        with tracing.span("store.search", {"gallery": config.name}):
            hits = self._store.search(config.name, probe_vector.vector, 1, subject_id=subject)
        if not hits:
            raise subject_not_found(subject, config.name)
        hit = hits[0]
        return VerifyResult(
            score=hit.score,
            threshold=config.threshold,
            match=hit.score >= config.threshold,
            face_id=hit.face_id,
            probe_quality=probe_vector.quality,
            operating_point=config.point,
        )

    def identify(
        self,
        gallery: str,
        probe: Probe,
        top_k: int = 0,
        min_score: float | None = None,
        timeout_s: float | None = None,
        selection: FaceSelection = FaceSelection.LARGEST,
    ) -> IdentifyResult:
        """Up to ``top_k`` subjects (1-100, 0 = 5) by their best face score,
        best first, each scoring >= ``min_score`` (None: the gallery's
        threshold). ``unknown`` when no subject reaches the threshold.
        ``selection`` ALL identifies every face of an image probe, each in
        ``faces`` (largest first); the other fields answer for the largest."""
        deadline = deadline_in(timeout_s)
        name = check.gallery_name(gallery)
        k = check.top_k(top_k)
        floor = None if min_score is None else check.score(min_score, "min_score")
        config, exists = self._resolve_gallery(name, deadline)
        vectors = self._probe_faces(probe, "probe", config, selection, deadline)
        if not exists:
            config = self._create_default(config)
        if floor is None:
            floor = config.threshold
        faces = []
        for face in vectors:
            best = self._best_per_subject(config.name, face.vector, k, floor)
            ranked = sorted(best.values(), key=lambda h: (-h.score, h.subject_id))
            candidates = [
                Candidate(h.subject_id, h.score, h.face_id, dict(h.metadata))
                for h in ranked
                if h.score >= floor
            ][:k]
            unknown = not ranked or ranked[0].score < config.threshold
            faces.append(
                IdentifiedFace(face.box or (0, 0, 0, 0), face.quality, candidates, unknown)
            )
        largest = faces[0]
        every = faces if selection is FaceSelection.ALL and probe.embedding is None else []
        return IdentifyResult(
            largest.candidates,
            largest.unknown,
            config.threshold,
            largest.quality,
            every,
            operating_point=config.point,
        )

    def _best_per_subject(
        self, gallery: str, vector: np.ndarray, k: int, floor: float
    ) -> dict[str, SearchHit]:
        limit = min(k * 4, _IDENTIFY_MAX_FACES)
        while True:
            with tracing.span("store.search", {"gallery": gallery, "limit": limit}):
                hits = self._store.search(gallery, vector, limit)
            best: dict[str, SearchHit] = {}
            for hit in hits:
                if hit.subject_id not in best or hit.score > best[hit.subject_id].score:
                    best[hit.subject_id] = hit
            exhausted = len(hits) < limit or (bool(hits) and hits[-1].score < floor)
            if len(best) >= k or exhausted or limit >= _IDENTIFY_MAX_FACES:
                return best
            limit = min(limit * 4, _IDENTIFY_MAX_FACES)

    def compare(
        self, a: Probe, b: Probe, gallery: str = "", timeout_s: float | None = None
    ) -> CompareResult:
        """Cosine similarity of two probes; stores nothing. With ``gallery``
        its operating point and model apply, else the embedder model's
        default operating point."""
        deadline = deadline_in(timeout_s)
        if gallery:
            config, _ = self._resolve_gallery(check.gallery_name(gallery), deadline)
            point = config.point
            target: GalleryConfig | None = config
            fingerprint, dim = config.model_fingerprint, config.dim
        else:
            info = self._embedder.info(seconds_left(deadline))
            point = info.default_point
            target = None
            fingerprint, dim = info.model_fingerprint, info.dim
        va = self._probe_for(a, "a", target, fingerprint, dim, deadline)
        vb = self._probe_for(b, "b", target, fingerprint, dim, deadline)
        score = _cosine(va.vector, vb.vector)
        threshold = point.threshold
        return CompareResult(
            score, threshold, score >= threshold, va.quality, vb.quality, operating_point=point
        )


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.clip(np.dot(a.astype(np.float64), b.astype(np.float64)), -1.0, 1.0))
