"""Options shared by the commands (each with its ``LIKENESS_*`` variable) and
the client they build."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from likeness.client import DEFAULT_GALLERY, LikenessClient

_CONNECTION = "Connection"

DEFAULT_REGISTRY = "127.0.0.1:50052"
DEFAULT_EMBEDDER = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 30.0

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
    "ApiKey",
    "Embedder",
    "Gallery",
    "Json",
    "Registry",
    "RootCert",
    "Timeout",
    "Tls",
    "connect",
]


def connect(
    registry: str,
    api_key: str | None,
    tls: bool,
    root_cert: Path | None,
    timeout_s: float,
    embedder: str | None = None,
    stream_timeout_s: float = 600.0,
) -> LikenessClient:
    """A client for the command's connection options (reads ``root_cert`` now)."""
    return LikenessClient(
        registry,
        embedder,
        api_key=api_key or None,
        tls=root_cert if root_cert is not None else tls,
        timeout_s=timeout_s,
        stream_timeout_s=stream_timeout_s,
    )
