"""The request id of a call: one lookup for servers, logs and audit lines.

A caller may send ``x-request-id`` metadata (1-128 characters); otherwise the
server makes one up. The error interceptor puts the id in the call's
trailing metadata before any handler runs, so everything that logs about
the call afterwards (a handler, the audit line) reads it back from there.
"""

from __future__ import annotations

import uuid

import grpc

REQUEST_ID_KEY = "x-request-id"
_MAX_LENGTH = 128


def incoming(context: grpc.ServicerContext) -> str:
    """The caller's ``x-request-id`` metadata, or a new random id."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and 0 < len(value) <= _MAX_LENGTH:
            return value
    return uuid.uuid4().hex


def of_call(context: grpc.ServicerContext) -> str:
    """The id already in the call's trailing metadata (set by the error
    interceptor), so that messages, trailers and logs agree; else as
    :func:`incoming`."""
    for key, value in context.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == REQUEST_ID_KEY and isinstance(value, str):
            return value
    return incoming(context)
