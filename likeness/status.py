"""The one table between domain errors and gRPC status codes.

Servers turn a raised :mod:`likeness.errors` type into its status code
(:func:`status_of`); clients of a service turn a status code back into the
domain type (:func:`error_type_of`). Nothing else maps the two.
"""

from __future__ import annotations

import grpc

from likeness import errors

#: Domain error type -> status code. Subclasses map like their base.
STATUS_OF: dict[type[errors.LikenessError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_ERROR_OF = {code: cls for cls, code in STATUS_OF.items()}


def status_of(error: errors.LikenessError | type[errors.LikenessError]) -> grpc.StatusCode:
    """The status code of a domain error or error type (by type, walking its
    bases); UNKNOWN for one outside the table."""
    cls = error if isinstance(error, type) else type(error)
    for base in cls.__mro__:
        if base in STATUS_OF:
            return STATUS_OF[base]
    return grpc.StatusCode.UNKNOWN


def error_type_of(code: grpc.StatusCode) -> type[errors.LikenessError] | None:
    """The domain error type of a status code; None for a code no domain
    error maps to (OK, CANCELLED, INTERNAL, ...)."""
    return _ERROR_OF.get(code)
