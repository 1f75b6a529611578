"""Typed exceptions of :mod:`likeness.client`, one per gRPC status code.

Each carries the status code and the server's message. Where a domain error
of :mod:`likeness.errors` exists for the code, the client error also derives
from it, so ``except likeness.errors.NotFound`` catches a client's
:class:`NotFoundError` as well.
"""

from __future__ import annotations

from typing import ClassVar

import grpc

from likeness import errors
from likeness.reasons import ErrorInfo, error_info_of
from likeness.status import status_of

#: Status code -> the client's exception class; filled as the classes are
#: defined (see LikenessRpcError.__init_subclass__).
_ERROR_OF: dict[grpc.StatusCode, type[LikenessRpcError]] = {}


class LikenessRpcError(errors.LikenessError):
    """A call failed with a gRPC status.

    ``code``: the status code; ``details``: the server's message (safe to
    show); ``method``: the full RPC name, e.g. "/likeness.v1.Registry/Verify";
    ``target``: the address called; ``reason``: the machine-readable cause
    (a :class:`likeness.reasons.Reason` name such as "NO_FACE", from the
    google.rpc.ErrorInfo the server sent; None when it sent none) and
    ``metadata`` its details ("value" measured, "limit" broken). Decide on
    ``reason``, never on the message text.

    A subclass stands for one status code: the code of its domain error base
    (:mod:`likeness.status`, the one table), or ``for_code`` where no domain
    error maps to it.
    """

    for_code: ClassVar[grpc.StatusCode | None] = None

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if cls.__module__ == __name__:  # this module's classes: one per code
            _ERROR_OF[cls.__dict__.get("for_code") or status_of(cls)] = cls

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        *,
        method: str = "",
        target: str = "",
        info: ErrorInfo | None = None,
    ) -> None:
        super().__init__(
            details,
            reason=info.reason if info else None,
            metadata=info.metadata if info else None,
        )
        self.code = code
        self.details = details
        self.method = method
        self.target = target

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}"


class CancelledError(LikenessRpcError):
    """CANCELLED: the call was cancelled, usually by the caller."""

    for_code = grpc.StatusCode.CANCELLED


class UnknownError(LikenessRpcError):
    """UNKNOWN: the server failed without saying how."""

    for_code = grpc.StatusCode.UNKNOWN


class InvalidArgumentError(LikenessRpcError, errors.InvalidArgument):
    """INVALID_ARGUMENT: a malformed field or a bad image; nothing was stored."""


class DeadlineExceededError(LikenessRpcError):
    """DEADLINE_EXCEEDED: the call's deadline passed before an answer came."""

    for_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(LikenessRpcError, errors.NotFound):
    """NOT_FOUND: unknown gallery, subject or face, or no face in the image."""


class AlreadyExistsError(LikenessRpcError, errors.AlreadyExists):
    """ALREADY_EXISTS: the gallery to create exists already."""


class PermissionDeniedError(LikenessRpcError, errors.PermissionDenied):
    """PERMISSION_DENIED: the API key lacks the role for this gallery."""


class ResourceExhaustedError(LikenessRpcError, errors.ResourceExhausted):
    """RESOURCE_EXHAUSTED: a size or rate limit was exceeded."""


class FailedPreconditionError(LikenessRpcError, errors.FailedPrecondition):
    """FAILED_PRECONDITION: model mismatch, 0 or several faces, or a face
    below the gallery's quality gates; the message says which."""


class AbortedError(LikenessRpcError):
    """ABORTED: the operation was aborted by a conflict."""

    for_code = grpc.StatusCode.ABORTED


class OutOfRangeError(LikenessRpcError):
    """OUT_OF_RANGE: a value past the valid range."""

    for_code = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(LikenessRpcError):
    """UNIMPLEMENTED: the server does not offer this RPC."""

    for_code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(LikenessRpcError):
    """INTERNAL: a server bug; the message carries a request id for its logs."""

    for_code = grpc.StatusCode.INTERNAL


class UnavailableError(LikenessRpcError, errors.Unavailable):
    """UNAVAILABLE: the server, its store or its embedder cannot be reached."""


class DataLossError(LikenessRpcError):
    """DATA_LOSS: unrecoverable data loss."""

    for_code = grpc.StatusCode.DATA_LOSS


class UnauthenticatedError(LikenessRpcError, errors.Unauthenticated):
    """UNAUTHENTICATED: missing or unknown API key."""


def error_for(
    code: grpc.StatusCode,
    details: str,
    *,
    method: str = "",
    target: str = "",
    info: ErrorInfo | None = None,
) -> LikenessRpcError:
    """The typed exception for a status code (the base class for an unexpected code)."""
    cls = _ERROR_OF.get(code, LikenessRpcError)
    return cls(code, details, method=method, target=target, info=info)


def from_rpc_error(exc: grpc.RpcError, *, method: str, target: str) -> LikenessRpcError:
    """Convert what grpc raised (a failed call, sync or aio) into the typed exception."""
    info = None
    if isinstance(exc, grpc.Call | grpc.aio.AioRpcError):
        code = exc.code() or grpc.StatusCode.UNKNOWN
        details = exc.details() or code.name.lower().replace("_", " ")
        # aio's Metadata and the sync tuple both iterate as (key, value) pairs.
        info = error_info_of(list(exc.trailing_metadata() or ()))
    else:
        code, details = grpc.StatusCode.UNKNOWN, str(exc) or "rpc failed"
    return error_for(code, details, method=method, target=target, info=info)
