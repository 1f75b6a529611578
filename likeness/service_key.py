"""A shared key between two Likeness services (the registry and its embedder).

The caller sends ``authorization: Bearer <key>`` on every call;
:class:`ServiceKeyInterceptor` on the server refuses a call without it, or
with another key, with UNAUTHENTICATED before any servicer code runs.
Methods under ``open_prefixes`` (by default the gRPC health service, so that
orchestrators and container probes need no secret) are served without a key.

The key is compared as SHA-256 digests with :func:`hmac.compare_digest`: the
time taken reveals neither where a wrong key first differs from the real one
nor the real one's length. Keys are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import grpc
from pydantic import AfterValidator, SecretStr

from likeness.handlers import Behaviour, WrappingInterceptor

log = logging.getLogger("likeness.auth")

#: Fewest characters of a shared key: 16 random characters are beyond
#: guessing; ``openssl rand -hex 32`` gives 64.
MIN_KEY_LENGTH = 16
#: gRPC metadata values must be printable ASCII; a space would also end the
#: token of a Bearer header.
_KEY_CHARS = re.compile(r"[\x21-\x7e]+")
#: The gRPC health service (grpc.health.v1): answers SERVING or not, no data.
HEALTH_PREFIX = "/grpc.health.v1.Health/"
AUTHORIZATION = "authorization"
_BEARER = "bearer "


def check_key(key: SecretStr) -> SecretStr:
    """``key`` unchanged when it is usable as a shared key; ValueError
    otherwise (the message never contains the key)."""
    value = key.get_secret_value()
    if len(value) < MIN_KEY_LENGTH:
        raise ValueError(f"a shared key needs at least {MIN_KEY_LENGTH} characters")
    if _KEY_CHARS.fullmatch(value) is None:
        raise ValueError("a shared key must be printable ASCII without spaces")
    return key


#: A settings field type: a SecretStr that :func:`check_key` accepts.
ServiceKey = Annotated[SecretStr, AfterValidator(check_key)]


def bearer_metadata(key: SecretStr | None) -> tuple[tuple[str, str], ...]:
    """The call metadata that presents ``key`` (empty for None)."""
    if key is None:
        return ()
    return ((AUTHORIZATION, f"Bearer {key.get_secret_value()}"),)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def _presented(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    """The Bearer token of the call's authorization metadata, if any."""
    for name, value in metadata or ():
        if name == AUTHORIZATION and isinstance(value, str):
            # The scheme is case-insensitive (RFC 7235); the token is not.
            if value[: len(_BEARER)].lower() == _BEARER:
                return value[len(_BEARER) :].strip()
            return None
    return None


def _refuse(method: str) -> Callable[..., Any]:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        # Info, not warning: anyone who reaches the port can cause one line.
        log.info("call refused: missing or wrong service key", extra={"method": method})
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong service key")

    return handler


def _refuse_stream(method: str) -> Callable[..., Iterator[Any]]:
    refuse = _refuse(method)

    def handler(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        refuse(request, context)
        yield from ()  # pragma: no cover (abort raised)

    return handler


class ServiceKeyInterceptor(WrappingInterceptor):
    """Serves a call only when it presents ``authorization: Bearer <key>``;
    methods whose full name starts with one of ``open_prefixes`` are served
    without a key. Put it first in the server's interceptors, so that a
    refused call does no work."""

    def __init__(self, key: SecretStr, open_prefixes: tuple[str, ...] = (HEALTH_PREFIX,)) -> None:
        check_key(key)
        self._digest = _digest(key.get_secret_value())
        self._open = open_prefixes

    def applies(self, details: grpc.HandlerCallDetails) -> bool:
        """Whether the call is refused: its method is not open and it does
        not present the key."""
        if details.method.startswith(self._open):
            return False
        token = _presented(details.invocation_metadata)
        # Digests: equal lengths, so compare_digest's time says nothing about
        # the key's length either.
        return token is None or not hmac.compare_digest(_digest(token), self._digest)

    # The refusal has the method's own shape (streaming or not), or grpc
    # would read the request wrongly before we answer.

    def unary(self, behaviour: Behaviour, method: str) -> Behaviour:
        return _refuse(method)

    def stream(self, behaviour: Behaviour, method: str) -> Behaviour:
        return _refuse_stream(method)
