"""Pytest fixtures of the registry tests; load with
``pytest_plugins = ["registry_fixtures"]`` (helpers: registry_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from registry_helpers import open_memory_store, start_info_embedder

from server.embedder_client import EmbedderClient
from server.service import RegistryService
from server.store.base import FaceStore


@pytest.fixture(scope="session")
def info_embedder() -> Iterator[str]:
    """Address of a session-wide InfoOnlyEmbedder."""
    server, port = start_info_embedder()
    yield f"127.0.0.1:{port}"
    server.stop(0)


@pytest.fixture
def memory_store() -> Iterator[FaceStore]:
    store = open_memory_store()
    yield store
    store.close()


@pytest.fixture
def service(memory_store: FaceStore, info_embedder: str) -> Iterator[RegistryService]:
    """A RegistryService on a fresh in-memory store and the InfoOnlyEmbedder."""
    client = EmbedderClient(info_embedder, timeout_s=5.0, max_message_bytes=8 << 20)
    yield RegistryService(memory_store, client)
    client.close()


@pytest.fixture(scope="session")
def real_embedder() -> Iterator[str]:
    """Address of a session-wide real Embedder (dlib-resnet backend)."""
    from embedder.server import create_server
    from embedder.settings import EmbedderSettings

    server = create_server(EmbedderSettings(host="127.0.0.1", port=0, backend="dlib-resnet"))
    server.start()
    yield f"127.0.0.1:{server.port}"
    server.stop(0)
