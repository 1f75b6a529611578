"""The committed stubs in likeness/v1 are what `make proto` generates now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    # protoc runs in its own process: loaded in-process after TensorFlow it
    # can crash the test run.
    subprocess.run(
        [sys.executable, "-m", "likeness.protogen", str(tmp_path)],
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    fresh = sorted((tmp_path / "likeness" / "v1").iterdir())
    committed_dir = ROOT / "likeness" / "v1"
    assert [p.name for p in fresh] == sorted(
        p.name for p in committed_dir.iterdir() if p.name != "__pycache__"
    )
    for generated in fresh:
        committed = committed_dir / generated.name
        assert committed.read_text() == generated.read_text(), (
            f"{committed} is stale: run `make proto`"
        )


def test_every_rpc_of_the_contract_is_in_the_stubs() -> None:
    from likeness.v1 import embedder_pb2, registry_pb2

    embedder = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"]
    registry = registry_pb2.DESCRIPTOR.services_by_name["Registry"]
    assert {m.name for m in embedder.methods} == {"Embed", "EmbedBatch", "Info"}
    assert {
        "Enroll",
        "Verify",
        "Identify",
        "Compare",
        "GetSubject",
        "ListSubjects",
        "DeleteSubject",
        "DeleteFace",
        "Stats",
    } <= {m.name for m in registry.methods}
