"""Identify with FACE_SELECTION_ALL: a row per face of a group photo, through
the typed client and the CLI, against a real Embedder and Registry on loopback.

tests/data/group/three_people.jpg is composed from committed LFW photos
(tests/data/make_group_photo.py): Emma Watson, a stranger (Calista
Flockhart), Kamal Kharrazi, left to right, largest first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import running_embedder, running_registry
from typer.testing import CliRunner

from likeness.client import FaceSelection, LikenessClient
from likeness_cli import app

DATA = Path(__file__).resolve().parent / "data"
GROUP = DATA / "group" / "three_people.jpg"
GALLERY = "group"
#: A group photo's escalations take seconds on a loaded CI machine.
SLOW_EMBEDDER = {"embedder_timeout_s": 10.0, "workers": 2}


def lfw(name: str) -> bytes:
    return (DATA / "lfw" / f"{name}.jpg").read_bytes()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with (
        running_embedder(workers=2) as embedder,
        running_registry(tmp_path_factory.mktemp("group"), embedder, **SLOW_EMBEDDER) as server,
    ):
        address = f"127.0.0.1:{server.port}"
        _enrol(address)
        yield address


def _enrol(address: str) -> None:
    with LikenessClient(address, timeout_s=60) as client:
        client.create_gallery(GALLERY)
        client.enroll(
            "Emma_Watson", [lfw("Emma_Watson_0001"), lfw("Emma_Watson_0002")], gallery=GALLERY
        )
        client.enroll(
            "Kamal_Kharrazi",
            [lfw("Kamal_Kharrazi_0001"), lfw("Kamal_Kharrazi_0003")],
            gallery=GALLERY,
        )


def test_every_face_gets_its_own_answer_largest_first(registry: str) -> None:
    with LikenessClient(registry, timeout_s=60) as client:
        result = client.identify(GROUP.read_bytes(), gallery=GALLERY, selection=FaceSelection.ALL)
    assert len(result.faces) == 3
    widths = [f.box.right - f.box.left for f in result.faces]
    assert widths == sorted(widths, reverse=True)
    # Left to right in the photo: Emma Watson, the stranger, Kamal Kharrazi.
    by_x = sorted(result.faces, key=lambda f: f.box.left)
    answers = [None if f.unknown else f.candidates[0].subject_id for f in by_x]
    assert answers == ["Emma_Watson", None, "Kamal_Kharrazi"]
    assert all(f.quality is not None and f.quality.face_size_px > 10 for f in result.faces)
    # The top-level fields answer for the largest face, as without ALL.
    assert result.candidates == result.faces[0].candidates
    assert result.unknown == result.faces[0].unknown


def test_without_all_only_the_largest_face_is_answered(registry: str) -> None:
    with LikenessClient(registry, timeout_s=60) as client:
        result = client.identify(GROUP.read_bytes(), gallery=GALLERY)
    assert result.faces == ()
    assert not result.unknown and result.candidates[0].subject_id == "Emma_Watson"
    with LikenessClient(registry, timeout_s=60) as client:
        single = client.identify(
            lfw("Emma_Watson_0001"), gallery=GALLERY, selection=FaceSelection.REQUIRE_SINGLE
        )
    assert single.faces == ()
    assert single.candidates[0].subject_id == "Emma_Watson"


def test_the_cli_prints_a_row_per_face(registry: str) -> None:
    runner = CliRunner()
    args = ["identify", str(GROUP), "--all", "-g", GALLERY, "--registry", registry]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [
        line for line in result.stdout.splitlines() if line.startswith("│ ") and "│ " in line[1:]
    ]
    assert len(rows) == 3  # a row per face
    assert sum("unknown" in row for row in rows) == 1
    assert any("Emma_Watson" in row for row in rows)
    assert any("Kamal_Kharrazi" in row for row in rows)
    as_json = runner.invoke(app, [*args, "--json"])
    faces = json.loads(as_json.stdout)["faces"]
    assert [f["unknown"] for f in sorted(faces, key=lambda f: f["box"]["left"])] == [
        False,
        True,
        False,
    ]
