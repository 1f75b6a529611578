"""The one place where domain errors become gRPC status codes.

Servicers raise :mod:`likeness.errors` types; this interceptor turns them
into statuses with their message. Anything else is logged with a request id
and answered INTERNAL with only that id: clients never see a traceback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from likeness import errors

log = logging.getLogger("likeness.rpc")

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

REQUEST_ID_KEY = "x-request-id"


def status_of(exc: errors.LikenessError) -> grpc.StatusCode:
    """The status code of a domain error (by type, walking its bases)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.UNKNOWN


def request_id(context: grpc.ServicerContext) -> str:
    """The caller's ``x-request-id`` metadata, or a new random id."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return uuid.uuid4().hex


def _abort(context: grpc.ServicerContext, exc: BaseException, method: str, rid: str) -> None:
    if isinstance(exc, errors.LikenessError):
        code = status_of(exc)
        log.info("rpc error", extra={"method": method, "code": code.name, "request_id": rid})
        context.abort(code, str(exc))
    log.exception("unhandled error", extra={"method": method, "request_id": rid})
    context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {rid})")


def _wrap_unary(behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        rid = request_id(context)
        context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
        try:
            return behaviour(request, context)
        except Exception as exc:
            if _aborted(context):
                raise
            _abort(context, exc, method, rid)

    return handler


def _wrap_stream(behaviour: Callable[..., Iterator[Any]], method: str) -> Callable[..., Any]:
    def handler(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        rid = request_id(context)
        context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
        try:
            yield from behaviour(request, context)
        except Exception as exc:
            if _aborted(context):
                raise
            _abort(context, exc, method, rid)

    return handler


def _aborted(context: grpc.ServicerContext) -> bool:
    # context.abort() sets the status, then raises a bare Exception that must
    # propagate untouched.
    code = getattr(context, "code", lambda: None)()
    return code not in (None, grpc.StatusCode.OK)


class ErrorInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Maps :class:`likeness.errors.LikenessError` to status codes; hides
    everything else behind INTERNAL with a request id."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream(handler.stream_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
