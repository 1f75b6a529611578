"""The connection of the ``qdrant`` backend: one qdrant-client, and its
errors mapped to domain errors (a server that cannot be reached, times out,
or rejects the API key is Unavailable; a request it rejects as malformed is
InvalidArgument; the server's own words go to the log only)."""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable
from typing import Any, TypedDict, TypeVar, Unpack
from urllib.parse import urlsplit

import grpc
from qdrant_client import QdrantClient
from qdrant_client.common.client_exceptions import QdrantException
from qdrant_client.http.exceptions import ApiException, UnexpectedResponse

from likeness import errors
from server.store import _codec as codec

log = logging.getLogger("likeness.store.qdrant")

T = TypeVar("T")

#: Longest wait between two reconnection attempts to a Qdrant server.
_MAX_RECONNECT_BACKOFF_MS = 5_000

#: What a client is told; the server's own words go to the log only.
UNAVAILABLE = "the store is unavailable"
REJECTED = "the store rejected the request"


class Missing(Exception):
    """The server answered "not found"; the caller knows what was missing."""


class LocalValueError(Exception):
    """A ValueError of qdrant-client's local mode (see :meth:`QdrantStore._call`)."""


def from_grpc(exc: grpc.RpcError) -> Exception:
    code_of = getattr(exc, "code", None)
    code = code_of() if callable(code_of) else None
    details_of = getattr(exc, "details", None)
    details = str(details_of()) if callable(details_of) else ""
    if code == grpc.StatusCode.NOT_FOUND:
        return Missing(details)
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return errors.AlreadyExists("already exists")
    name = code.name if code is not None else "unknown"
    log.warning("qdrant answered %s: %s", name, details, exc_info=exc)
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
        return errors.InvalidArgument(REJECTED)
    return errors.Unavailable(UNAVAILABLE)


def from_http(exc: UnexpectedResponse) -> Exception:
    status = exc.status_code or 0
    if status == 404:
        return Missing(exc.reason_phrase)
    if status == 409:
        return errors.AlreadyExists("already exists")
    log.warning("qdrant answered HTTP %d: %r", status, exc.content[:300], exc_info=exc)
    if status in (400, 422):
        return errors.InvalidArgument(REJECTED)
    return errors.Unavailable(UNAVAILABLE)


class QdrantOptions(TypedDict, total=False):
    """Options of the qdrant store besides its ``url``: ``api_key`` of the
    server; ``prefer_grpc`` (True); ``location`` (``":memory:"``: local mode,
    instead of a url); ``timeout_s`` (10) of each request; collection name
    ``prefix`` ("likeness_")."""

    api_key: str | None
    prefer_grpc: bool
    location: str | None
    timeout_s: float
    prefix: str


class QdrantConnection:
    """A qdrant-client for ``url`` or ``location`` and the calls through it.

    Give exactly one of ``url`` (e.g. ``http://qdrant:6334``; with
    ``prefer_grpc`` its port is the gRPC port) or ``location`` (``":memory:"``).
    ``timeout_s`` bounds each request (rounded up to whole seconds, as
    qdrant-client takes them). Nothing connects until the first call.
    Collections are named ``<prefix>...``.
    """

    def __init__(self, url: str | None = None, **options: Unpack[QdrantOptions]) -> None:
        location = options.get("location")
        if (url is None) == (location is None):
            raise ValueError("give exactly one of url and location")
        self._local = location is not None
        if location is not None:
            self._client = QdrantClient(location=location)
        else:
            assert url is not None
            self._client = QdrantClient(
                url=url,
                grpc_port=urlsplit(url).port or 6334,
                prefer_grpc=options.get("prefer_grpc", True),
                api_key=options.get("api_key"),
                timeout=max(1, math.ceil(options.get("timeout_s", 10.0))),
                check_compatibility=False,
                # gRPC's default reconnect backoff grows to 120 s: after a long
                # outage the registry would stay UNAVAILABLE that long once
                # Qdrant is back. Retry at least every few seconds instead.
                grpc_options={
                    "grpc.initial_reconnect_backoff_ms": 500,
                    "grpc.max_reconnect_backoff_ms": _MAX_RECONNECT_BACKOFF_MS,
                },
            )
        # Local mode is plain Python over dicts: one caller at a time.
        self._serial: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._local else contextlib.nullcontext()
        )
        self._prefix = options.get("prefix", "likeness_")
        self._closed = False

    def _collection(self, gallery: str) -> str:
        return f"{self._prefix}g_{codec.check_gallery_name(gallery)}"

    def require(self, gallery: str) -> None:
        """NotFound unless the gallery's collection exists."""
        if not self._call(self._client.collection_exists, self._collection(gallery)):
            raise errors.NotFound(f"gallery {gallery!r} not found")

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the client, mapping its errors to domain errors (Missing for
        a "not found" the caller interprets)."""
        if self._closed:
            raise errors.Unavailable("the qdrant store is closed")
        try:
            with self._serial:
                return fn(*args, **kwargs)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from exc
        except UnexpectedResponse as exc:
            raise from_http(exc) from exc
        except (ApiException, QdrantException, OSError) as exc:
            log.warning("qdrant cannot be reached", exc_info=True)
            raise errors.Unavailable(UNAVAILABLE) from exc
        except ValueError as exc:
            # Local mode reports both unknown collections and bad input as
            # ValueError; the caller tells them apart by asking for the collection.
            raise LocalValueError(str(exc)) from exc

    def _on_gallery(self, gallery: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`_call` on a gallery's collection: NotFound when it is gone."""
        try:
            return self._call(fn, *args, **kwargs)
        except (Missing, LocalValueError) as exc:
            self.require(gallery)
            if isinstance(exc, Missing):
                raise errors.NotFound(f"gallery {gallery!r} not found") from None
            log.warning("the store rejected a request on gallery %r: %s", gallery, exc)
            raise errors.InvalidArgument(REJECTED) from None

    # -- lifecycle ---------------------------------------------------------

    def check_health(self) -> None:
        """Unavailable when the server cannot be reached or refuses us."""
        if self._closed:
            raise errors.Unavailable("the qdrant store is closed")
        self._call(self._client.get_collections)

    def close(self) -> None:
        """Close the client's connections; idempotent."""
        if not self._closed:
            self._closed = True
            self._client.close()
