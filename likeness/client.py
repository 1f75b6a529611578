"""A small typed client of the Likeness Registry, Admin and Embedder services.

    with LikenessClient("127.0.0.1:50052", api_key=key) as client:
        client.enroll("alice", images=[Path("alice.jpg").read_bytes()])
        result = client.verify("alice", Path("probe.jpg").read_bytes())
        if result.match:
            ...

Results are frozen dataclasses (see the names exported below). Failed calls
raise a :class:`LikenessRpcError` subclass per gRPC status code
(:class:`NotFoundError`, :class:`UnavailableError`, ...), carrying the code
and the server's message. Every call has a deadline (``timeout_s``, in
seconds, for the whole call including retries). UNAVAILABLE is retried by
gRPC itself, from the channel's service config (:func:`service_config`: a
``retryPolicy`` with exponential backoff, jitter and throttling, built from
:class:`RetryPolicy`), for calls that are safe to repeat with the same
answer (:data:`SAFE_METHODS`): reads, Enroll (which always carries an
idempotency key, generated when the caller gives none) and RevokeApiKey
(revoking a revoked key succeeds). Creates, deletes (a repeated delete whose
first attempt succeeded but whose reply was lost would answer NOT_FOUND) and
the streaming export/import are never retried: on UnavailableError the
caller checks the state before repeating.

Several registries behind one client (round_robin over every address the
target resolves to)::

    config = service_config(load_balancing="round_robin")
    LikenessClient("ipv4:10.0.0.1:50052,10.0.0.2:50052", service_config=config)

:class:`likeness.aio.AsyncLikenessClient` is the same client on asyncio.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from likeness import _client_convert as convert
from likeness._client_errors import (
    AbortedError,
    AlreadyExistsError,
    CancelledError,
    DataLossError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    LikenessRpcError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
    error_for,
)
from likeness._client_galleries import GalleryCalls
from likeness._client_retry import SAFE_METHODS, RetryPolicy, service_config
from likeness._client_types import (
    DEFAULT_GALLERY,
    ApiKey,
    BoundingBox,
    Candidate,
    CompareResult,
    CreatedApiKey,
    DuplicateCandidate,
    Embedding,
    EmbedResult,
    EnrolledFace,
    EnrollResult,
    ExportedFace,
    Face,
    FaceRecord,
    Gallery,
    GalleryStats,
    IdentifiedFace,
    IdentifyResult,
    ImportResult,
    ModelInfo,
    Point,
    Subject,
    SubjectPage,
    SubjectSummary,
    VerifyResult,
)
from likeness.duplicates import DuplicatePage, DuplicatePair
from likeness.quality import Quality
from likeness.reasons import ErrorInfo, Reason
from likeness.selection import FaceSelection
from likeness.selection import to_pb as selection_pb
from likeness.v1 import (
    embedder_pb2,
    registry_pb2,
)

__all__ = [
    "DEFAULT_GALLERY",
    "SAFE_METHODS",
    "AbortedError",
    "AlreadyExistsError",
    "ApiKey",
    "BoundingBox",
    "CancelledError",
    "Candidate",
    "CompareResult",
    "CreatedApiKey",
    "DataLossError",
    "DeadlineExceededError",
    "DuplicateCandidate",
    "DuplicatePage",
    "DuplicatePair",
    "EmbedResult",
    "Embedding",
    "EnrollResult",
    "EnrolledFace",
    "ErrorInfo",
    "ExportedFace",
    "Face",
    "FaceRecord",
    "FaceSelection",
    "FailedPreconditionError",
    "Gallery",
    "GalleryStats",
    "IdentifiedFace",
    "IdentifyResult",
    "ImportResult",
    "InternalError",
    "InvalidArgumentError",
    "LikenessClient",
    "LikenessRpcError",
    "ModelInfo",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "Point",
    "Probe",
    "Quality",
    "Reason",
    "ResourceExhaustedError",
    "RetryPolicy",
    "Subject",
    "SubjectPage",
    "SubjectSummary",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "VerifyResult",
    "error_for",
    "service_config",
]

#: A probe face: encoded image bytes (JPEG, PNG, WebP, BMP) or an embedding
#: of the gallery's model.
Probe = convert.Probe


class LikenessClient(GalleryCalls):
    """Client of one Registry (with its Admin service) and optionally one Embedder.

    ``registry_address`` / ``embedder_address``: "host:port". ``api_key``: sent
    as ``authorization: Bearer <key>`` on every call. ``tls``: False for
    plaintext, True for TLS with the system's root certificates, or the path
    of a PEM file of root certificates. ``timeout_s``: deadline of each unary
    call in seconds, retries included; ``stream_timeout_s``: deadline of a
    whole export or import. ``retry``: the retry policy of the default
    service config; ``service_config``: a whole gRPC service config (a
    JSON-able dict, e.g. from :func:`service_config`) replacing the default,
    ``retry`` then unused; ``channel_options``: extra gRPC channel options
    (keepalives, ...), applied last. Use as a context manager, or call
    :meth:`close`.
    """

    # -- Embedder ---------------------------------------------------------

    def embed(self, image: bytes, selection: FaceSelection = FaceSelection.DEFAULT) -> EmbedResult:
        """Detect, align, score and embed the faces of one encoded image
        (default selection: the largest face). NotFoundError when no face."""
        caller, stub = self._embedder_parts()
        request = embedder_pb2.EmbedRequest(image=image, selection=selection_pb(selection))
        response = caller.unary(stub.Embed, request, timeout_s=self.timeout_s)
        return convert.embed_result(response)

    def embed_batch(
        self, images: Sequence[bytes], selection: FaceSelection = FaceSelection.DEFAULT
    ) -> list[EmbedResult | LikenessRpcError]:
        """Embed up to 64 images in one call; each item is its result or the
        typed error the image alone would have got (returned, not raised)."""
        caller, stub = self._embedder_parts()
        request = embedder_pb2.EmbedBatchRequest(
            items=[
                embedder_pb2.EmbedRequest(image=i, selection=selection_pb(selection))
                for i in images
            ]
        )
        response = caller.unary(stub.EmbedBatch, request, timeout_s=self.timeout_s)
        return convert.embed_batch_results(response, self.embedder_address or "")

    def info(self) -> ModelInfo:
        """The embedder's model: fingerprint, dimension, calibrated threshold."""
        caller, stub = self._embedder_parts()
        response = caller.unary(stub.Info, embedder_pb2.InfoRequest(), timeout_s=self.timeout_s)
        return convert.model_info(response)

    # -- Registry: faces and decisions -------------------------------------

    def enroll(
        self,
        subject_id: str,
        images: Sequence[bytes] = (),
        embeddings: Sequence[Embedding] = (),
        *,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        gallery: str = DEFAULT_GALLERY,
        selection: FaceSelection = FaceSelection.DEFAULT,
    ) -> EnrollResult:
        """Add faces to a subject, creating it on its first face.

        Each image must show exactly one face unless ``selection`` says
        otherwise. ``metadata`` replaces the subject's metadata when
        non-empty. A retried request with the same ``idempotency_key`` (at
        most 128 characters, per gallery) stores nothing again and answers
        ``replayed=True``; when None, a random key is generated so that this
        call's own retries are safe.
        """
        request = convert.enroll_request(
            gallery, subject_id, images, embeddings, metadata, idempotency_key, selection
        )
        response = self._registry.unary(
            self._registry_stub.Enroll, request, timeout_s=self.timeout_s
        )
        return convert.enroll_result(response)

    def verify(
        self, subject_id: str, probe: Probe, *, gallery: str = DEFAULT_GALLERY
    ) -> VerifyResult:
        """1:1: is the probe (image bytes or embedding) the claimed subject?
        NotFoundError for an unknown subject or no face in the probe."""
        request = registry_pb2.VerifyRequest(
            gallery=gallery, subject_id=subject_id, probe=convert.probe_pb(probe)
        )
        response = self._registry.unary(
            self._registry_stub.Verify, request, timeout_s=self.timeout_s
        )
        return convert.verify_result(response)

    def identify(
        self,
        probe: Probe,
        *,
        top_k: int = 5,
        min_score: float | None = None,
        gallery: str = DEFAULT_GALLERY,
        selection: FaceSelection = FaceSelection.DEFAULT,
    ) -> IdentifyResult:
        """1:N, open set: the ``top_k`` (1-100) subjects most like the probe
        scoring at least ``min_score`` (default: the gallery's threshold).
        ``selection`` ALL: every face of an image probe, in ``faces``."""
        request = convert.identify_request(gallery, probe, top_k, min_score, selection)
        response = self._registry.unary(
            self._registry_stub.Identify, request, timeout_s=self.timeout_s
        )
        return convert.identify_result(response)

    def compare(self, a: Probe, b: Probe, *, gallery: str = "") -> CompareResult:
        """Compare two probes, storing nothing; ``gallery`` (optional) picks
        the threshold and model check, empty = the embedder model's default."""
        request = registry_pb2.CompareRequest(
            a=convert.probe_pb(a), b=convert.probe_pb(b), gallery=gallery
        )
        response = self._registry.unary(
            self._registry_stub.Compare, request, timeout_s=self.timeout_s
        )
        return convert.compare_result(response)

    # -- Registry: subjects ----------------------------------------------

    def get_subject(self, subject_id: str, *, gallery: str = DEFAULT_GALLERY) -> Subject:
        """A subject with its faces and metadata; NotFoundError when unknown."""
        request = registry_pb2.GetSubjectRequest(gallery=gallery, subject_id=subject_id)
        response = self._registry.unary(
            self._registry_stub.GetSubject, request, timeout_s=self.timeout_s
        )
        return convert.subject(response)

    def list_subjects(
        self, *, gallery: str = DEFAULT_GALLERY, page_size: int = 100, page_token: str = ""
    ) -> SubjectPage:
        """One page (``page_size`` 1-1000) of subjects ordered by id."""
        request = registry_pb2.ListSubjectsRequest(
            gallery=gallery, page_size=page_size, page_token=page_token
        )
        response = self._registry.unary(
            self._registry_stub.ListSubjects, request, timeout_s=self.timeout_s
        )
        return convert.subject_page(response)

    def iter_subjects(
        self, *, gallery: str = DEFAULT_GALLERY, page_size: int = 500
    ) -> Iterator[SubjectSummary]:
        """Every subject of a gallery, ordered by id, fetched page by page."""
        token = ""
        while True:
            page = self.list_subjects(gallery=gallery, page_size=page_size, page_token=token)
            yield from page.subjects
            if not page.next_page_token:
                return
            token = page.next_page_token

    def delete_subject(self, subject_id: str, *, gallery: str = DEFAULT_GALLERY) -> int:
        """Remove a subject and all its faces; returns how many faces were deleted.

        NotFoundError when the subject has no faces. Not retried: after an
        UnavailableError the subject may or may not be gone (see
        :meth:`get_subject`).
        """
        request = registry_pb2.DeleteSubjectRequest(gallery=gallery, subject_id=subject_id)
        response = self._registry.unary(
            self._registry_stub.DeleteSubject, request, timeout_s=self.timeout_s
        )
        return int(response.faces_deleted)

    def delete_face(self, face_id: str, *, gallery: str = DEFAULT_GALLERY) -> str:
        """Remove one face; returns its subject id. NotFoundError when absent."""
        request = registry_pb2.DeleteFaceRequest(gallery=gallery, face_id=face_id)
        response = self._registry.unary(
            self._registry_stub.DeleteFace, request, timeout_s=self.timeout_s
        )
        return str(response.subject_id)

    def stats(
        self, *, gallery: str = DEFAULT_GALLERY, count_duplicates: bool = False
    ) -> GalleryStats:
        """A gallery's configuration and its subject and face counts; with
        ``count_duplicates`` also its number of duplicate pairs (one index
        search per face: slower)."""
        request = registry_pb2.StatsRequest(gallery=gallery, count_duplicates=count_duplicates)
        response = self._registry.unary(
            self._registry_stub.Stats, request, timeout_s=self.timeout_s
        )
        return convert.gallery_stats(response)
