"""Two registries behind one client: the service config's round_robin
spreads calls over both, and the client keeps working when one stops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import server_settings

from likeness.client import LikenessClient, service_config
from server.main import RegistryServer, create_server

pytest_plugins = ["registry_fixtures"]


def calls_answered(server: RegistryServer, method: str) -> float:
    """Calls of ``method`` the registry answered OK (its own metrics)."""
    total = 0.0
    for metric in server.metrics.registry.collect():
        for sample in metric.samples:
            if (
                sample.name == "likeness_registry_requests_total"
                and sample.labels["method"].endswith(method)
                and sample.labels["code"] == "OK"
            ):
                total += sample.value
    return total


@pytest.fixture
def registries(tmp_path: Path, info_embedder: str) -> Iterator[list[RegistryServer]]:
    servers = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        srv = create_server(
            server_settings(tmp_path / name, info_embedder, api_keys_required=False)
        )
        srv.start()
        servers.append(srv)
    yield servers
    for srv in servers:
        srv.stop(0)


def test_round_robin_reaches_both_registries_and_survives_one_stopping(
    registries: list[RegistryServer],
) -> None:
    a, b = registries
    target = f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}"
    config = service_config(load_balancing="round_robin")
    with LikenessClient(target, service_config=config, timeout_s=10.0) as client:
        for _ in range(20):
            assert client.list_galleries() == []
        on_a, on_b = calls_answered(a, "ListGalleries"), calls_answered(b, "ListGalleries")
        assert on_a + on_b == 20
        assert on_a > 0 and on_b > 0

        a.stop(0)
        for _ in range(10):
            assert client.list_galleries() == []
        assert calls_answered(b, "ListGalleries") == on_b + 10


def test_pick_first_by_default_sends_every_call_to_one_registry(
    registries: list[RegistryServer],
) -> None:
    a, b = registries
    target = f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}"
    with LikenessClient(target) as client:
        for _ in range(6):
            client.list_galleries()
    assert sorted([calls_answered(a, "ListGalleries"), calls_answered(b, "ListGalleries")]) == [
        0,
        6,
    ]
