"""The channels, stubs and callers a :class:`likeness.client.LikenessClient`
is built on."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc

from likeness._client_retry import Caller, RetryPolicy
from likeness.v1 import embedder_pb2_grpc, registry_pb2_grpc

_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


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
    ) -> None:
        if timeout_s <= 0 or stream_timeout_s <= 0:
            raise ValueError("timeouts must be positive seconds")
        self.registry_address = registry_address
        self.embedder_address = embedder_address
        self.timeout_s = timeout_s
        self.stream_timeout_s = stream_timeout_s
        policy = retry or RetryPolicy()
        metadata = [("authorization", f"Bearer {api_key}")] if api_key else []
        credentials = _credentials(tls)
        self._registry_channel = _channel(registry_address, credentials)
        self._registry_stub: Any = registry_pb2_grpc.RegistryStub(self._registry_channel)
        self._admin_stub: Any = registry_pb2_grpc.AdminStub(self._registry_channel)
        self._registry = Caller(registry_address, policy, metadata)
        self._embedder_channel: grpc.Channel | None = None
        self._embedder_stub: Any = None
        self._embedder: Caller | None = None
        if embedder_address is not None:
            self._embedder_channel = _channel(embedder_address, credentials)
            self._embedder_stub = embedder_pb2_grpc.EmbedderStub(self._embedder_channel)
            self._embedder = Caller(embedder_address, policy, metadata)

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


def _credentials(tls: bool | str | Path) -> grpc.ChannelCredentials | None:
    if tls is False:
        return None
    if tls is True:
        return grpc.ssl_channel_credentials()
    return grpc.ssl_channel_credentials(root_certificates=Path(tls).read_bytes())


def _channel(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    options = [
        ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
        ("grpc.primary_user_agent", "likeness-client"),
    ]
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, credentials, options=options)
