"""The API stays wire-compatible with the last release: the current .proto
files against the committed FileDescriptorSet of likeness 0.1.0
(proto/releases/). Additions pass; a changed field number, a removed
field, a changed type or RPC fails, naming the change."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"


def check(proto_root: Path = PROTO) -> subprocess.CompletedProcess[str]:
    # protoc runs in its own process (see test_proto_stubs.py).
    return subprocess.run(
        [sys.executable, "-m", "likeness.protocompat", "check", "--proto-root", str(proto_root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def edited(tmp_path: Path, file: str, old: str, new: str) -> Path:
    """A copy of proto/likeness/v1 with one edit in ``file``."""
    shutil.copytree(PROTO / "likeness", tmp_path / "likeness")
    path = tmp_path / "likeness" / "v1" / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return tmp_path


def test_the_current_protos_break_nothing_of_the_last_release() -> None:
    result = check()
    assert result.returncode == 0, result.stderr


def test_a_changed_field_number_fails_naming_the_field(tmp_path: Path) -> None:
    root = edited(
        tmp_path,
        "registry.proto",
        "string subject_id = 2;\n  Probe probe = 3;",
        "string subject_id = 9;\n  Probe probe = 3;",
    )
    result = check(root)
    assert result.returncode == 1
    assert (
        "breaking change: likeness.v1.VerifyRequest.subject_id: field number changed "
        "from 2 to 9" in result.stderr
    )


@pytest.mark.parametrize(
    ("file", "old", "new", "named"),
    [
        (
            "common.proto",
            "float sharpness = 2;",
            "double sharpness = 2;",
            "Quality.sharpness: type",
        ),
        (
            "common.proto",
            "FACE_SELECTION_ALL = 2;",
            "FACE_SELECTION_ALL = 5;",
            "FaceSelection.FACE_SELECTION_ALL: number changed from 2 to 5",
        ),
        (
            "embedder.proto",
            "rpc Info(InfoRequest) returns (InfoResponse);",
            "",
            "rpc likeness.v1.Embedder.Info removed",
        ),
    ],
)
def test_other_breaking_changes_fail(
    tmp_path: Path, file: str, old: str, new: str, named: str
) -> None:
    result = check(edited(tmp_path, file, old, new))
    assert result.returncode == 1
    assert named in result.stderr


def test_additions_pass(tmp_path: Path) -> None:
    root = edited(
        tmp_path,
        "embedder.proto",
        "message InfoRequest {}",
        "message InfoRequest {}\n\nmessage PingRequest {\n  string note = 1;\n}",
    )
    edited_file = root / "likeness/v1/embedder.proto"
    text = edited_file.read_text().replace(
        "rpc Info(InfoRequest) returns (InfoResponse);",
        "rpc Info(InfoRequest) returns (InfoResponse);\n"
        "  rpc Ping(PingRequest) returns (InfoResponse);",
    )
    text = text.replace("int32 input_size = 6;", "int32 input_size = 6;\n  string note = 99;")
    edited_file.write_text(text)
    result = check(root)
    assert result.returncode == 0, result.stderr
