"""The registry's domain logic, one module per verb: galleries, enrolment
(and subjects), matching, transfer, duplicates. No protobuf here (see
server/servicer.py); the values it takes and answers are in server.domain.

Scores are cosine similarities in [-1, 1]; a decision is "match" when
score >= threshold. Every request is validated completely before anything is
written, so a rejected request stores nothing.
"""

from __future__ import annotations

from server.service.duplicates import Duplicates
from server.service.enrolment import Enrolment
from server.service.galleries import Galleries
from server.service.matching import Matching
from server.service.transfer import Transfer

__all__ = ["RegistryService"]


class RegistryService(Galleries, Enrolment, Matching, Transfer, Duplicates):
    """Registry operations over a :class:`server.store.FaceStore` and an
    embedder (:class:`server.embedder_client.EmbedderPort`).

    Errors (likeness.errors): InvalidArgument for malformed fields (nothing
    stored), NotFound for unknown galleries/subjects/faces, FailedPrecondition
    for model fingerprint mismatches, face-count and quality rejections,
    AlreadyExists for an existing gallery, Unavailable when the store or the
    embedder cannot be reached.
    """
