"""The Registry gRPC server: construction, health, reflection, shutdown.

``python -m server.main`` serves with :class:`RegistrySettings` read from the
environment (``LIKENESS_REGISTRY_*``) until SIGTERM or SIGINT, then drains
in-flight calls for ``grace_s`` seconds; SIGHUP reopens the audit log (for
logrotate). It exits with status 2 when the settings would expose a keyless
server (see :meth:`RegistrySettings.check_exposure`).
"""

from __future__ import annotations

import logging
import sys
import threading

from likeness import errors, logs, serving
from likeness.interceptor import ErrorInterceptor
from likeness.tracing import TracingInterceptor
from likeness.v1 import registry_pb2, registry_pb2_grpc
from server.audit import AuditLog
from server.auth import KEYS_FILE, Authenticator, KeyStore
from server.embedder_client import EmbedderClient
from server.guard import GuardInterceptor
from server.metrics import Metrics
from server.service import RegistryService
from server.servicer import AdminServicer, RegistryServicer
from server.settings import InsecureBindError, RegistrySettings
from server.store import open_store

log = logging.getLogger("likeness.registry")

REGISTRY_SERVICE = registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name
ADMIN_SERVICE = registry_pb2.DESCRIPTOR.services_by_name["Admin"].full_name
#: Seconds between two health checks of the store and the embedder.
HEALTH_PERIOD_S = 1.0


class RegistryServer:
    """A Registry server built from settings; ``start()`` serves on
    ``settings.host:port`` (``port`` is the bound port: settings.port 0 picks
    a free one). Health (``grpc.health.v1``): "" and "likeness.v1.Registry"
    are SERVING while both the store and the embedder answer, NOT_SERVING
    otherwise (checked every HEALTH_PERIOD_S seconds).

    Refuses (InsecureBindError, before opening anything) a non-loopback host
    without API keys unless ``allow_insecure_no_keys`` is set."""

    def __init__(self, settings: RegistrySettings) -> None:
        # RegistrySettings refuses tls_cert without tls_key and vice versa.
        settings.check_exposure()
        self.settings = settings
        self._store = open_store(settings)
        self._embedder: EmbedderClient | None = None
        self._audit: AuditLog | None = None
        try:
            self._build(settings)
        except BaseException:
            # Release what was opened (the edge store's flock above all), so
            # a corrected retry in the same process can open the same data_dir.
            if self._embedder is not None:
                self._embedder.close()
            if self._audit is not None:
                self._audit.close()
            self._store.close()
            raise

    def _build(self, settings: RegistrySettings) -> None:
        self._embedder = EmbedderClient(
            settings.embedder_address,
            settings.embedder_timeout_s,
            settings.max_message_bytes,
            tls_ca=settings.embedder_tls_ca,
            api_key=settings.embedder_api_key,
        )
        self.service = RegistryService(self._store, self._embedder)
        audit_path = settings.audit_log or settings.data_dir / "audit.jsonl"
        self._audit = AuditLog(audit_path, settings.audit_max_bytes, settings.audit_backups)
        self._keys = KeyStore(settings.data_dir / KEYS_FILE)
        auth = Authenticator(
            self._keys,
            required=settings.api_keys_required,
            bootstrap_admin_key=settings.bootstrap_admin_key,
        )
        self.metrics = Metrics()
        registry = RegistryServicer(self.service)
        admin = AdminServicer(self._keys, self.service)
        self._grpc = serving.GrpcServer(
            serving.Endpoint.of(settings),
            [
                serving.Service(
                    REGISTRY_SERVICE,
                    lambda s: registry_pb2_grpc.add_RegistryServicer_to_server(registry, s),
                ),
                serving.Service(
                    ADMIN_SERVICE, lambda s: registry_pb2_grpc.add_AdminServicer_to_server(admin, s)
                ),
            ],
            # Outermost first: metrics see every call's final status; the
            # error interceptor maps what authentication raises and gives the
            # audit line its request id.
            # Tracing inside the error interceptor: its span carries the
            # request id the call answers with.
            [
                self.metrics.interceptor(),
                ErrorInterceptor(),
                TracingInterceptor(),
                GuardInterceptor(auth, self._audit),
            ],
            thread_name="registry",
        )
        self.port = self._grpc.port
        self.metrics_port: int | None = None
        self.serving = False
        self._stop_checks = threading.Event()
        self._checker = threading.Thread(
            target=self._check_loop, name="registry-health", daemon=True
        )
        self._stopped = threading.Event()

    @property
    def address(self) -> str:
        return self._grpc.address

    def start(self) -> None:
        """Serve (returns at once); health is checked once before returning."""
        self._check_once()
        self._grpc.start()
        self._checker.start()
        if self.settings.metrics_port:
            self.metrics_port = self.metrics.serve(self.settings.host, self.settings.metrics_port)
        log.info(
            "registry serving",
            extra={
                "address": self.address,
                "port": self.port,
                "store": self._store.backend,
                "embedder": self.settings.embedder_address,
                "metrics_port": self.metrics_port,
                "api_keys_required": self.settings.api_keys_required,
            },
        )
        if not self.settings.api_keys_required:
            self._warn_keys_off()

    def _warn_keys_off(self) -> None:
        # Said at every start: a development default that is easy to ship.
        live = sum(1 for key in self._keys.list() if not key.revoked)
        message = "API keys are off (api_keys_required=false): calls without a key are admin"
        if live:
            message += (
                f"; {live} stored API key(s) exist, yet calls without a key still bypass "
                "their scopes: set api_keys_required=true"
            )
        if not serving.is_loopback(self.settings.host):
            message += f"; host {self.settings.host!r} is not loopback (allow_insecure_no_keys)"
        log.warning(
            message,
            extra={
                "api_keys_required": False,
                "stored_keys": live,
                "host": self.settings.host,
            },
        )

    def reopen_audit_log(self) -> None:
        """Reopen the audit log file (after logrotate moved it away)."""
        if self._audit is not None:
            self._audit.reopen()

    def _set_serving(self, up: bool, reason: str = "") -> None:
        self._grpc.set_health(
            serving.SERVING if up else serving.NOT_SERVING, ("", REGISTRY_SERVICE)
        )
        self._grpc.set_health(serving.SERVING, (ADMIN_SERVICE,))
        if up != self.serving:
            log.log(
                logging.INFO if up else logging.WARNING,
                "registry health changed",
                extra={"serving": up, "reason": reason},
            )
        self.serving = up

    def _check_once(self) -> None:
        try:
            self.service.check_store()
            self.service.check_embedder()
        except errors.LikenessError as exc:
            self._set_serving(False, str(exc))
        except Exception as exc:  # a health probe must never kill the checker
            log.exception("health check failed")
            self._set_serving(False, type(exc).__name__)
        else:
            self._set_serving(True)

    def _check_loop(self) -> None:
        while not self._stop_checks.wait(HEALTH_PERIOD_S):
            self._check_once()

    def stop(self, grace_s: float | None = None) -> None:
        """Stop accepting calls, let in-flight calls finish for ``grace_s``
        seconds (default settings.grace_s), then release the store."""
        if self._stopped.is_set():
            return
        grace = self.settings.grace_s if grace_s is None else grace_s
        self._stop_checks.set()
        self._grpc.stop(grace)
        if self._checker.is_alive():
            self._checker.join(timeout=5)
        self.metrics.stop()
        if self._embedder is not None:
            self._embedder.close()
        self._store.close()
        if self._audit is not None:
            self._audit.close()
        self._stopped.set()
        log.info("registry stopped")

    def wait(self) -> None:
        """Block until the server has stopped."""
        self._grpc.wait()


def create_server(settings: RegistrySettings) -> RegistryServer:
    """A Registry server, not yet started (opens the store and the key file)."""
    return RegistryServer(settings)


def serve(settings: RegistrySettings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; SIGHUP
    reopens the audit log (call from the main thread)."""
    logs.configure(settings.log_level)
    server = create_server(settings)
    with serving.StopSignals(hangup=True) as signals:
        try:
            server.start()
            signals.wait(on_hangup=server.reopen_audit_log)
        finally:
            server.stop(settings.grace_s)


def main() -> int:
    """Entry point of ``python -m server.main``: settings from the environment."""
    try:
        serve(serving.settings_from_env(RegistrySettings, "registry"))
    except InsecureBindError as exc:
        log.error("refusing to start: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
