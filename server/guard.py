"""Authentication and audit of every Registry and Admin call, as a server
interceptor.

The interceptor authenticates the caller from the call's metadata before any
handler code runs (a refused call reads nothing the client streams), and
writes the call's audit line when it ends, however it ends. Authorization
per gallery stays with the handler, the one that knows the gallery
(a client stream names it only in its first message): :func:`authorize`
checks the role the method needs (:data:`server.auth.REQUIRED_ROLE`, the one
table of method names) and records what the audit line says.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import grpc

from likeness import errors, request_id
from likeness.handlers import Behaviour, WrappingInterceptor
from likeness.status import status_of
from likeness.v1 import common_pb2
from server.audit import AuditLog, AuditRecord
from server.auth import Authenticator, Principal

#: The methods guarded: every one of the Likeness API (health and
#: reflection stay open).
GUARDED_PREFIX = "/likeness.v1."


@dataclass
class Call:
    """One authenticated call: its full method name and caller, and what its
    audit line records (filled in by the handler)."""

    method: str
    principal: Principal
    gallery: str | None = None
    subject: str | None = None
    decision: str | None = None
    score: float | None = None


class _GuardedContext:
    """The handler's ServicerContext, carrying the call's :class:`Call`."""

    def __init__(self, context: grpc.ServicerContext, call: Call) -> None:
        self._context = context
        self.call = call

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def call_of(context: grpc.ServicerContext) -> Call:
    """The :class:`Call` of a handler's context (the interceptor made it)."""
    if not isinstance(context, _GuardedContext):  # type: ignore[unreachable]
        raise RuntimeError("the call did not pass the GuardInterceptor")
    return context.call


def authorize(context: grpc.ServicerContext, gallery: str | None, subject: str = "") -> Call:
    """Record ``gallery`` (and ``subject``) for the audit line, then raise
    PermissionDenied unless the caller holds the role the call's method
    needs on ``gallery`` ("*" for the Admin service; None for RPCs that
    touch no one gallery: the role on any gallery). Returns the call."""
    call = call_of(context)
    call.gallery = gallery
    if subject:
        call.subject = subject
    Authenticator.authorize(call.principal, call.method, gallery)
    return call


def authorize_probe(call: Call, gallery: str, probe: common_pb2.Probe) -> None:
    """PermissionDenied when ``probe`` is a precomputed embedding and the
    caller is not trusted with the gallery's templates
    (auth.TEMPLATE_PROBE_ROLE): exact scores against chosen vectors would
    give the templates away."""
    if probe.WhichOneof("kind") == "embedding":
        Authenticator.authorize_embedding_probe(call.principal, call.method, gallery)


class GuardInterceptor(WrappingInterceptor):
    """Authenticates (Unauthenticated for a missing, malformed, unknown or
    revoked key) and audits every call under :data:`GUARDED_PREFIX`.
    Install it inside the error interceptor, which maps what it raises and
    gives the call the request id its audit line records."""

    def __init__(self, auth: Authenticator, audit: AuditLog) -> None:
        self._auth = auth
        self._audit = audit

    @contextmanager
    def _guarded(
        self, context: grpc.ServicerContext, method: str
    ) -> Iterator[grpc.ServicerContext]:
        rid = request_id.of_call(context)
        call = Call(method, Principal("unauthenticated"))
        outcome = grpc.StatusCode.UNKNOWN.name
        try:
            call.principal = self._auth.authenticate(context.invocation_metadata())
            # Quacks as the context it wraps: see call_of.
            yield cast("grpc.ServicerContext", _GuardedContext(context, call))
            outcome = grpc.StatusCode.OK.name
        except errors.LikenessError as exc:
            outcome = status_of(exc).name
            raise
        except GeneratorExit:
            outcome = grpc.StatusCode.CANCELLED.name  # the client left a stream early
            raise
        except Exception:
            outcome = grpc.StatusCode.INTERNAL.name
            raise
        finally:
            self._audit.write(
                AuditRecord(
                    who=call.principal.key_id,
                    rpc=method.rsplit("/", 1)[-1],
                    gallery=call.gallery,
                    outcome=outcome,
                    request_id=rid,
                    subject=call.subject or None,
                    decision=call.decision,
                    score=call.score,
                )
            )

    def applies(self, details: grpc.HandlerCallDetails) -> bool:
        return bool(details.method.startswith(GUARDED_PREFIX))

    def unary(self, behaviour: Behaviour, method: str) -> Behaviour:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with self._guarded(context, method) as guarded:
                return behaviour(request, guarded)

        return handle

    def stream(self, behaviour: Behaviour, method: str) -> Behaviour:
        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with self._guarded(context, method) as guarded:
                yield from behaviour(request, guarded)

        return handle
