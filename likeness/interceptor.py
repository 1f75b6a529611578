"""The one place where domain errors become gRPC status codes.

Servicers raise :mod:`likeness.errors` types; this interceptor turns them
into statuses with their message (the table is :mod:`likeness.status`) and,
when they carry a reason, a google.rpc.ErrorInfo (:mod:`likeness.reasons`).
Anything else is logged with a request id and answered INTERNAL with only
that id: clients never see a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc

from likeness import errors, request_id
from likeness.handlers import Behaviour, WrappingInterceptor
from likeness.reasons import ErrorInfo, status_details
from likeness.status import status_of

log = logging.getLogger("likeness.rpc")


def _abort(context: grpc.ServicerContext, exc: BaseException, method: str, rid: str) -> None:
    if isinstance(exc, errors.LikenessError):
        code = status_of(exc)
        log.info(
            "rpc error",
            extra={"method": method, "code": code.name, "reason": exc.reason, "request_id": rid},
        )
        if exc.reason is not None:
            # set_trailing_metadata replaces: the request id goes again.
            details = status_details(code.value[0], str(exc), ErrorInfo(exc.reason, exc.metadata))
            context.set_trailing_metadata(((request_id.REQUEST_ID_KEY, rid), details))
        context.abort(code, str(exc))
    log.exception("unhandled error", extra={"method": method, "request_id": rid})
    context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {rid})")


def _aborted(context: grpc.ServicerContext) -> bool:
    # context.abort() sets the status, then raises a bare Exception that must
    # propagate untouched.
    code = getattr(context, "code", lambda: None)()
    return code not in (None, grpc.StatusCode.OK)


def _start(context: grpc.ServicerContext) -> str:
    rid = request_id.incoming(context)
    context.set_trailing_metadata(((request_id.REQUEST_ID_KEY, rid),))
    return rid


class ErrorInterceptor(WrappingInterceptor):
    """Maps :class:`likeness.errors.LikenessError` to status codes; hides
    everything else behind INTERNAL with a request id (in the trailing
    metadata ``x-request-id`` of every call)."""

    def unary(self, behaviour: Behaviour, method: str) -> Behaviour:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            rid = _start(context)
            try:
                return behaviour(request, context)
            except Exception as exc:
                if _aborted(context):
                    raise
                _abort(context, exc, method, rid)

        return handle

    def stream(self, behaviour: Behaviour, method: str) -> Behaviour:
        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            rid = _start(context)
            try:
                yield from behaviour(request, context)
            except Exception as exc:
                if _aborted(context):
                    raise
                _abort(context, exc, method, rid)

        return handle
