"""One re-wrap of a gRPC method handler, shared by every server interceptor.

A ``grpc.RpcMethodHandler`` has one of four shapes (unary or streamed
request, unary or streamed response); an interceptor that wraps the
behaviour must hand grpc back a handler of the same shape with the same
(de)serialisers, or grpc reads the request wrongly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

#: A handler's behaviour: ``(request or request iterator, context) -> response``
#: (a response iterator for streamed responses).
Behaviour = Callable[[Any, grpc.ServicerContext], Any]
#: Makes the new behaviour from the old one.
Wrapper = Callable[[Behaviour], Behaviour]


def rewrap(
    handler: grpc.RpcMethodHandler[Any, Any], unary: Wrapper, stream: Wrapper
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with its behaviour replaced by ``unary(behaviour)`` when
    its response is one message, by ``stream(behaviour)`` (which must return
    a generator function) when it is streamed; same shape and serialisers."""
    kwargs: dict[str, Any] = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream(handler.unary_stream), **kwargs)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(stream(handler.stream_stream), **kwargs)
    return handler


class WrappingInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """A server interceptor that replaces the behaviour of the handlers it
    :meth:`applies` to (all by default) with :meth:`unary` or :meth:`stream`
    of it, keeping each handler's shape."""

    def applies(self, details: grpc.HandlerCallDetails) -> bool:
        return True

    def unary(self, behaviour: Behaviour, method: str) -> Behaviour:
        """The new behaviour of a method with one response message."""
        raise NotImplementedError

    def stream(self, behaviour: Behaviour, method: str) -> Behaviour:
        """The new behaviour (a generator function) of a streaming-response method."""
        raise NotImplementedError

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None or not self.applies(handler_call_details):
            return handler
        method = handler_call_details.method
        return rewrap(handler, lambda b: self.unary(b, method), lambda b: self.stream(b, method))
