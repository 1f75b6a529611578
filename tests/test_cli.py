"""The ``likeness`` CLI end to end: typer's CliRunner against an in-process
Embedder (the shipped model) and Registry (embedded edge store in a temporary
folder), both on port 0.

The README tour (the "A 5-minute tour" section of README.md) is run command by command, as written.
"""

from __future__ import annotations

import json
import re
import select
import shlex
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import typer
from registry_helpers import keyed_registry, running_embedder, running_registry
from typer.testing import CliRunner, Result

from likeness.client import LikenessClient
from likeness_cli import app

REPO = Path(__file__).resolve().parent.parent
LFW = REPO / "tests" / "data" / "lfw"
TOUR = REPO / "README.md"
ADMIN_KEY = "test-admin-key-0123456789"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Services:
    embedder: str
    registry: str
    keyed_registry: str  # API keys required; ADMIN_KEY is its bootstrap admin key


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    settings = {"embedder_timeout_s": 10.0, "workers": 4}
    with (
        running_embedder(workers=2) as embedder,
        running_registry(tmp_path_factory.mktemp("registry"), embedder, **settings) as open_,
        keyed_registry(tmp_path_factory.mktemp("keyed"), embedder, ADMIN_KEY, **settings) as keyed,
    ):
        yield Services(
            embedder=embedder,
            registry=f"127.0.0.1:{open_.port}",
            keyed_registry=f"127.0.0.1:{keyed.port}",
        )


def run(services: Services, *args: str, registry: str | None = None, **env: str) -> Result:
    """``likeness ARGS`` with the test services in the environment."""
    environment: dict[str, str | None] = {
        "LIKENESS_REGISTRY_ADDRESS": registry or services.registry,
        "LIKENESS_EMBEDDER_ADDRESS": services.embedder,
        "LIKENESS_API_KEY": None,
        "LIKENESS_GALLERY": None,
        "COLUMNS": "200",
        **env,
    }
    result = CliRunner().invoke(app, list(args), env=environment)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def run_json(services: Services, *args: str, **kwargs: Any) -> tuple[int, Any]:
    result = run(services, *args, "--json", **kwargs)
    assert result.stdout.strip(), result.output
    return result.exit_code, json.loads(result.stdout)


def error_line(result: Result) -> str:
    """The one line a failed command printed on stderr."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def lfw(name: str) -> str:
    return str(LFW / f"{name}.jpg")


def create_gallery(services: Services, name: str) -> None:
    result = run(services, "galleries", "create", name)
    assert result.exit_code == 0, result.output


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def grey_bmp(width: int, height: int) -> bytes:
    """An uncompressed 24-bit BMP of one grey: an image without a face."""
    row = bytes([128] * 3 * width) + b"\0" * ((4 - 3 * width % 4) % 4)
    pixels = row * height
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def two_faces_png() -> bytes:
    """Two LFW photos side by side: an image with several faces."""
    left = cv2.imread(lfw("Emma_Watson_0001"))
    right = cv2.imread(lfw("Kamal_Kharrazi_0001"))
    assert left is not None and right is not None
    ok, encoded = cv2.imencode(".png", np.hstack([left, right]))
    assert ok
    return bytes(encoded.tobytes())


# -- the README tour --------------------------------------------------------

_TOUR_LINE = re.compile(
    r"^\.venv/bin/likeness (?P<args>.+?)\s+# exit (?P<code>\d)\b(?::\s*(?P<promise>.*))?$"
)
# What a tour comment promises the command prints: decisions, "unknown",
# subject ids and counts. "NO MATCH" is one word, so a promised MATCH is not
# met by a printed NO MATCH.
_PRINTED_WORD = re.compile(r"NO MATCH|MATCH|unknown|\b[A-Z][a-z]+_[A-Za-z_]+\b|\b\d+\b")


@dataclass(frozen=True)
class TourStep:
    args: list[str]
    exit_code: int
    promised: list[str]  # words the output shows, in this order


def tour_steps() -> list[TourStep]:
    """Every command in the tour's code blocks, with the exit code and the
    words its ``# exit N: ...`` comment promises."""
    steps = []
    in_code = False
    readme = TOUR.read_text(encoding="utf-8")
    section = readme.split("## A 5-minute tour", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif in_code and line.startswith(".venv/bin/likeness "):
            match = _TOUR_LINE.match(line)
            assert match, f"tour line without '# exit N': {line}"
            promised = _PRINTED_WORD.findall(match["promise"] or "")
            assert promised or not match["promise"], f"a promise the test cannot check: {line}"
            steps.append(TourStep(shlex.split(match["args"]), int(match["code"]), promised))
    return steps


def shows_in_order(words: list[str], output: str) -> bool:
    """Whether ``words`` are among the printed words of ``output``, in order."""
    printed = iter(_PRINTED_WORD.findall(output))
    return all(word in printed for word in words)


def test_the_tour_checker_holds_commands_to_their_words() -> None:
    assert shows_in_order(["MATCH"], "decision │ MATCH │ score 0.749")
    assert not shows_in_order(["MATCH"], "decision │ NO MATCH │ score -0.143")
    assert not shows_in_order(["Emma_Watson", "unknown"], "1 unknown\n2 Emma_Watson")
    assert not shows_in_order(["Kamal_Kharrazi"], "verify Kamal_Kharrazi_0002.jpg")
    steps = tour_steps()
    assert sum(bool(step.promised) for step in steps) >= 8


def test_the_readme_tour_works_as_written(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = tour_steps()
    assert len(steps) >= 10
    monkeypatch.chdir(REPO)
    for step in steps:
        result = run(services, *step.args)
        command = f"likeness {shlex.join(step.args)}\n{result.output}"
        assert result.exit_code == step.exit_code, command
        assert shows_in_order(step.promised, result.output), f"promised {step.promised}: {command}"


# -- decisions, with --json --------------------------------------------------


def test_decisions_as_json(services: Services) -> None:
    gallery = "decisions"
    create_gallery(services, gallery)
    # Kamal_Kharrazi_0002 shows a second face at its edge: a probe, not an enrolment.
    for person, enrolled in (
        ("Emma_Watson", ("0001", "0002")),
        ("Kamal_Kharrazi", ("0001", "0003")),
    ):
        code, summary = run_json(
            services, "enroll", person, *(lfw(f"{person}_{n}") for n in enrolled), "-g", gallery
        )
        assert code == 0
        assert len(summary["enrolled"]) == 2 and summary["failed"] == []

    code, same = run_json(services, "verify", "Emma_Watson", lfw("Emma_Watson_0003"), "-g", gallery)
    assert code == 0 and same["match"] is True and same["score"] >= same["threshold"]
    code, other = run_json(
        services, "verify", "Kamal_Kharrazi", lfw("Emma_Watson_0003"), "-g", gallery
    )
    assert code == 1 and other["match"] is False and other["score"] < other["threshold"]

    code, found = run_json(services, "identify", lfw("Kamal_Kharrazi_0002"), "-g", gallery)
    assert code == 0 and found["unknown"] is False
    assert found["candidates"][0]["subject_id"] == "Kamal_Kharrazi"

    code, compared = run_json(
        services, "compare", lfw("Emma_Watson_0002"), lfw("Emma_Watson_0003"), "-g", gallery
    )
    assert code == 0 and compared["match"] is True

    code, listed = run_json(services, "subjects", "list", "-g", gallery)
    assert code == 0
    assert listed == [
        {"subject_id": "Emma_Watson", "face_count": 2},
        {"subject_id": "Kamal_Kharrazi", "face_count": 2},
    ]

    code, deleted = run_json(services, "subjects", "delete", "Kamal_Kharrazi", "-g", gallery)
    assert code == 0 and deleted["faces_deleted"] == 2
    code, after = run_json(services, "identify", lfw("Kamal_Kharrazi_0002"), "-g", gallery)
    assert code == 1 and after["unknown"] is True
    assert "Kamal_Kharrazi" not in {c["subject_id"] for c in after["candidates"]}


# -- enroll --from-dir ---------------------------------------------------------


def test_enroll_from_dir_reports_failures_and_resumes(services: Services, tmp_path: Path) -> None:
    gallery = "folder"
    create_gallery(services, gallery)
    tree = tmp_path / "people"
    (tree / "Emma_Watson").mkdir(parents=True)
    (tree / "Kamal_Kharrazi").mkdir()
    for name in ("Emma_Watson_0001", "Emma_Watson_0002"):
        (tree / "Emma_Watson" / f"{name}.jpg").write_bytes(Path(lfw(name)).read_bytes())
    kamal = tree / "Kamal_Kharrazi"
    (kamal / "Kamal_Kharrazi_0001.jpg").write_bytes(Path(lfw("Kamal_Kharrazi_0001")).read_bytes())
    (kamal / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (kamal / "blank.bmp").write_bytes(grey_bmp(200, 200))
    (kamal / "pair.png").write_bytes(two_faces_png())
    (kamal / "notes.txt").write_text("not an image, not enrolled")

    code, first = run_json(services, "enroll", "--from-dir", str(tree), "-g", gallery)
    assert code == 1
    assert sorted(Path(e["file"]).name for e in first["enrolled"]) == [
        "Emma_Watson_0001.jpg",
        "Emma_Watson_0002.jpg",
        "Kamal_Kharrazi_0001.jpg",
    ]
    reasons = {Path(f["file"]).name: f["reason"] for f in first["failed"]}
    assert reasons == {
        "broken.jpg": "bad image",
        "blank.bmp": "no face",
        "pair.png": "several faces",
    }
    assert all(f["detail"] for f in first["failed"])

    code, again = run_json(services, "enroll", "--from-dir", str(tree), "-g", gallery)
    assert code == 1
    assert again["enrolled"] == []
    assert len(again["already_enrolled"]) == 3
    code, listed = run_json(services, "subjects", "list", "-g", gallery)
    assert listed == [
        {"subject_id": "Emma_Watson", "face_count": 2},
        {"subject_id": "Kamal_Kharrazi", "face_count": 1},
    ]


def test_enroll_prints_a_summary_table(services: Services) -> None:
    gallery = "table"
    create_gallery(services, gallery)
    result = run(services, "enroll", "Emma_Watson", lfw("Emma_Watson_0001"), "-g", gallery)
    assert result.exit_code == 0, result.output
    assert re.search(r"images enrolled\s*│\s*1", result.stdout)
    assert re.search(r"failed\s*│\s*0", result.stdout)


def test_enroll_into_an_unknown_gallery_stops_at_once(services: Services) -> None:
    result = run(services, "enroll", "Emma_Watson", lfw("Emma_Watson_0001"), "-g", "no-such")
    assert result.exit_code == 3
    assert "NOT_FOUND" in error_line(result)


def test_enroll_without_images_is_a_usage_error(services: Services) -> None:
    result = run(services, "enroll", "Emma_Watson")
    assert result.exit_code == 2
    assert "IMAGE" in error_line(result)


# -- galleries, export and import ------------------------------------------------


def test_export_then_import_moves_a_gallery(services: Services, tmp_path: Path) -> None:
    create_gallery(services, "source")
    create_gallery(services, "target")
    code, _ = run_json(
        services,
        "enroll",
        "Emma_Watson",
        lfw("Emma_Watson_0001"),
        lfw("Emma_Watson_0002"),
        "-g",
        "source",
        "-m",
        "team=red",
    )
    assert code == 0
    dump = tmp_path / "source.jsonl"
    result = run(services, "galleries", "export", "source", str(dump))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in dump.read_text().splitlines()]
    assert len(records) == 2
    assert {r["subject_id"] for r in records} == {"Emma_Watson"}
    assert all(r["metadata"] == {"team": "red"} and len(r["embedding"]) > 0 for r in records)

    code, imported = run_json(services, "galleries", "import", "target", str(dump))
    assert code == 0 and imported["imported"] == 2 and imported["skipped"] == 0
    code, again = run_json(services, "galleries", "import", "target", str(dump))
    assert code == 0 and again["imported"] == 0 and again["skipped"] == 2
    code, stats = run_json(services, "galleries", "stats", "target")
    assert code == 0 and stats["faces"] == 2 and stats["subjects"] == 1

    code, verdict = run_json(
        services, "verify", "Emma_Watson", lfw("Emma_Watson_0001"), "-g", "target"
    )
    assert code == 0 and verdict["match"] is True


def test_import_of_a_malformed_file_sends_nothing(services: Services, tmp_path: Path) -> None:
    create_gallery(services, "untouched")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"subject_id": "x"}\n')
    result = run(services, "galleries", "import", "untouched", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:1" in error_line(result)
    _, stats = run_json(services, "galleries", "stats", "untouched")
    assert stats["faces"] == 0


def test_galleries_list_and_delete(services: Services) -> None:
    create_gallery(services, "doomed")
    code, listed = run_json(services, "galleries", "list")
    assert code == 0 and "doomed" in {g["name"] for g in listed}
    result = run(services, "galleries", "delete", "doomed", "--yes")
    assert result.exit_code == 0, result.output
    code, listed = run_json(services, "galleries", "list")
    assert "doomed" not in {g["name"] for g in listed}


# -- API keys -----------------------------------------------------------------------


def test_keys_create_list_revoke(services: Services) -> None:
    keyed = services.keyed_registry
    code, created = run_json(
        services,
        "keys",
        "create",
        "reader",
        "--scope",
        "*=read",
        registry=keyed,
        LIKENESS_API_KEY=ADMIN_KEY,
    )
    assert code == 0
    secret, key_id = created["secret"], created["key"]["key_id"]
    assert secret and created["key"]["scopes"] == {"*": "read"}

    code, keys = run_json(services, "keys", "list", registry=keyed, LIKENESS_API_KEY=ADMIN_KEY)
    assert code == 0
    assert any(k["key_id"] == key_id and not k["revoked"] for k in keys)
    assert secret not in json.dumps(keys)

    result = run(services, "galleries", "list", registry=keyed, LIKENESS_API_KEY=secret)
    assert result.exit_code == 0, result.output

    result = run(services, "keys", "revoke", key_id, registry=keyed, LIKENESS_API_KEY=ADMIN_KEY)
    assert result.exit_code == 0, result.output
    result = run(services, "galleries", "list", registry=keyed, LIKENESS_API_KEY=secret)
    assert result.exit_code == 3
    assert "API key rejected" in error_line(result)


# -- errors: one line on stderr, the documented exit code ---------------------------


def test_a_bad_api_key_is_one_line_and_exit_3(services: Services) -> None:
    result = run(
        services, "galleries", "list", registry=services.keyed_registry, LIKENESS_API_KEY="wrong"
    )
    assert result.exit_code == 3
    line = error_line(result)
    assert "API key rejected" in line and "UNAUTHENTICATED" not in result.stdout


def test_an_unreachable_server_is_one_line_and_exit_3(services: Services) -> None:
    address = f"127.0.0.1:{closed_port()}"
    result = run(services, "verify", "Emma_Watson", lfw("Emma_Watson_0001"), registry=address)
    assert result.exit_code == 3
    assert f"service at {address} unavailable" in error_line(result)
    assert result.stdout == ""


def test_enroll_against_an_unreachable_server_is_one_line(services: Services) -> None:
    address = f"127.0.0.1:{closed_port()}"
    result = run(services, "enroll", "Emma_Watson", lfw("Emma_Watson_0001"), registry=address)
    assert result.exit_code == 3
    assert "unavailable" in error_line(result)


def test_a_missing_file_is_one_line_and_exit_2(services: Services, tmp_path: Path) -> None:
    missing = tmp_path / "missing.jpg"
    for args in (
        ("verify", "Emma_Watson", str(missing)),
        ("identify", str(missing)),
        ("compare", lfw("Emma_Watson_0001"), str(missing)),
        ("enroll", "Emma_Watson", str(missing)),
    ):
        result = run(services, *args)
        assert result.exit_code == 2, args
        assert str(missing) in error_line(result)


def test_an_unreadable_image_names_the_problem(services: Services, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is text, not a picture")
    result = run(services, "identify", str(garbage))
    assert result.exit_code == 3
    assert "INVALID_ARGUMENT" in error_line(result)

    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    result = run(services, "verify", "Emma_Watson", str(folder))
    assert result.exit_code == 2
    assert str(folder) in error_line(result)


def test_an_image_without_a_face_is_a_service_error(services: Services, tmp_path: Path) -> None:
    blank = tmp_path / "blank.bmp"
    blank.write_bytes(grey_bmp(120, 120))
    result = run(services, "compare", str(blank), lfw("Emma_Watson_0001"))
    assert result.exit_code == 3
    assert "NOT_FOUND" in error_line(result)


def test_help_documents_the_exit_codes(services: Services) -> None:
    root = run(services, "--help")
    assert root.exit_code == 0 and "Exit codes" in root.stdout
    for command in ("verify", "identify", "compare", "enroll"):
        result = run(services, command, "--help")
        assert result.exit_code == 0
        assert "Exit codes" in result.stdout and "1 =" in result.stdout, command


def test_info_shows_the_shipped_model(services: Services) -> None:
    code, model = run_json(services, "info")
    assert code == 0
    assert model["backend"] == "likeness-mobilenet" and model["dim"] > 0
    with LikenessClient(services.registry, services.embedder) as client:
        assert client.info().model_fingerprint == model["model_fingerprint"]


# -- serve -----------------------------------------------------------------------------


def test_serve_registry_prints_its_address_and_stops_on_sigterm(tmp_path: Path) -> None:
    stderr = (tmp_path / "stderr.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "likeness_cli",
            "serve",
            "registry",
            "--registry-port",
            "0",
            "--metrics-port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
            "--embedder-address",
            f"127.0.0.1:{closed_port()}",
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "serve printed nothing within 60 s"
        line = proc.stdout.readline()
        match = re.match(r"registry\s+listening on 127\.0\.0\.1:(\d+)\s+store edge (\S+)", line)
        assert match, line
        assert Path(match[2]) == (tmp_path / "data").resolve()
        with LikenessClient(f"127.0.0.1:{match[1]}", timeout_s=10) as client:
            assert client.list_galleries() == []
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - start < 30
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()


@pytest.mark.parametrize(
    ("option", "env", "drained_s"),
    [
        ((), {}, 10.0),
        ((), {"LIKENESS_REGISTRY_GRACE_S": "3.5"}, 3.5),
        (("--grace-s", "0.5"), {"LIKENESS_REGISTRY_GRACE_S": "3.5"}, 0.5),
    ],
    ids=["default", "environment", "option"],
)
def test_serve_drains_for_the_settings_grace_unless_told(
    option: tuple[str, ...],
    env: dict[str, str],
    drained_s: float,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import server.main

    real_create = server.main.create_server
    graces: list[float] = []

    def create(settings: Any) -> Any:
        registry = real_create(settings)
        real_stop = registry._grpc._server.stop

        def spy(grace: float) -> Any:
            graces.append(grace)
            return real_stop(grace)

        monkeypatch.setattr(registry._grpc._server, "stop", spy)
        return registry

    monkeypatch.setattr(server.main, "create_server", create)
    monkeypatch.setattr("likeness_cli.serve._wait_for_signal", lambda *_: None)
    monkeypatch.setattr("likeness.logs.configure", lambda *args, **kwargs: None)
    args = ["serve", "registry", "--registry-port", "0", "--metrics-port", "0"]
    args += ["--data-dir", str(tmp_path), "--embedder-address", f"127.0.0.1:{closed_port()}"]
    result = CliRunner().invoke(
        app, [*args, *option], env={"LIKENESS_REGISTRY_GRACE_S": None, **env}
    )
    assert result.exit_code == 0, result.output
    assert "registry  listening on 127.0.0.1:" in result.stdout
    assert graces == [drained_s]


def test_serve_registry_with_http_port_starts_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    answers: list[tuple[int, Any]] = []

    def call_the_gateway(*_: Any) -> None:
        port = int(re.findall(r"http\s+listening on 127\.0\.0\.1:(\d+)", output.getvalue())[0])
        reply = httpx.get(f"http://127.0.0.1:{port}/v1/galleries", timeout=30.0)
        answers.append((reply.status_code, reply.json()))

    import io

    output = io.StringIO()
    real_echo = typer.echo

    def echo(message: Any = "", *args: Any, **kwargs: Any) -> None:
        output.write(f"{message}\n")
        real_echo(message, *args, **kwargs)

    monkeypatch.setattr("likeness_cli.serve.typer.echo", echo)
    monkeypatch.setattr("likeness_cli.serve._wait_for_signal", call_the_gateway)
    monkeypatch.setattr("likeness.logs.configure", lambda *args, **kwargs: None)
    args = ["serve", "registry", "--registry-port", "0", "--metrics-port", "0", "--http-port", "0"]
    args += ["--data-dir", str(tmp_path), "--embedder-address", f"127.0.0.1:{closed_port()}"]
    result = CliRunner().invoke(app, args, env={"LIKENESS_REGISTRY_API_KEYS_REQUIRED": "false"})
    assert result.exit_code == 0, result.output
    assert answers == [(200, [])]


def test_serve_embedder_refuses_an_http_port() -> None:
    result = CliRunner().invoke(app, ["serve", "embedder", "--http-port", "8080"])
    assert result.exit_code == 2
    assert "--http-port needs the registry" in result.output


def test_rerunning_enroll_subject_images_is_a_no_op(services: Services) -> None:
    create_gallery(services, "rerun")
    images = (lfw("Kamal_Kharrazi_0001"), lfw("Kamal_Kharrazi_0003"))
    code, first = run_json(services, "enroll", "Kamal_Kharrazi", *images, "-g", "rerun")
    assert code == 0 and len(first["enrolled"]) == 2
    code, again = run_json(services, "enroll", "Kamal_Kharrazi", *images, "-g", "rerun")
    assert code == 0
    assert again["enrolled"] == [] and len(again["already_enrolled"]) == 2
    code, stats = run_json(services, "galleries", "stats", "rerun")
    assert (stats["subjects"], stats["faces"]) == (1, 2)


def test_a_failed_export_leaves_the_previous_file_and_no_partial(
    services: Services, tmp_path: Path
) -> None:
    dump = tmp_path / "kept.jsonl"
    dump.write_text("the previous export\n")
    result = run(services, "galleries", "export", "no-such-gallery", str(dump))
    assert result.exit_code != 0
    assert dump.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.jsonl"]
    create_gallery(services, "exported")
    result = run(services, "galleries", "export", "exported", str(dump))
    assert result.exit_code == 0, result.output
    assert dump.read_text() == ""  # an empty gallery: an empty file, replaced whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.jsonl"]
