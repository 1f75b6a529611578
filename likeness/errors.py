"""Domain errors shared by the Likeness services.

Each error type maps to exactly one gRPC status code in
:mod:`likeness.status`; code raises these and never builds statuses by
hand, so the mapping lives in one place.
"""

from __future__ import annotations

from collections.abc import Mapping


class LikenessError(Exception):
    """Base class of every error a client may see; its message is safe to show.

    ``reason``: the machine-readable cause, a :class:`likeness.reasons.Reason`
    name (None where the status code says all); ``metadata``: its details
    ("value" measured, "limit" broken), sent to clients as a
    google.rpc.ErrorInfo (see :mod:`likeness.reasons`).
    """

    def __init__(
        self, message: str, *, reason: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.metadata: Mapping[str, str] = dict(metadata or {})

    def prefixed(self, prefix: str) -> LikenessError:
        """The same error (type, reason, metadata) with ``prefix`` before its message."""
        return type(self)(f"{prefix}{self}", reason=self.reason, metadata=self.metadata)


class InvalidArgument(LikenessError):
    """A request field is malformed (maps to INVALID_ARGUMENT)."""


class NotFound(LikenessError):
    """A named thing, or a face in an image, does not exist (NOT_FOUND)."""


class AlreadyExists(LikenessError):
    """The thing to create exists already (ALREADY_EXISTS)."""


class FailedPrecondition(LikenessError):
    """The request is valid but the system is not in a state to serve it
    (FAILED_PRECONDITION): model mismatch, several faces, low quality."""


class Unauthenticated(LikenessError):
    """No or an unknown API key (UNAUTHENTICATED)."""


class PermissionDenied(LikenessError):
    """The API key lacks the role for this gallery (PERMISSION_DENIED)."""


class Unavailable(LikenessError):
    """A dependency (store, embedder) cannot be reached; retry later (UNAVAILABLE)."""


class ResourceExhausted(LikenessError):
    """A size or rate limit was exceeded (RESOURCE_EXHAUSTED)."""


class DeadlineExceeded(LikenessError):
    """The caller's deadline passed before the work was done (DEADLINE_EXCEEDED)."""
