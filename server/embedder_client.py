"""The registry's client of the Embedder service (gRPC only: no TensorFlow here).

Errors of the embedder are mapped by status code, never by message text:
UNAVAILABLE and DEADLINE_EXCEEDED become :class:`likeness.errors.Unavailable`;
INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION and RESOURCE_EXHAUSTED become
the matching :mod:`likeness.errors` type carrying the embedder's message.
UNAUTHENTICATED and PERMISSION_DENIED (the embedder refused the registry's
shared key, ``embedder_api_key``) also become Unavailable: the registry's
client can do nothing about it, and must not read it as a refusal of its own
API key; the log says which setting to fix.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from likeness import errors, tracing
from likeness.operating_points import from_proto
from likeness.quality import quality_from_pb
from likeness.reasons import error_info_of
from likeness.selection import FaceSelection, to_pb
from likeness.service_key import bearer_metadata
from likeness.status import error_type_of
from likeness.v1 import embedder_pb2, embedder_pb2_grpc
from server.domain import EmbeddedFace, ModelInfo

log = logging.getLogger("likeness.registry.embedder")

_HEALTH_TIMEOUT_S = 2.0
#: What a client is told when the embedder cannot serve; the address and
#: grpc's connection text go to the log only.
UNAVAILABLE_MESSAGE = "the embedder is unavailable"

# Reconnect quickly after an embedder restart: grpc's default backoff grows
# to two minutes, far longer than an embedder takes to come back.
_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


class EmbedderPort(Protocol):
    """What the registry needs from an embedder."""

    def embed(
        self, image: bytes, selection: FaceSelection, timeout_s: float | None = None
    ) -> list[EmbeddedFace]: ...

    def info(self, timeout_s: float | None = None) -> ModelInfo: ...

    def check_health(self) -> None: ...

    def close(self) -> None: ...


class _EmbedderError(Exception):
    """The embedder answered a status the registry cannot explain to its
    client (INTERNAL, UNIMPLEMENTED...): surfaces as INTERNAL with a request id."""


#: Codes the embedder answers about the request itself: passed on to the
#: registry's client as the same domain error, with the embedder's message.
_PASSED_ON = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
#: The embedder is down or too slow.
_DOWN = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
#: The embedder refused the registry's shared key (missing or wrong).
_KEY_REFUSED = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
_KEY_REFUSED_LOG = (
    "embedder at %s refused the registry's key (%s): LIKENESS_REGISTRY_EMBEDDER_API_KEY "
    "must equal the embedder's LIKENESS_EMBEDDER_API_KEY"
)


def _map_rpc_error(exc: grpc.RpcError, address: str) -> Exception:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else None) or ""
    if code in _KEY_REFUSED:
        log.error(_KEY_REFUSED_LOG, address, code.name)
        return errors.Unavailable(UNAVAILABLE_MESSAGE)
    if code in _DOWN:
        log.warning(
            "embedder at %s unavailable (%s): %s", address, code.name, details, exc_info=True
        )
        return errors.Unavailable(UNAVAILABLE_MESSAGE)
    cls = error_type_of(code)
    if code in _PASSED_ON and cls is not None:
        # The embedder's reason (NO_FACE, MULTIPLE_FACES, ...) goes on to the
        # registry's own caller.
        info = error_info_of(exc.trailing_metadata()) if isinstance(exc, grpc.Call) else None
        if info is None:
            return cls(details)
        return cls(details, reason=info.reason, metadata=info.metadata)
    return _EmbedderError(f"embedder at {address} answered {code.name}: {details}")


class EmbedderClient:
    """Blocking client of one Embedder at ``address`` (host:port).

    ``timeout_s`` is the longest deadline of each call, seconds (a call may
    pass a shorter one: what is left of its own client's deadline).
    ``tls_ca``: a PEM root certificate; when given the channel is TLS
    verified against it, else plaintext. ``api_key``: the embedder's shared
    key, sent as ``authorization: Bearer`` on every call (health checks
    included); None sends none. Thread-safe.
    """

    def __init__(
        self,
        address: str,
        timeout_s: float,
        max_message_bytes: int,
        tls_ca: Path | None = None,
        api_key: SecretStr | None = None,
    ) -> None:
        self._address = address
        self._timeout_s = timeout_s
        self._metadata = bearer_metadata(api_key)
        # Log a refused key once per episode, not on every health probe.
        self._key_refused = False
        options = (
            *_CHANNEL_OPTIONS,
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        )
        if tls_ca is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=tls_ca.read_bytes())
            self._channel = grpc.secure_channel(address, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._stub = embedder_pb2_grpc.EmbedderStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    @property
    def address(self) -> str:
        return self._address

    def _timeout(self, timeout_s: float | None) -> float:
        """The deadline of one call, seconds: ``timeout_s`` capped at the
        configured one; DeadlineExceeded when nothing is left of it."""
        if timeout_s is None:
            return self._timeout_s
        if timeout_s <= 0:
            raise errors.DeadlineExceeded("the request's deadline expired")
        return min(timeout_s, self._timeout_s)

    def embed(
        self, image: bytes, selection: FaceSelection, timeout_s: float | None = None
    ) -> list[EmbeddedFace]:
        """Embed the faces of one encoded image, largest first; ``timeout_s``
        (seconds) shortens the configured deadline.

        Raises InvalidArgument (bad image), NotFound (no face),
        FailedPrecondition (REQUIRE_SINGLE and several faces),
        ResourceExhausted (too large), Unavailable (embedder down or slow).
        """
        request = embedder_pb2.EmbedRequest(image=image, selection=to_pb(selection))
        timeout = self._timeout(timeout_s)
        try:
            response = self._stub.Embed(
                request, timeout=timeout, metadata=tracing.outgoing(self._metadata)
            )
        except grpc.RpcError as exc:
            raise _map_rpc_error(exc, self._address) from None
        faces = []
        for face in response.faces:
            box = face.box
            faces.append(
                EmbeddedFace(
                    vector=np.asarray(face.embedding.values, dtype=np.float32),
                    model_fingerprint=face.embedding.model_fingerprint,
                    quality=quality_from_pb(face.quality),
                    box=(box.left, box.top, box.right, box.bottom),
                )
            )
        return faces

    def info(self, timeout_s: float | None = None) -> ModelInfo:
        """The embedder's model (asked on every call: an embedder restarted
        with another model is noticed at once); ``timeout_s`` as for embed."""
        timeout = self._timeout(timeout_s)
        try:
            response = self._stub.Info(
                embedder_pb2.InfoRequest(),
                timeout=timeout,
                metadata=tracing.outgoing(self._metadata),
            )
        except grpc.RpcError as exc:
            raise _map_rpc_error(exc, self._address) from None
        return ModelInfo(
            model_fingerprint=response.model_fingerprint,
            dim=response.dim,
            default_threshold=response.default_threshold,
            backend=response.backend,
            model_id=response.model_id,
            operating_points=tuple(from_proto(p) for p in response.operating_points),
            default_operating_point=response.default_operating_point,
        )

    def check_health(self) -> None:
        """Raise Unavailable unless the embedder reports SERVING (grpc health,
        overall service "") and accepts the registry's key (an Info call:
        the health service answers without a key, so it cannot tell). An
        embedder without the health service is asked for Info only."""
        try:
            response = self._health.Check(
                health_pb2.HealthCheckRequest(service=""),
                timeout=_HEALTH_TIMEOUT_S,
                metadata=tracing.outgoing(self._metadata),
            )
        except grpc.RpcError as exc:
            if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                self._check_key()
                return
            code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
            # Debug: the health loop probes every second while it is down.
            log.debug("embedder at %s failed its health check (%s)", self._address, code)
            raise errors.Unavailable(UNAVAILABLE_MESSAGE) from None
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            log.debug("embedder at %s is not serving", self._address)
            raise errors.Unavailable(UNAVAILABLE_MESSAGE)
        self._check_key()

    def _check_key(self) -> None:
        """Raise Unavailable unless an Info call with the registry's key
        succeeds; a refused key is logged (error) once until it is accepted."""
        try:
            self._stub.Info(
                embedder_pb2.InfoRequest(),
                timeout=_HEALTH_TIMEOUT_S,
                metadata=tracing.outgoing(self._metadata),
            )
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            if code in _KEY_REFUSED:
                if not self._key_refused:
                    log.error(_KEY_REFUSED_LOG, self._address, code.name)
                self._key_refused = True
            else:
                log.debug("embedder at %s failed Info (%s)", self._address, code.name)
            raise errors.Unavailable(UNAVAILABLE_MESSAGE) from None
        self._key_refused = False

    def close(self) -> None:
        self._channel.close()
