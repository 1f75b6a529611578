"""Run the gateway (uvicorn) in a thread of the serving process."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from pathlib import Path

import uvicorn

from gateway.app import create_app, openapi_document
from gateway.settings import GatewaySettings

log = logging.getLogger("likeness.gateway")


class HttpGateway:
    """The gateway bound to ``settings.host:settings.port`` (0 picks a free
    port, see ``port`` once started), served by a background thread."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        config = uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="http-gateway", daemon=True)
        self.port = settings.port
        self._failed: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve())
        except BaseException as exc:  # reported by start()
            self._failed = exc

    def start(self, timeout_s: float = 30.0) -> None:
        """Start serving; returns once the port accepts connections.
        RuntimeError when it cannot bind."""
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive() or self._failed is not None:
                raise RuntimeError(f"cannot start the HTTP gateway on {self.settings.port}")
            self._thread.join(0.02)
            timeout_s -= 0.02
            if timeout_s <= 0:
                raise RuntimeError("the HTTP gateway did not start in time")
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = int(sockets[0].getsockname()[1])
        log.info("gateway listening", extra={"address": f"{self.settings.host}:{self.port}"})

    def stop(self, grace_s: float | None = None) -> None:
        """Stop accepting, let requests in flight finish, and join the thread."""
        self._server.should_exit = True
        self._thread.join(grace_s if grace_s is not None else 10.0)


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway.server openapi OUT``: write the OpenAPI document."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "openapi":
        text = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
        Path(args[1]).write_text(text)
        return 0
    sys.stderr.write("usage: python -m gateway.server openapi OUT\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
