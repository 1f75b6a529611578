"""AsyncLikenessClient against a real registry and a real embedder on
loopback: the same results and typed errors as the sync client."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import server_settings

from likeness.aio import AsyncLikenessClient
from likeness.client import (
    AlreadyExistsError,
    EnrollResult,
    LikenessClient,
    NotFoundError,
    UnavailableError,
    VerifyResult,
)
from server.main import RegistryServer, create_server

pytest_plugins = ["registry_fixtures"]

LFW = Path(__file__).parent / "data" / "lfw"


def image(name: str) -> bytes:
    return (LFW / name).read_bytes()


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, real_embedder: str
) -> Iterator[RegistryServer]:
    settings = server_settings(
        tmp_path_factory.mktemp("aio"), real_embedder, api_keys_required=False
    )
    srv = create_server(settings)
    srv.start()
    yield srv
    srv.stop(0)


def test_enroll_verify_identify_on_asyncio_match_the_sync_client(
    registry: RegistryServer, real_embedder: str
) -> None:
    address = f"127.0.0.1:{registry.port}"

    async def flow() -> tuple[EnrollResult, VerifyResult, VerifyResult, list[str], int]:
        async with AsyncLikenessClient(address, real_embedder) as client:
            await client.create_gallery("aio")
            enrolled = await client.enroll(
                "emma", images=[image("Emma_Watson_0001.jpg")], gallery="aio"
            )
            same = await client.verify("emma", image("Emma_Watson_0002.jpg"), gallery="aio")
            other = await client.verify("emma", image("Albert_Costa_0001.jpg"), gallery="aio")
            found = await client.identify(image("Emma_Watson_0003.jpg"), gallery="aio")
            faces = await client.embed(image("Emma_Watson_0001.jpg"))
            return enrolled, same, other, [c.subject_id for c in found.candidates], len(faces.faces)

    enrolled, same, other, top, faces = asyncio.run(flow())
    assert enrolled.subject_id == "emma" and len(enrolled.faces) == 1
    assert same.match and not other.match
    assert top[:1] == ["emma"]
    assert faces == 1
    with LikenessClient(address, real_embedder) as sync:
        assert sync.verify("emma", image("Emma_Watson_0002.jpg"), gallery="aio") == same
        assert sync.get_subject("emma", gallery="aio").faces[0].face_id == (
            enrolled.faces[0].face_id
        )


def test_async_errors_are_the_sync_clients_typed_errors(registry: RegistryServer) -> None:
    address = f"127.0.0.1:{registry.port}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"

    async def failures() -> list[BaseException]:
        out: list[BaseException] = []
        async with AsyncLikenessClient(address) as client:
            await client.create_gallery("dupe")
            for call in (
                client.create_gallery("dupe"),
                client.get_subject("nobody", gallery="dupe"),
            ):
                try:
                    await call
                except Exception as exc:
                    out.append(exc)
        async with AsyncLikenessClient(closed, timeout_s=3.0) as client:
            try:
                await client.stats()
            except Exception as exc:
                out.append(exc)
        return out

    exists, missing, down = asyncio.run(failures())
    assert isinstance(exists, AlreadyExistsError)
    assert isinstance(missing, NotFoundError)
    assert missing.method == "/likeness.v1.Registry/GetSubject"
    assert isinstance(down, UnavailableError) and down.target == closed


def test_the_async_client_needs_an_embedder_address_for_embedder_calls(
    registry: RegistryServer,
) -> None:
    async def call() -> None:
        async with AsyncLikenessClient(f"127.0.0.1:{registry.port}") as client:
            await client.info()

    with pytest.raises(ValueError, match="embedder_address"):
        asyncio.run(call())
