"""OpenTelemetry tracing, an optional extra (``likeness[tracing]``).

Without the ``opentelemetry-api`` package every function here is a no-op.
With it, spans go to whatever tracer provider the process configured (none:
the API's no-op provider); the services configure none themselves, so an
operator installs the SDK and an exporter (e.g. ``opentelemetry-instrument``
or their own start-up code).

A call is followed registry -> embedder -> store: :class:`TracingInterceptor`
starts a server span per RPC, continuing the caller's W3C ``traceparent``
metadata and carrying the call's request id (``likeness.request_id``);
:func:`outgoing` adds the current context to an outgoing call's metadata;
:func:`span` wraps an internal step (a store operation).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import grpc

from likeness import request_id
from likeness.handlers import Behaviour, WrappingInterceptor

#: The span attribute holding the call's request id (x-request-id).
REQUEST_ID_ATTRIBUTE = "likeness.request_id"
_TRACER = "likeness"


def _api() -> Any:
    try:
        import opentelemetry.propagate as propagate
        import opentelemetry.trace as trace
    except ImportError:
        return None
    return trace, propagate


def _baggage() -> Any:
    import opentelemetry.baggage as baggage
    import opentelemetry.context as context

    return baggage, context


@contextmanager
def span(
    name: str, attributes: Mapping[str, str | int | float | bool] | None = None
) -> Iterator[None]:
    """A span named ``name`` around the block (a no-op without OpenTelemetry)."""
    api = _api()
    if api is None:
        yield
        return
    trace, _ = api
    with trace.get_tracer(_TRACER).start_as_current_span(name, attributes=dict(attributes or {})):
        yield


def outgoing(metadata: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """``metadata`` plus the current trace context (``traceparent``,
    ``baggage``) and, inside a served call, its request id as ``x-request-id``
    (so that the callee logs and answers with the same id); unchanged without
    OpenTelemetry."""
    api = _api()
    if api is None:
        return tuple(metadata)
    _, propagate = api
    baggage, _ = _baggage()
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    extra = list(carrier.items())
    rid = baggage.get_baggage(REQUEST_ID_ATTRIBUTE)
    if isinstance(rid, str) and all(k != request_id.REQUEST_ID_KEY for k, _ in metadata):
        extra.append((request_id.REQUEST_ID_KEY, rid))
    return (*metadata, *extra)


class TracingInterceptor(WrappingInterceptor):
    """A server span per call, child of the caller's ``traceparent`` when sent,
    with the method and request id as attributes. Install it inside the error
    interceptor, so that the request id is the one the call answers with."""

    def unary(self, behaviour: Behaviour, method: str) -> Behaviour:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with _server_span(method, context):
                return behaviour(request, context)

        return handle

    def stream(self, behaviour: Behaviour, method: str) -> Behaviour:
        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with _server_span(method, context):
                yield from behaviour(request, context)

        return handle


@contextmanager
def _server_span(method: str, context: grpc.ServicerContext) -> Iterator[None]:
    api = _api()
    if api is None:
        yield
        return
    trace, propagate = api
    baggage, otel_context = _baggage()
    carrier = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
    rid = request_id.of_call(context)
    # The request id rides along as baggage, for outgoing() to forward.
    parent = baggage.set_baggage(REQUEST_ID_ATTRIBUTE, rid, context=propagate.extract(carrier))
    attributes = {"rpc.system": "grpc", "rpc.method": method, REQUEST_ID_ATTRIBUTE: rid}
    token = otel_context.attach(parent)
    try:
        with trace.get_tracer(_TRACER).start_as_current_span(
            method, kind=trace.SpanKind.SERVER, attributes=attributes
        ):
            yield
    finally:
        otel_context.detach(token)
