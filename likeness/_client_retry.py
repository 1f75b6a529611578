"""Retries and channel settings of the clients, as a gRPC service config.

Retries are gRPC's own (the service config's ``retryPolicy``, see
https://github.com/grpc/proposal/blob/master/A6-client-retries.md): only
UNAVAILABLE is retried, only for the methods in :data:`SAFE_METHODS`, with
exponential backoff and full jitter, throttled per channel, and every
attempt shares the call's one deadline (``timeout_s`` bounds the whole call,
waits included).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

#: Methods safe to repeat with the same answer: reads, Enroll (always sent
#: with an idempotency key) and RevokeApiKey (revoking a revoked key
#: succeeds). Creates, deletes and the streams are never retried.
SAFE_METHODS: Mapping[str, tuple[str, ...]] = {
    "likeness.v1.Registry": (
        "Enroll",
        "Verify",
        "Identify",
        "Compare",
        "GetSubject",
        "ListSubjects",
        "Stats",
        "ListGalleries",
        "FindDuplicates",
    ),
    "likeness.v1.Admin": ("ListApiKeys", "RevokeApiKey"),
    "likeness.v1.Embedder": ("Embed", "EmbedBatch", "Info"),
}

#: gRPC caps a retry policy at this many attempts.
MAX_ATTEMPTS = 5

_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

#: Options of every client channel; the caller's ``channel_options`` come
#: after them (gRPC keeps the last value of a repeated option).
BASE_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.primary_user_agent", "likeness-client"),
    ("grpc.enable_retries", 1),
)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for UNAVAILABLE (gRPC's retryPolicy).

    The wait before retry ``n`` (0-based) is drawn uniformly from ``[0, b]``
    seconds with ``b = min(max_backoff_s, initial_backoff_s * multiplier **
    n)``; at most ``max_attempts`` attempts in all (1 = no retry, at most 5,
    gRPC's cap). ``throttle_max_tokens`` / ``throttle_token_ratio``: gRPC's
    retry throttling per channel (a failure costs one token, a success earns
    ``token_ratio``; retries stop while fewer than half the tokens are left).
    """

    max_attempts: int = 4
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    multiplier: float = 2.0
    throttle_max_tokens: int = 10
    throttle_token_ratio: float = 0.1

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise ValueError(f"max_attempts must be 1 to {MAX_ATTEMPTS}")
        if self.initial_backoff_s <= 0 or self.max_backoff_s <= 0 or self.multiplier <= 0:
            raise ValueError("backoffs and multiplier must be positive")
        if not 0 < self.throttle_max_tokens <= 1000 or self.throttle_token_ratio <= 0:
            raise ValueError("throttle_max_tokens must be 1-1000, token_ratio positive")


def service_config(
    retry: RetryPolicy | None = None,
    *,
    load_balancing: Literal["pick_first", "round_robin"] = "pick_first",
) -> dict[str, Any]:
    """The clients' default gRPC service config (a JSON-able dict).

    ``retry`` (default :class:`RetryPolicy`) becomes the ``retryPolicy`` of
    every method in :data:`SAFE_METHODS` and the channel's
    ``retryThrottling``. ``load_balancing="round_robin"`` spreads calls over
    every address a target resolves to, e.g. several registries:
    ``"ipv4:10.0.0.1:50052,10.0.0.2:50052"`` or ``"dns:///registry:50052"``.
    """
    policy = retry or RetryPolicy()
    method_config: dict[str, Any] = {
        "name": [
            {"service": service, "method": method}
            for service, methods in SAFE_METHODS.items()
            for method in methods
        ]
    }
    config: dict[str, Any] = {"loadBalancingConfig": [{load_balancing: {}}]}
    if policy.max_attempts > 1:
        method_config["retryPolicy"] = {
            "maxAttempts": policy.max_attempts,
            "initialBackoff": _duration(policy.initial_backoff_s),
            "maxBackoff": _duration(policy.max_backoff_s),
            "backoffMultiplier": policy.multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        config["retryThrottling"] = {
            "maxTokens": policy.throttle_max_tokens,
            "tokenRatio": policy.throttle_token_ratio,
        }
    config["methodConfig"] = [method_config]
    return config


def channel_options(
    options: Sequence[tuple[str, Any]], config: Mapping[str, Any]
) -> list[tuple[str, Any]]:
    """The options of a client channel: the base ones, the service config,
    then the caller's ``options`` (which win)."""
    return [
        *BASE_CHANNEL_OPTIONS,
        ("grpc.service_config", json.dumps(config)),
        *options,
    ]


def _duration(seconds: float) -> str:
    # The service config's JSON spells durations as "<seconds>s".
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
