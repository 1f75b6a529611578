"""The channels, stubs and callers a :class:`likeness.client.LikenessClient`
is built on."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc

from likeness._client_errors import LikenessRpcError, from_rpc_error
from likeness._client_retry import RetryPolicy, channel_options, service_config
from likeness.v1 import embedder_pb2_grpc, registry_pb2_grpc

Metadata = Sequence[tuple[str, str]]


class Caller:
    """Runs unary calls of one target with a deadline and typed errors
    (retries are the channel's, from its service config)."""

    def __init__(self, target: str, metadata: Metadata) -> None:
        self._target = target
        self._metadata = tuple(metadata)

    @property
    def metadata(self) -> Metadata:
        """The metadata sent with every call (the bearer key, when set)."""
        return self._metadata

    def error(self, exc: grpc.RpcError, method: str) -> LikenessRpcError:
        """The typed exception of a failed call to this target."""
        return from_rpc_error(exc, method=method, target=self._target)

    def unary(self, method: Callable[..., Any], request: Any, *, timeout_s: float) -> Any:
        """``method(request)`` within ``timeout_s`` seconds, retries included."""
        try:
            return method(request, timeout=timeout_s, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self.error(exc, method_name(method)) from exc


def method_name(method: Callable[..., Any]) -> str:
    """The full RPC name ("/pkg.Service/Method") of a stub's method."""
    # grpc's multicallables (sync and aio) keep it in ``_method``.
    raw = getattr(method, "_method", b"")
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def credentials_of(tls: bool | str | Path) -> grpc.ChannelCredentials | None:
    """Channel credentials: None for plaintext, TLS with the system roots
    (True) or with the roots in a PEM file (a path)."""
    if tls is False:
        return None
    if tls is True:
        return grpc.ssl_channel_credentials()
    return grpc.ssl_channel_credentials(root_certificates=Path(tls).read_bytes())


def check_timeouts(timeout_s: float, stream_timeout_s: float) -> None:
    if timeout_s <= 0 or stream_timeout_s <= 0:
        raise ValueError("timeouts must be positive seconds")


def bearer(api_key: str | None) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {api_key}")] if api_key else []


class ClientBase:
    """The channels, stubs and callers of a client (arguments as for
    :class:`likeness.client.LikenessClient`)."""

    def __init__(
        self,
        registry_address: str,
        embedder_address: str | None = None,
        *,
        api_key: str | None = None,
        tls: bool | str | Path = False,
        timeout_s: float = 10.0,
        stream_timeout_s: float = 600.0,
        retry: RetryPolicy | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
        service_config: Mapping[str, Any] | None = None,
    ) -> None:
        check_timeouts(timeout_s, stream_timeout_s)
        self.registry_address = registry_address
        self.embedder_address = embedder_address
        self.timeout_s = timeout_s
        self.stream_timeout_s = stream_timeout_s
        metadata = bearer(api_key)
        credentials = credentials_of(tls)
        options = options_of(channel_options, service_config, retry)
        self._registry_channel = _channel(registry_address, credentials, options)
        self._registry_stub: Any = registry_pb2_grpc.RegistryStub(self._registry_channel)
        self._admin_stub: Any = registry_pb2_grpc.AdminStub(self._registry_channel)
        self._registry = Caller(registry_address, metadata)
        self._embedder_channel: grpc.Channel | None = None
        self._embedder_stub: Any = None
        self._embedder: Caller | None = None
        if embedder_address is not None:
            self._embedder_channel = _channel(embedder_address, credentials, options)
            self._embedder_stub = embedder_pb2_grpc.EmbedderStub(self._embedder_channel)
            self._embedder = Caller(embedder_address, metadata)

    def close(self) -> None:
        """Close the channels; calls in flight are cancelled."""
        self._registry_channel.close()
        if self._embedder_channel is not None:
            self._embedder_channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _embedder_parts(self) -> tuple[Caller, Any]:
        if self._embedder is None:
            raise ValueError("this LikenessClient has no embedder_address")
        return self._embedder, self._embedder_stub


def options_of(
    options: Sequence[tuple[str, Any]],
    config: Mapping[str, Any] | None,
    retry: RetryPolicy | None,
) -> list[tuple[str, Any]]:
    """A client channel's options: ``config`` (default: :func:`service_config`
    of ``retry``) and the caller's ``options``."""
    return channel_options(options, service_config(retry) if config is None else config)


def _channel(
    address: str, credentials: grpc.ChannelCredentials | None, options: list[tuple[str, Any]]
) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, credentials, options=options)
