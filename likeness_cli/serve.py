"""``likeness serve``: run the Embedder, the Registry, or both in one process.

The service modules are imported inside the command, so that ``serve
registry`` (and every other command) works without TensorFlow installed.

``serve all`` gives its registry the embedder's shared key
(LIKENESS_EMBEDDER_API_KEY). With none configured, an embedder bound to
loopback stays open (the local default: ``likeness info`` works without a
key), while one bound to any other address gets a random key made up for
this run: the registry in this process is its only caller, and no one
else can use the port as an embedding oracle.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

import typer
from pydantic import SecretStr, ValidationError

from likeness import errors, logs
from likeness.serving import StopSignals, is_loopback
from likeness_cli._exit import ExitCode, fail


class Target(enum.StrEnum):
    EMBEDDER = "embedder"
    REGISTRY = "registry"
    ALL = "all"


class Store(enum.StrEnum):
    EDGE = "edge"
    QDRANT = "qdrant"


class _Server(Protocol):
    port: int

    def start(self) -> None: ...

    def stop(self, grace_s: float | None = None) -> None: ...


_S = TypeVar("_S", bound=_Server)

_PANEL = "Service"
# Addresses that bind every interface; clients in this process dial loopback.
_WILDCARDS = frozenset({"0.0.0.0", "::", "[::]", ""})


def _given(**values: Any) -> dict[str, Any]:
    """The options the user set; the rest come from the settings' environment
    variables (LIKENESS_EMBEDDER_*, LIKENESS_REGISTRY_*) or defaults."""
    return {k: v for k, v in values.items() if v is not None}


def _start(name: str, build: Callable[[], _S]) -> _S:
    """Build and start a server; a failure to start is one line and exit 3."""
    try:
        server = build()
        server.start()
    except ValidationError:
        raise
    except (RuntimeError, ValueError, errors.LikenessError) as exc:
        # grpc reports a port it cannot bind as RuntimeError; settings that
        # contradict each other are ValueError; a store or model that cannot
        # be opened raises a domain error.
        fail(f"cannot start the {name}: {exc}", ExitCode.SERVICE)
    return server


def _wait_for_signal(signals: StopSignals, on_hangup: Callable[[], None] | None) -> None:
    """Serve until SIGTERM or SIGINT (the one seam tests replace)."""
    signals.wait(on_hangup)


def _refuse_exposed_registry(host: str | None) -> None:
    """Exit 2 (a settings error, like an invalid value) when the registry
    would serve a non-loopback host without API keys; checked before the
    embedder loads its model."""
    from server.settings import InsecureBindError, RegistrySettings

    try:
        RegistrySettings(**_given(host=host)).check_exposure()
    except InsecureBindError as exc:
        fail(f"refusing to start the registry: {exc}", ExitCode.USAGE)


def serve(
    target: Annotated[
        Target, typer.Argument(help="Which service to run; all = embedder then registry.")
    ] = Target.ALL,
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to bind (0.0.0.0 for other hosts) \\[default: 127.0.0.1].",
            show_default=False,
            rich_help_panel=_PANEL,
        ),
    ] = None,
    embedder_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Embedder gRPC port, 0 = any free one \\[default: 50051].",
            show_default=False,
            rich_help_panel=_PANEL,
        ),
    ] = None,
    registry_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Registry gRPC port, 0 = any free one \\[default: 50052].",
            show_default=False,
            rich_help_panel=_PANEL,
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Registry Prometheus /metrics port, 0 = off \\[default: 9095].",
            show_default=False,
            rich_help_panel=_PANEL,
        ),
    ] = None,
    http_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="serve all/registry: also start the HTTP/JSON gateway on this port (0 = any "
            "free one) \\[default: off].",
            show_default=False,
            rich_help_panel=_PANEL,
        ),
    ] = None,
    embedder_address: Annotated[
        str | None,
        typer.Option(
            help="serve registry: host:port of the Embedder \\[default: 127.0.0.1:50051]; "
            "serve all uses its own.",
            show_default=False,
            rich_help_panel=_PANEL,
        ),
    ] = None,
    store: Annotated[
        Store | None,
        typer.Option(
            help="Registry store: edge = embedded engine in --data-dir, qdrant = a Qdrant "
            "server \\[default: edge].",
            show_default=False,
            rich_help_panel="Storage",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Edge store, API keys and audit log live here \\[default: var].",
            show_default=False,
            rich_help_panel="Storage",
        ),
    ] = None,
    qdrant_url: Annotated[
        str | None,
        typer.Option(
            help="Qdrant server for --store qdrant \\[default: http://127.0.0.1:6334].",
            show_default=False,
            rich_help_panel="Storage",
        ),
    ] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(
            help="Embedder model folder \\[default: the shipped model].",
            show_default=False,
            rich_help_panel=_PANEL,
        ),
    ] = None,
    grace_s: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="On shutdown, let calls in flight finish this long (s) \\[default: "
            "LIKENESS_EMBEDDER_GRACE_S or 5, LIKENESS_REGISTRY_GRACE_S or 10].",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="Log level of the JSON-lines log on stderr \\[default: INFO]."),
    ] = None,
) -> None:
    """Run the services until Ctrl-C or SIGTERM, then shut down gracefully.

    Prints one line per service (name, address, model or store) on stdout
    once it accepts calls. Options left out come from the environment
    (LIKENESS_EMBEDDER_*, LIKENESS_REGISTRY_*) or the defaults shown. The
    registry refuses a non-loopback --host without API keys (exit 2) unless
    LIKENESS_REGISTRY_ALLOW_INSECURE_NO_KEYS=true; SIGHUP reopens its audit log.
    """
    started: list[_Server] = []
    on_hangup: Callable[[], None] | None = None
    if http_port is not None and target is Target.EMBEDDER:
        fail("--http-port needs the registry: serve all or serve registry", ExitCode.USAGE)
    if target in (Target.REGISTRY, Target.ALL):
        _refuse_exposed_registry(host)
    # Caught before any server starts: a signal sent as soon as one answers
    # is never lost. SIGHUP only where a registry reopens its audit log.
    with StopSignals(hangup=target is not Target.EMBEDDER) as signals:
        try:
            embedder_dial: str | None = None
            embedder_key: SecretStr | None = None
            if target in (Target.EMBEDDER, Target.ALL):
                from embedder.server import create_server as create_embedder
                from embedder.settings import EmbedderSettings

                es = EmbedderSettings(
                    **_given(
                        host=host, port=embedder_port, model_dir=model_dir, log_level=log_level
                    )
                )
                key_note = "key LIKENESS_EMBEDDER_API_KEY" if es.api_key is not None else "no key"
                if target is Target.ALL and es.api_key is None and not is_loopback(es.host):
                    # token_urlsafe(32): 43 characters, 256 bits; never printed.
                    es = es.model_copy(update={"api_key": SecretStr(secrets.token_urlsafe(32))})
                    key_note = "key generated for this run"
                embedder_key = es.api_key
                logs.configure(es.log_level)
                embedder = _start("embedder", lambda: create_embedder(es))
                started.append(embedder)
                dial_host = "127.0.0.1" if es.host in _WILDCARDS else es.host
                embedder_dial = f"{dial_host}:{embedder.port}"
                typer.echo(
                    f"embedder  listening on {es.host}:{embedder.port}  "
                    f"model {es.backend} ({es.model_dir or 'shipped'})  {key_note}"
                )
            if target in (Target.REGISTRY, Target.ALL):
                from server.main import create_server as create_registry
                from server.settings import RegistrySettings

                rs = RegistrySettings(
                    **_given(
                        host=host,
                        port=registry_port,
                        metrics_port=metrics_port,
                        embedder_address=embedder_dial or embedder_address,
                        # serve all: the key of its own embedder; serve registry:
                        # LIKENESS_REGISTRY_EMBEDDER_API_KEY.
                        embedder_api_key=embedder_key,
                        store=store.value if store else None,
                        data_dir=data_dir,
                        qdrant_url=qdrant_url,
                        log_level=log_level,
                    )
                )
                logs.configure(rs.log_level)
                registry = _start("registry", lambda: create_registry(rs))
                started.append(registry)
                on_hangup = registry.reopen_audit_log
                where = rs.data_dir.resolve() if rs.store == "edge" else rs.qdrant_url
                typer.echo(
                    f"registry  listening on {rs.host}:{registry.port}  store {rs.store} {where}  "
                    f"embedder {rs.embedder_address}"
                )
                if http_port is not None:
                    started.append(
                        _start_gateway(host, http_port, rs.host, registry.port, rs.embedder_address)
                    )
            _wait_for_signal(signals, on_hangup)
        finally:
            for server in reversed(started):
                # None: each server drains for its own settings' grace_s.
                server.stop(grace_s)


def _start_gateway(
    host: str | None, port: int, registry_host: str, registry_port: int, embedder: str
) -> _Server:
    """Start the HTTP/JSON gateway in front of this process's registry."""
    from gateway.server import HttpGateway
    from gateway.settings import GatewaySettings

    dial = "127.0.0.1" if registry_host in _WILDCARDS else registry_host
    gs = GatewaySettings(
        **_given(
            host=host,
            port=port,
            registry_address=f"{dial}:{registry_port}",
            embedder_address=embedder,
        )
    )
    gateway = _start("HTTP gateway", lambda: HttpGateway(gs))
    typer.echo(
        f"http      listening on {gs.host}:{gateway.port}  registry {gs.registry_address}  "
        f"OpenAPI http://{gs.host}:{gateway.port}/docs"
    )
    return gateway


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command()(serve)
