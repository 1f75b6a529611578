"""Duplicates: pairs of different subjects whose faces match, found through
the vector index (one top-k search per face, never all pairs)."""

from __future__ import annotations

import base64
import binascii
from collections import Counter

from likeness import errors
from likeness.duplicates import DuplicatePage, DuplicatePair
from server import _validate as check
from server.domain import GalleryConfig
from server.service._base import ServiceBase

#: Faces of other subjects looked at per face, beyond the subject's own.
NEIGHBOURS = 16
_TOKEN_PREFIX = b"dup:"


class Duplicates(ServiceBase):
    """The duplicate-finding verbs of the registry service."""

    def find_duplicates(
        self,
        gallery: str,
        page_size: int = 0,
        page_token: str = "",
        min_score: float | None = None,
    ) -> DuplicatePage:
        """One page (page_size 1-1000, 0 = 100) of the pairs of different
        subjects with a face pair scoring >= ``min_score`` (default: the
        gallery's threshold), best first; ties by subject ids."""
        name = check.gallery_name(gallery)
        size = check.page_size(page_size)
        offset = _decode_token(page_token)
        config = self._existing_gallery(name)
        cut = config.threshold if min_score is None else check.score(min_score, "min_score")
        pairs = self._pairs(config, cut)
        page = pairs[offset : offset + size]
        more = offset + size < len(pairs)
        token = _encode_token(offset + size) if more else ""
        return DuplicatePage(tuple(page), token, len(pairs), cut)

    def count_duplicates(self, config: GalleryConfig) -> int:
        """How many pairs find_duplicates reports at the gallery's threshold."""
        return len(self._pairs(config, config.threshold))

    def _pairs(self, config: GalleryConfig, cut: float) -> list[DuplicatePair]:
        faces = list(self._store.iter_faces(config.name))
        # A face's own subject can fill its top-k; look past all of its faces.
        own = Counter(f.subject_id for f in faces)
        best: dict[tuple[str, str], DuplicatePair] = {}
        for face in faces:
            limit = min(len(faces), own[face.subject_id] + NEIGHBOURS)
            for hit in self._store.search(config.name, face.vector, limit):
                if hit.score < cut:
                    break
                if hit.subject_id == face.subject_id:
                    continue
                a, b = sorted(((face.subject_id, face.face_id), (hit.subject_id, hit.face_id)))
                key = (a[0], b[0])
                if key not in best or hit.score > best[key].score:
                    best[key] = DuplicatePair(a[0], b[0], float(hit.score), a[1], b[1])
        return sorted(best.values(), key=lambda p: (-p.score, p.subject_a, p.subject_b))


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(_TOKEN_PREFIX + str(offset).encode()).decode("ascii")


def _decode_token(token: str) -> int:
    if not token:
        return 0
    bad = errors.InvalidArgument("page_token: not a token returned by FindDuplicates")
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise bad from None
    digits = raw[len(_TOKEN_PREFIX) :]
    if not raw.startswith(_TOKEN_PREFIX) or not digits.isdigit() or len(digits) > 12:
        raise bad
    return int(digits)
