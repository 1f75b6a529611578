"""Release hygiene: one version, a changelog entry for it, compatible
ranges for the client-only install."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import likeness

ROOT = Path(__file__).resolve().parent.parent


def test_the_version_is_defined_once_and_has_a_changelog_entry() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "likeness.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", likeness.__version__)
    release = re.sub(r"(\.dev\d+|rc\d+)$", "", likeness.__version__)
    headings = re.findall(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert headings and headings[0] == release


def test_every_api_snapshot_is_a_release_in_the_changelog() -> None:
    headings = set(re.findall(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE))
    snapshots = sorted((ROOT / "proto" / "releases").glob("likeness-v1-*.binpb"))
    assert snapshots
    for snapshot in snapshots:
        assert snapshot.name.removeprefix("likeness-v1-").removesuffix(".binpb") in headings


def test_the_client_only_install_uses_ranges_not_pins() -> None:
    base = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in base:
        assert "==" not in requirement, requirement
        assert "<" in requirement and ">=" in requirement, requirement
