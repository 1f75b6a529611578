"""Container health probe: asks a Likeness service's gRPC health endpoint.

Exit status 0 when the service reports SERVING, 1 otherwise (not serving,
unreachable, timed out, unknown health service name): what Docker's
HEALTHCHECK and Compose's ``healthcheck`` expect.

The probe reads the same settings as the service it checks
(``LIKENESS_REGISTRY_*`` or ``LIKENESS_EMBEDDER_*``, from the container's
environment), so a port or TLS override reaches both without being repeated.
A wildcard bind address (0.0.0.0, ::) is probed on loopback. With TLS on
(``tls_cert`` set) the probe trusts ``LIKENESS_HEALTHCHECK_CA_FILE`` or else the
server certificate itself (right for a self-signed one), and checks the name
``LIKENESS_HEALTHCHECK_TLS_NAME`` (default: the name in the certificate must
match the probed address, which it rarely does; set it).

Written in Python on purpose: grpcio and grpcio-health-checking are already
in every image, whereas grpc_health_probe is a separate binary that a build
would have to download and verify.

Usage: ``python healthcheck.py registry|embedder [--service NAME] [--timeout S]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic_settings import BaseSettings, SettingsConfigDict

_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})


class ProbeSettings(BaseSettings):
    """TLS trust for the probe (environment ``LIKENESS_HEALTHCHECK_*``)."""

    model_config = SettingsConfigDict(env_prefix="LIKENESS_HEALTHCHECK_", extra="ignore")

    ca_file: Path | None = None
    tls_name: str | None = None


def _target(host: str, port: int) -> str:
    """host:port to dial; a wildcard bind address becomes loopback."""
    if host in _WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def _service_endpoint(kind: Literal["registry", "embedder"]) -> tuple[str, Path | None]:
    """(target, server certificate or None) of the service, from its settings."""
    if kind == "registry":
        from server.settings import RegistrySettings

        registry = RegistrySettings()  # type: ignore[call-arg]  # env-filled
        return _target(registry.host, registry.port), registry.tls_cert
    from embedder.settings import EmbedderSettings

    embedder = EmbedderSettings()  # type: ignore[call-arg]  # env-filled
    return _target(embedder.host, embedder.port), embedder.tls_cert


def check(
    target: str,
    service: str = "",
    timeout_s: float = 3.0,
    root_certificate: bytes | None = None,
    tls_name: str | None = None,
) -> bool:
    """True when ``target`` (host:port) answers SERVING for ``service`` ("" =
    the whole server) within ``timeout_s`` seconds; TLS when
    ``root_certificate`` (PEM) is given."""
    if root_certificate is None:
        channel = grpc.insecure_channel(target)
    else:
        options = [("grpc.ssl_target_name_override", tls_name)] if tls_name else []
        credentials = grpc.ssl_channel_credentials(root_certificates=root_certificate)
        channel = grpc.secure_channel(target, credentials, options=options)
    try:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
        )
    except grpc.RpcError:
        return False
    finally:
        channel.close()
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def main(argv: list[str] | None = None) -> int:
    """Probe the service named on the command line; returns the exit status."""
    parser = argparse.ArgumentParser(description="gRPC health probe for Likeness services.")
    parser.add_argument("kind", choices=["registry", "embedder"])
    parser.add_argument("--service", default="", help='health service name; "" = whole server')
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds")
    args = parser.parse_args(argv)
    target, server_cert = _service_endpoint(args.kind)
    root: bytes | None = None
    tls_name: str | None = None
    if server_cert is not None:
        probe = ProbeSettings()
        root = (probe.ca_file or server_cert).read_bytes()
        tls_name = probe.tls_name
    return 0 if check(target, args.service, args.timeout, root, tls_name) else 1


if __name__ == "__main__":
    sys.exit(main())
