"""The gRPC server shell of every Likeness service: build, serve, health,
graceful stop, and the signal loop of a serving process.

A service hands :class:`GrpcServer` its servicers and interceptors; the
shell owns what is the same for all of them: the thread pool, message size
limits, TLS or plaintext binding, the gRPC health service
(``grpc.health.v1``) and reflection. Health and reflection names are the
services' full names.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from pydantic import BaseModel, ValidationError

log = logging.getLogger("likeness.serving")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
#: Calls queued or running per worker thread before grpc answers
#: RESOURCE_EXHAUSTED.
_CALLS_PER_WORKER = 16

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class Service:
    """One gRPC service to serve: its full name (``likeness.v1.Embedder``)
    and the generated ``add_<Name>Servicer_to_server`` bound to a servicer."""

    name: str
    add: Callable[[grpc.Server], None]


class EndpointSettings(Protocol):
    """The fields of a service's settings that say where it listens."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def workers(self) -> int: ...
    @property
    def max_message_bytes(self) -> int: ...
    @property
    def tls_cert(self) -> Path | None: ...
    @property
    def tls_key(self) -> Path | None: ...


@dataclass(frozen=True)
class Endpoint:
    """Where and how a server listens: ``port`` 0 picks a free one; TLS when
    both ``tls_cert`` and ``tls_key`` (PEM files) are given; ``workers``
    threads; messages up to ``max_message_bytes`` either way."""

    host: str
    port: int
    workers: int
    max_message_bytes: int
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @classmethod
    def of(cls, settings: EndpointSettings) -> Endpoint:
        """The endpoint a service's settings describe."""
        return cls(
            settings.host,
            settings.port,
            settings.workers,
            settings.max_message_bytes,
            settings.tls_cert,
            settings.tls_key,
        )


class GrpcServer:
    """A built, bound, not yet started gRPC server.

    Raises RuntimeError when ``endpoint`` cannot be bound (nothing is left
    listening). ``port`` is the bound port.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        services: Sequence[Service],
        interceptors: Sequence[grpc.ServerInterceptor] = (),
        thread_name: str = "grpc",
    ) -> None:
        self.health = health.HealthServicer()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=endpoint.workers, thread_name_prefix=thread_name
            ),
            interceptors=list(interceptors),
            options=[
                ("grpc.max_receive_message_length", endpoint.max_message_bytes),
                ("grpc.max_send_message_length", endpoint.max_message_bytes),
            ],
            maximum_concurrent_rpcs=endpoint.workers * _CALLS_PER_WORKER,
        )
        self.services = tuple(s.name for s in services)
        for service in services:
            service.add(self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (*self.services, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        self.host = endpoint.host
        self.port = self._bind(endpoint)

    def _bind(self, endpoint: Endpoint) -> int:
        address = f"{endpoint.host}:{endpoint.port}"
        try:
            if endpoint.tls_cert is not None and endpoint.tls_key is not None:
                creds = grpc.ssl_server_credentials(
                    [(endpoint.tls_key.read_bytes(), endpoint.tls_cert.read_bytes())]
                )
                port = self._server.add_secure_port(address, creds)
            else:
                port = self._server.add_insecure_port(address)
            if port == 0:
                raise RuntimeError(f"cannot bind {address}")
        except BaseException:
            self._server.stop(None)
            raise
        return port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def set_health(self, status: Any, names: Sequence[str] = ("",)) -> None:
        """Report ``status`` (SERVING, NOT_SERVING) for each of ``names``
        ("" is the server as a whole)."""
        for name in names:
            self.health.set(name, status)

    def start(self) -> None:
        self._server.start()

    def stop(self, grace_s: float) -> None:
        """Answer NOT_SERVING, refuse new calls, let calls in flight finish
        for ``grace_s`` seconds; returns once the server has stopped."""
        self.health.enter_graceful_shutdown()
        self._server.stop(grace_s).wait()

    def wait(self) -> None:
        """Block until the server has stopped."""
        self._server.wait_for_termination()


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only: "localhost",
    127.0.0.0/8 or ::1 (brackets allowed). Any other name, and the wildcards
    (0.0.0.0, ::), are not: a name may resolve to anything."""
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def settings_from_env(cls: type[_M], program: str) -> _M:
    """``cls`` read from the environment; SystemExit with one line naming
    every invalid field otherwise (no traceback)."""
    try:
        return cls.model_validate({})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise SystemExit(f"{program}: invalid settings: {problems}") from None


class StopSignals:
    """SIGTERM and SIGINT (and SIGHUP, with ``hangup``) caught from entering
    the block to leaving it; :meth:`wait` blocks until a stop signal came.

    Enter it before starting a server, so that a signal sent as soon as the
    server answers is never lost (a signal during start-up makes ``wait``
    return at once). The handlers only flag what came; ``wait`` acts, so a
    handler never interrupts the caller's shutdown (which may hold locks).
    Off the main thread no handler can be installed: ``wait`` then blocks
    for good (an embedding caller stops it another way, e.g.
    KeyboardInterrupt).
    """

    def __init__(self, hangup: bool = False) -> None:
        self._signals = [signal.SIGTERM, signal.SIGINT] + ([signal.SIGHUP] if hangup else [])
        self._stop = threading.Event()
        self._hangup = threading.Event()
        self._wake = threading.Event()
        self._previous: dict[int, Any] = {}
        self._installed = False

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        (self._hangup if signum == signal.SIGHUP else self._stop).set()
        self._wake.set()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._on_signal) for s in self._signals}
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def wait(self, on_hangup: Callable[[], None] | None = None) -> None:
        """Block until SIGTERM or SIGINT; call ``on_hangup`` on each SIGHUP."""
        if not self._installed:
            threading.Event().wait()
            return
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._hangup.is_set():
                self._hangup.clear()
                if on_hangup is not None:
                    on_hangup()
