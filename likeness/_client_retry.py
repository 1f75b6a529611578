"""Deadlines and retries of the client's unary calls.

Only UNAVAILABLE is retried (the server, its store or its embedder could not
be reached, so the call may be repeated), and only for calls that are safe
to repeat. Every attempt shares one deadline: the call's timeout is a bound
on the whole call, waits included.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from likeness._client_errors import (
    DeadlineExceededError,
    LikenessRpcError,
    UnavailableError,
    from_rpc_error,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for UNAVAILABLE.

    Wait ``n`` (0-based) before attempt ``n + 2`` is drawn uniformly from
    ``[b / 2, b]`` seconds with ``b = min(max_backoff_s, initial_backoff_s *
    multiplier ** n)``; at most ``max_attempts`` attempts in all (1 = no retry).
    """

    max_attempts: int = 4
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """The wait in seconds before retry number ``retry`` (0-based)."""
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier**retry)
        return rng.uniform(ceiling / 2, ceiling)


Metadata = Sequence[tuple[str, str]]


class Caller:
    """Runs unary calls with a deadline, typed errors and retries."""

    def __init__(self, target: str, policy: RetryPolicy, metadata: Metadata) -> None:
        self._target = target
        self._policy = policy
        self._metadata = tuple(metadata)
        self._rng = random.Random()

    @property
    def metadata(self) -> Metadata:
        """The metadata sent with every call (the bearer key, when set)."""
        return self._metadata

    def error(self, exc: grpc.RpcError, method: str) -> LikenessRpcError:
        """The typed exception of a failed call to this target."""
        return from_rpc_error(exc, method=method, target=self._target)

    def unary(
        self,
        method: Callable[..., Any],
        request: Any,
        *,
        timeout_s: float,
        retry: bool,
    ) -> Any:
        """Call ``method(request)`` within ``timeout_s`` seconds in all; retry
        UNAVAILABLE when ``retry`` is True and the deadline leaves room."""
        name = _method_name(method)
        deadline = time.monotonic() + timeout_s
        attempts = self._policy.max_attempts if retry else 1
        for attempt in range(attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                return method(request, timeout=remaining, metadata=self._metadata)
            except grpc.RpcError as exc:
                err = self.error(exc, name)
                if not isinstance(err, UnavailableError) or attempt + 1 >= attempts:
                    raise err from exc
                wait = self._policy.backoff_s(attempt, self._rng)
                if time.monotonic() + wait >= deadline:
                    raise err from exc
                time.sleep(wait)
        raise DeadlineExceededError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"no answer within {timeout_s:g} s",
            method=name,
            target=self._target,
        )


def _method_name(method: Callable[..., Any]) -> str:
    # grpc's multicallables keep the full method name ("/pkg.Service/Method").
    raw = getattr(method, "_method", b"")
    return raw.decode() if isinstance(raw, bytes) else str(raw)
