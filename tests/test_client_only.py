"""A client-only install: ``pip install likeness`` (or ``likeness[client]``)
gives ``likeness.client`` without TensorFlow, dlib, typer or server code.

Checked two ways: the base dependencies in pyproject.toml, and a fresh
interpreter in which every module outside the client's dependencies fails to
import (a meta-path finder refuses them) imports and uses likeness.client.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What a client-only install must not need: heavy models, the CLI's
#: framework, server-only libraries, and the other packages of this project.
FORBIDDEN = (
    "tensorflow",
    "keras",
    "dlib",
    "cv2",
    "face_recognition_models",
    "ai_edge_litert",
    "PIL",
    "typer",
    "click",
    "rich",
    "pydantic",
    "pydantic_settings",
    "grpc_health",
    "grpc_reflection",
    "qdrant_client",
    "qdrant_edge",
    "prometheus_client",
    "embedder",
    "server",
    "trainer",
    "likeness_cli",
)

_SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import sys

    FORBIDDEN = set(sys.argv[1].split(","))

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FORBIDDEN:
                raise ImportError(f"a client-only install has no {name}")
            return None

    sys.meta_path.insert(0, Refuse())
    from likeness.client import FaceSelection, LikenessClient, NotFoundError, Quality

    with LikenessClient("127.0.0.1:1", timeout_s=0.1) as client:
        pass
    assert FaceSelection.LARGEST == 1 and Quality(1.0, 2.0, 0.0, 0.0, 0.0).sharpness == 2.0
    assert issubclass(NotFoundError, Exception)
    loaded = sorted({m.split(".")[0] for m in sys.modules} & FORBIDDEN)
    assert not loaded, loaded
    print("client-only ok")
    """
)


def _requirements(extras: list[str]) -> list[str]:
    spec = importlib.util.spec_from_file_location("requirements", ROOT / "deploy/requirements.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found: list[str] = module.requirements(ROOT / "pyproject.toml", extras)
    return [r.lower() for r in found]


def test_base_dependencies_are_the_client_only() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "client" in project["optional-dependencies"]
    base = " ".join(_requirements(["client"]))
    for heavy in ("tensorflow", "dlib", "typer", "qdrant", "opencv", "pydantic", "grpcio-health"):
        assert heavy not in base, base


def test_the_services_extras_bring_the_cli() -> None:
    # README: pip install -e '.[embedder,registry]' gives the `likeness` command.
    for extra in ("embedder", "registry"):
        assert any(r.startswith("typer") for r in _requirements([extra])), extra


def test_likeness_client_imports_without_server_cli_or_model_libraries() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, ",".join(FORBIDDEN)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "client-only ok" in result.stdout
