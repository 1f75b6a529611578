"""The README's enroll/verify/identify flow from Python (sync and async) and
with curl over the HTTP gateway, run as written against a real registry,
embedder and gateway (the CLI way is the tour, run by test_cli.py)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import server_settings

from gateway.server import HttpGateway
from gateway.settings import GatewaySettings
from server.main import RegistryServer, create_server

pytest_plugins = ["registry_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## The same flow from Python and over HTTP"


def blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    section = text[start : text.index("\n## ", start + len(SECTION))]
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


@pytest.fixture
def registry(tmp_path: Path, real_embedder: str) -> Iterator[RegistryServer]:
    srv = create_server(server_settings(tmp_path, real_embedder, api_keys_required=False))
    srv.start()
    yield srv
    srv.stop(0)


@pytest.mark.parametrize("which", ["sync", "async"])
def test_the_python_blocks_enroll_verify_and_identify(
    which: str, registry: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync, asynchronous = blocks("python")
    code = (sync if which == "sync" else asynchronous).replace(
        "127.0.0.1:50052", f"127.0.0.1:{registry.port}"
    )
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"README.md ({which})", "exec"), {"__name__": "readme"})
    assert out.getvalue() == "verify: True identify: ['Emma_Watson']\n"


def test_the_curl_block_against_the_gateway(registry: RegistryServer, real_embedder: str) -> None:
    (block,) = blocks("bash")
    gateway = HttpGateway(
        GatewaySettings(
            port=0, registry_address=f"127.0.0.1:{registry.port}", embedder_address=real_embedder
        )
    )
    gateway.start()
    try:
        replies = []
        for line in block.splitlines():
            command = line.split("  #")[0].replace("localhost:8080", f"127.0.0.1:{gateway.port}")
            run = subprocess.run(
                shlex.split(command), cwd=ROOT, capture_output=True, text=True, timeout=120
            )
            assert run.returncode == 0, run.stderr
            replies.append(json.loads(run.stdout))
    finally:
        gateway.stop()
    enrolled, verified, identified = replies
    assert enrolled["subject_id"] == "Emma_Watson" and len(enrolled["faces"]) == 1
    assert verified["match"] is True
    assert identified["candidates"][0]["subject_id"] == "Emma_Watson"
