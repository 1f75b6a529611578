"""``likeness serve all`` run for real, as a user runs it: one process with
the embedder and the registry, answering the README tour's calls, and
leaving with exit 0 on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from likeness.client import LikenessClient

ROOT = Path(__file__).resolve().parent.parent
LFW = ROOT / "tests" / "data" / "lfw"
_LISTENING = re.compile(r"^(embedder|registry)\s+listening on 127\.0\.0\.1:(\d+)")


def _image(name: str) -> bytes:
    return (LFW / f"{name}.jpg").read_bytes()


def test_serve_all_answers_the_tour_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIKENESS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    ports_and_dir = ["--registry-port", "0", "--metrics-port", "0", "--data-dir", "var"]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "likeness_cli",
            "serve",
            "all",
            "--embedder-port",
            "0",
            *ports_and_dir,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    ports: dict[str, int] = {}
    ready = threading.Event()

    def read_ports() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = _LISTENING.match(line)
            if match:
                ports[match[1]] = int(match[2])
            if len(ports) == 2:
                ready.set()
                return

    threading.Thread(target=read_ports, daemon=True).start()
    try:
        if not ready.wait(300):
            pytest.fail(f"serve all printed no listening lines (exit {proc.poll()})")
        registry = f"127.0.0.1:{ports['registry']}"
        embedder = f"127.0.0.1:{ports['embedder']}"
        with LikenessClient(registry, embedder, timeout_s=120.0) as client:
            assert client.embed(_image("Emma_Watson_0001")).faces
            client.enroll("Emma_Watson", [_image("Emma_Watson_0001"), _image("Emma_Watson_0002")])
            client.enroll(
                "Kamal_Kharrazi", [_image("Kamal_Kharrazi_0001"), _image("Kamal_Kharrazi_0003")]
            )
            assert client.verify("Emma_Watson", _image("Emma_Watson_0003")).match
            assert not client.verify("Kamal_Kharrazi", _image("Emma_Watson_0003")).match
            found = client.identify(_image("Kamal_Kharrazi_0002"))
            assert not found.unknown
            assert found.candidates[0].subject_id == "Kamal_Kharrazi"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
