"""Prometheus metrics of the registry: per-RPC counts by status code and
latency histograms, exposed over HTTP at ``/metrics``.

Each server has its own collector registry, so several servers (tests) can
live in one process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from likeness.handlers import Behaviour, WrappingInterceptor

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """``likeness_registry_requests_total{method,code}`` and
    ``likeness_registry_request_seconds{method}`` (wall seconds per call)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "likeness_registry_requests",
            "Registry RPCs answered, by method and status code.",
            ("method", "code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "likeness_registry_request_seconds",
            "Registry RPC latency in seconds, by method.",
            ("method",),
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._httpd: Any = None

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.requests.labels(method=method, code=code.name).inc()
        self.latency.labels(method=method).observe(seconds)

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port`` (0 picks a port); returns the bound port."""
        httpd, _ = start_http_server(port, addr=host, registry=self.registry)
        self._httpd = httpd
        return int(httpd.server_port)

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def interceptor(self) -> grpc.ServerInterceptor:
        """A server interceptor recording every call (install it outermost)."""
        return _MetricsInterceptor(self)


def _final_code(context: grpc.ServicerContext, failed: bool) -> grpc.StatusCode:
    code = context.code()  # type: ignore[attr-defined]
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK


class _MetricsInterceptor(WrappingInterceptor):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def unary(self, behaviour: Behaviour, method: str) -> Behaviour:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            failed = True
            try:
                response = behaviour(request, context)
                failed = False
                return response
            finally:
                self._observe(method, context, failed, start)

        return handle

    def stream(self, behaviour: Behaviour, method: str) -> Behaviour:
        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.perf_counter()
            failed = True
            try:
                yield from behaviour(request, context)
                failed = False
            finally:
                self._observe(method, context, failed, start)

        return handle

    def _observe(
        self, method: str, context: grpc.ServicerContext, failed: bool, start: float
    ) -> None:
        self._metrics.observe(method, _final_code(context, failed), time.perf_counter() - start)
