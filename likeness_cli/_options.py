"""Options shared by the commands (each with its ``LIKENESS_*`` variable).

The connection options are declared once, here: :func:`connected` adds them
to a command, which receives them as one :class:`Connection`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from likeness.client import DEFAULT_GALLERY, LikenessClient

_CONNECTION = "Connection"

DEFAULT_REGISTRY = "127.0.0.1:50052"
DEFAULT_EMBEDDER = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 30.0
#: Deadline of a whole export or import, seconds.
DEFAULT_STREAM_TIMEOUT_S = 600.0

Registry = Annotated[
    str,
    typer.Option(
        "--registry",
        envvar="LIKENESS_REGISTRY_ADDRESS",
        help="host:port of the Registry service.",
        rich_help_panel=_CONNECTION,
    ),
]
Embedder = Annotated[
    str,
    typer.Option(
        "--embedder",
        envvar="LIKENESS_EMBEDDER_ADDRESS",
        help="host:port of the Embedder service.",
        rich_help_panel=_CONNECTION,
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="LIKENESS_API_KEY",
        help="API key, sent as 'authorization: Bearer <key>'.",
        show_default=False,
        rich_help_panel=_CONNECTION,
    ),
]
Tls = Annotated[
    bool,
    typer.Option(
        "--tls/--no-tls",
        envvar="LIKENESS_TLS",
        help="Use TLS with the system's root certificates.",
        rich_help_panel=_CONNECTION,
    ),
]
RootCert = Annotated[
    Path | None,
    typer.Option(
        "--root-cert",
        envvar="LIKENESS_TLS_ROOT_CERT",
        help="PEM file of root certificates; implies --tls.",
        show_default=False,
        rich_help_panel=_CONNECTION,
    ),
]
Timeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        envvar="LIKENESS_TIMEOUT_S",
        min=0.1,
        help="Deadline of each call in seconds, retries included.",
        rich_help_panel=_CONNECTION,
    ),
]
StreamTimeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        envvar="LIKENESS_STREAM_TIMEOUT_S",
        min=0.1,
        help="Deadline of the whole transfer, seconds.",
    ),
]
Gallery = Annotated[
    str,
    typer.Option("--gallery", "-g", envvar="LIKENESS_GALLERY", help="Gallery name."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]

__all__ = [
    "DEFAULT_EMBEDDER",
    "DEFAULT_GALLERY",
    "DEFAULT_REGISTRY",
    "DEFAULT_TIMEOUT_S",
    "Connection",
    "Gallery",
    "Json",
    "connected",
]


@dataclass(frozen=True)
class Connection:
    """A command's connection options: the service's ``address``
    (host:port), its API key, TLS (``root_cert`` implies it) and the
    deadline of each call, seconds (of the whole stream for a transfer)."""

    address: str
    api_key: str | None
    tls: bool
    root_cert: Path | None
    timeout_s: float
    embedder: bool = False
    streaming: bool = False

    def client(self) -> LikenessClient:
        """A client of the service (reads ``root_cert`` now)."""
        return LikenessClient(
            self.address,
            self.address if self.embedder else None,
            api_key=self.api_key or None,
            tls=self.root_cert if self.root_cert is not None else self.tls,
            timeout_s=self.timeout_s,
            stream_timeout_s=self.timeout_s if self.streaming else DEFAULT_STREAM_TIMEOUT_S,
        )


_F = TypeVar("_F", bound=Callable[..., Any])


def connected(*, embedder: bool = False, streaming: bool = False) -> Callable[[_F], _F]:
    """Give a command the connection options (``--registry``, or
    ``--embedder`` with ``embedder``; ``--api-key``, ``--tls``,
    ``--root-cert``, ``--timeout``: of the whole transfer with
    ``streaming``), after its own; it receives them as its keyword
    parameter ``connection: Connection``."""
    options: list[tuple[str, Any, Any]] = [
        ("embedder", Embedder, DEFAULT_EMBEDDER)
        if embedder
        else ("registry", Registry, DEFAULT_REGISTRY),
        ("api_key", ApiKey, None),
        ("tls", Tls, False),
        ("root_cert", RootCert, None),
        ("timeout", StreamTimeout, DEFAULT_STREAM_TIMEOUT_S)
        if streaming
        else ("timeout", Timeout, DEFAULT_TIMEOUT_S),
    ]

    def decorate(command: _F) -> _F:
        # typer reads the signature: the command's own parameters, with
        # their annotations resolved, then the connection options.
        hints = typing.get_type_hints(command, include_extras=True)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in inspect.signature(command).parameters.values()
            if p.name != "connection"
        ]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
            for name, a, d in options
        ]

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            address, api_key, tls, root_cert, timeout_s = (kwargs.pop(n) for n, _, _ in options)
            connection = Connection(
                address, api_key, tls, root_cert, timeout_s, embedder, streaming
            )
            return command(*args, connection=connection, **kwargs)

        params = [*own, *added]
        run.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        return run  # type: ignore[return-value]

    return decorate
