"""Deployment files, checked without a container engine.

The compose files must parse and agree with the services' settings classes
(every LIKENESS_* variable is a real field and its value validates), the
Dockerfiles must copy files that exist and that .dockerignore lets through,
and the small scripts the images run (health probe, gallery job, requirement
list) must behave. Nothing here builds an image or starts a container.
"""

from __future__ import annotations

import ast
import http.server
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic_settings import BaseSettings

from embedder.settings import EmbedderSettings
from likeness.v1 import registry_pb2, registry_pb2_grpc
from server.settings import RegistrySettings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
CLUSTER = DEPLOY / "docker-compose.cluster.yml"
REGISTRY_DOCKERFILE = DEPLOY / "registry.Dockerfile"
EMBEDDER_DOCKERFILE = DEPLOY / "embedder.Dockerfile"
HEAVY_PACKAGES = ("tensorflow", "keras", "dlib", "opencv", "face_recognition", "torch")


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", DEPLOY / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


healthcheck = _load_script("healthcheck")
create_gallery = _load_script("create_gallery")
requirements = _load_script("requirements")

SETTINGS_BY_PREFIX: dict[str, type[BaseSettings]] = {
    str(cls.model_config["env_prefix"]): cls
    for cls in (
        EmbedderSettings,
        RegistrySettings,
        create_gallery.GallerySetupSettings,
        healthcheck.ProbeSettings,
    )
}


# --- compose interpolation (the subset of the Compose spec these files use) ---

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def _interpolate(value: str, env: dict[str, str], seen: set[str]) -> str:
    """Compose's substitution with ``env`` as the shell; records names in ``seen``."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        seen.add(name)
        # The colon forms (:- and :?) treat an empty variable as unset.
        if name in env and (env[name] or not (match["op"] or "").startswith(":")):
            return env[name]
        if match["op"] in (":-", "-"):
            return match["default"]
        if match["op"] in (":?", "?"):
            raise AssertionError(f"required variable {name} unset")
        return ""

    return _VARIABLE.sub(replace, value)


def _resolve(node: Any, env: dict[str, str], seen: set[str]) -> Any:
    if isinstance(node, str):
        return _interpolate(node, env, seen)
    if isinstance(node, list):
        return [_resolve(item, env, seen) for item in node]
    if isinstance(node, dict):
        return {key: _resolve(value, env, seen) for key, value in node.items()}
    return node


#: The secrets both compose files require (${NAME:?...}), as a shell would
#: set them; the files are loaded with these unless a test says otherwise.
SECRETS = {
    "LIKENESS_REGISTRY_BOOTSTRAP_ADMIN_KEY": "bootstrap-admin-key-for-the-tests",
    "LIKENESS_EMBEDDER_API_KEY": "embedder-shared-key-for-the-tests",
}


def _load_compose(path: Path, env: dict[str, str] | None = None) -> tuple[dict[str, Any], set[str]]:
    seen: set[str] = set()
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return _resolve(raw, SECRETS if env is None else env, seen), seen


@pytest.fixture(scope="module", params=[COMPOSE, CLUSTER], ids=["single", "cluster"])
def compose(request: pytest.FixtureRequest) -> tuple[Path, dict[str, Any]]:
    data, _seen = _load_compose(request.param)
    return request.param, data


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment must be a mapping"
    return {key: None if value is None else str(value) for key, value in env.items()}


def _settings_class(name: str) -> tuple[type[BaseSettings], str]:
    for prefix, cls in SETTINGS_BY_PREFIX.items():
        if name.startswith(prefix):
            return cls, name[len(prefix) :].lower()
    raise AssertionError(f"{name}: no settings class reads this prefix")


def _dockerfile_of(service: dict[str, Any]) -> str | None:
    build = service.get("build")
    return None if build is None else str(build["dockerfile"])


# --- compose files ---


def test_compose_files_reference_only_documented_variables() -> None:
    for path in (COMPOSE, CLUSTER):
        _data, seen = _load_compose(path)
        comments = "\n".join(
            line for line in path.read_text(encoding="utf-8").splitlines() if "#" in line
        )
        # A bare $name inside a shell command (instead of $$name) would be
        # silently replaced by Compose; it would show up here as undocumented.
        undocumented = {
            name for name in seen if name not in comments and not _is_settings_variable(name, path)
        }
        assert not undocumented, f"{path.name}: undocumented variables {sorted(undocumented)}"


def _is_settings_variable(name: str, path: Path) -> bool:
    """A ${LIKENESS_X:-d} pass-through of the setting the service reads as LIKENESS_X."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return any(name in service.get("environment", {}) for service in data["services"].values())


def test_every_likeness_variable_is_a_settings_field_and_validates(
    compose: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, data = compose
    for service_name, service in data["services"].items():
        by_class: dict[type[BaseSettings], dict[str, str]] = {}
        for key, value in _environment(service).items():
            if not key.startswith("LIKENESS_"):
                continue
            cls, field = _settings_class(key)
            assert field in cls.model_fields, f"{path.name}:{service_name}: {key} is no field"
            if value is not None:
                by_class.setdefault(cls, {})[key] = value
        for cls, values in by_class.items():
            for key in list(os.environ):
                if key.startswith(str(cls.model_config["env_prefix"])):
                    monkeypatch.delenv(key)
            for key, value in values.items():
                monkeypatch.setenv(key, value)
            cls()  # raises ValidationError on a value the service would reject


def test_services_get_only_their_own_settings(compose: tuple[Path, dict[str, Any]]) -> None:
    path, data = compose
    expected = {
        "deploy/embedder.Dockerfile": "LIKENESS_EMBEDDER_",
        "deploy/registry.Dockerfile": "LIKENESS_REGISTRY_",
    }
    for name, service in data["services"].items():
        dockerfile = _dockerfile_of(service)
        if dockerfile is None or "create_gallery.py" in str(service.get("command", "")):
            continue
        prefix = expected[dockerfile]
        wrong = [
            k
            for k in _environment(service)
            if k.startswith("LIKENESS_") and not k.startswith(prefix)
        ]
        assert not wrong, f"{path.name}:{name}: {wrong} are read by another service"


def test_pass_through_defaults_equal_the_settings_defaults() -> None:
    pattern = re.compile(r"\$\{(LIKENESS_[A-Z0-9_]+):-([^}]*)\}")
    for path in (COMPOSE, CLUSTER):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for service in raw["services"].values():
            for key, value in (service.get("environment") or {}).items():
                match = pattern.fullmatch(str(value)) if value is not None else None
                if match is None or match[1] != key:
                    continue
                cls, field = _settings_class(key)
                default = cls.model_fields[field].default
                parsed = cls.model_validate({field: match[2]}).model_dump()[field]
                assert parsed == default, (
                    f"{path.name}: {key} defaults to {match[2]}, not {default}"
                )


def _container_ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    out = []
    for spec in service.get("ports", []):
        host_ip, host_port, container = str(spec).rsplit(":", 2)
        out.append((host_ip, int(host_port), int(container)))
    return out


def test_published_ports_match_the_configured_ports_on_loopback(
    compose: tuple[Path, dict[str, Any]],
) -> None:
    path, data = compose
    for name, service in data["services"].items():
        env = _environment(service)
        published = _container_ports(service)
        assert all(ip == "127.0.0.1" for ip, _, _ in published), f"{name}: not loopback"
        for prefix, port_fields in (
            ("LIKENESS_REGISTRY_", ("port", "metrics_port")),
            ("LIKENESS_EMBEDDER_", ("port",)),
        ):
            if not any(key.startswith(prefix) for key in env):
                continue
            cls = SETTINGS_BY_PREFIX[prefix]
            for field in port_fields:
                value = env.get(prefix + field.upper())
                port = int(value) if value else cls.model_fields[field].default
                assert port == cls.model_fields[field].default, f"{name}: {field} moved"
                if published:
                    assert port in {c for _, _, c in published}, f"{path.name}:{name}: {port}"
            host = env.get(prefix + "HOST")
            assert host == "0.0.0.0", f"{name}: binds {host}, unreachable from other containers"
        hosts = [(ip, p) for ip, p, _ in published]
        assert len(hosts) == len(set(hosts)), f"{name}: a host port is published twice"
    everywhere = [(ip, p) for s in data["services"].values() for ip, p, _ in _container_ports(s)]
    assert len(everywhere) == len(set(everywhere)), f"{path.name}: two services share a host port"


@pytest.mark.parametrize("secret", sorted(SECRETS))
@pytest.mark.parametrize("path", [COMPOSE, CLUSTER], ids=["single", "cluster"])
def test_compose_refuses_to_start_without_each_secret(path: Path, secret: str) -> None:
    # ${NAME:?...}: Compose refuses an unset or empty variable; no default
    # can let a deployment start with keys off or an open embedder.
    for value in (None, ""):
        env = {k: v for k, v in SECRETS.items() if k != secret}
        if value is not None:
            env[secret] = value
        with pytest.raises(AssertionError, match=f"required variable {secret} unset"):
            _load_compose(path, env)


def test_compose_requires_api_keys_and_the_embedder_key(
    compose: tuple[Path, dict[str, Any]],
) -> None:
    path, data = compose
    embedder_key = SECRETS["LIKENESS_EMBEDDER_API_KEY"]
    admin_key = SECRETS["LIKENESS_REGISTRY_BOOTSTRAP_ADMIN_KEY"]
    names = _service_names(data)
    registries = embedders = 0
    for name, service in data["services"].items():
        env = _environment(service)
        if "LIKENESS_EMBEDDER_PORT" in env:
            embedders += 1
            assert env.get("LIKENESS_EMBEDDER_API_KEY") == embedder_key, f"{path.name}:{name}"
            assert EmbedderSettings.model_validate({"api_key": embedder_key}).api_key is not None
        if "LIKENESS_REGISTRY_PORT" in env:
            registries += 1
            settings = RegistrySettings.model_validate(
                {k.removeprefix("LIKENESS_REGISTRY_").lower(): v for k, v in env.items() if v}
            )
            assert settings.api_keys_required is True, f"{path.name}:{name}: keys optional"
            assert settings.bootstrap_admin_key == admin_key, f"{path.name}:{name}"
            key = settings.embedder_api_key
            assert key is not None and key.get_secret_value() == embedder_key
            # ...the key of the very embedder it dials.
            (embedder,) = names[(env["LIKENESS_REGISTRY_EMBEDDER_ADDRESS"] or "").split(":")[0]]
            assert _environment(data["services"][embedder])["LIKENESS_EMBEDDER_API_KEY"] == (
                key.get_secret_value()
            )
        if "create_gallery.py" in str(service.get("command", "")):
            assert env.get("LIKENESS_GALLERY_API_KEY") == admin_key, "the job needs an admin key"
    assert registries and embedders


def _service_names(data: dict[str, Any]) -> dict[str, set[str]]:
    """Network name -> the services reachable under it (names and aliases)."""
    names: dict[str, set[str]] = {}
    for name, service in data["services"].items():
        names.setdefault(name, set()).add(name)
        for network in (service.get("networks") or {}).values():
            for alias in (network or {}).get("aliases", []):
                names.setdefault(alias, set()).add(name)
    return names


def test_registry_reaches_qdrant_grpc_and_the_embedder(
    compose: tuple[Path, dict[str, Any]],
) -> None:
    path, data = compose
    names = _service_names(data)
    registries = [
        s for s in data["services"].values() if "LIKENESS_REGISTRY_PORT" in _environment(s)
    ]
    assert registries
    for service in registries:
        env = _environment(service)
        assert env["LIKENESS_REGISTRY_STORE"] == "qdrant"
        url = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", env["LIKENESS_REGISTRY_QDRANT_URL"] or "")
        assert url is not None and int(url[2]) == 6334, "the registry must use Qdrant's gRPC port"
        qdrants = names[url[1]]
        assert all("qdrant" in str(data["services"][q].get("image")) for q in qdrants)
        host, port = (env["LIKENESS_REGISTRY_EMBEDDER_ADDRESS"] or "").rsplit(":", 1)
        (embedder,) = names[host]
        embedder_env = _environment(data["services"][embedder])
        assert int(port) == int(embedder_env["LIKENESS_EMBEDDER_PORT"] or 0)
        depends = service["depends_on"]
        for dependency in (*qdrants, embedder):
            assert depends[dependency]["condition"] == "service_healthy", (
                f"{path.name}: {dependency}"
            )


def test_every_long_running_service_has_a_matching_healthcheck(
    compose: tuple[Path, dict[str, Any]],
) -> None:
    path, data = compose
    for name, service in data["services"].items():
        check = service.get("healthcheck", {})
        if service.get("restart") == "no":
            continue  # a one-shot job, never "healthy"
        assert check and not check.get("disable"), f"{path.name}:{name}: no healthcheck"
        test = " ".join(check["test"])
        dockerfile = _dockerfile_of(service)
        if dockerfile == "deploy/registry.Dockerfile":
            assert "healthcheck.py registry" in test
        elif dockerfile == "deploy/embedder.Dockerfile":
            assert "healthcheck.py embedder" in test
        else:
            assert "/readyz" in test and "6333" in test, f"{name}: Qdrant readiness"


def test_volumes_are_declared_used_and_hold_the_state(compose: tuple[Path, dict[str, Any]]) -> None:
    path, data = compose
    declared = set(data.get("volumes") or {})
    used: list[str] = []
    for name, service in data["services"].items():
        mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in service.get("volumes", [])}
        used.extend(mounts.values())
        if "qdrant" in str(service.get("image")):
            assert "/qdrant/storage" in mounts, f"{name}: Qdrant data would die with the container"
        data_dir = _environment(service).get("LIKENESS_REGISTRY_DATA_DIR")
        if data_dir:
            assert data_dir in mounts, f"{name}: API keys would die with the container"
    assert set(used) <= declared, f"{path.name}: undeclared volumes {set(used) - declared}"
    assert declared <= set(used), f"{path.name}: unused volumes {declared - set(used)}"
    storage = [v for v in used if "storage" in v]
    assert len(storage) == len(set(storage)), "two Qdrant nodes share one storage volume"


def test_qdrant_image_is_pinned_and_client_compatible() -> None:
    client = importlib.metadata.version("qdrant-client").split(".")
    for path in (COMPOSE, CLUSTER):
        data, _ = _load_compose(path)
        images = {
            str(s["image"]) for s in data["services"].values() if "qdrant/" in str(s.get("image"))
        }
        assert images
        for image in images:
            tag = re.fullmatch(r"qdrant/qdrant:v(\d+)\.(\d+)\.(\d+)", image)
            assert tag, f"{image}: pin an exact release"
            # qdrant-client supports servers one minor version apart.
            assert tag[1] == client[0] and abs(int(tag[2]) - int(client[1])) <= 1


def test_cluster_has_three_bootstrapped_qdrant_nodes_and_two_registries() -> None:
    data, _ = _load_compose(CLUSTER)
    services = data["services"]
    nodes = {n: s for n, s in services.items() if "qdrant/" in str(s.get("image"))}
    assert len(nodes) == 3
    uris: dict[str, str] = {}
    bootstraps: dict[str, str | None] = {}
    for name, node in nodes.items():
        env = _environment(node)
        assert env["QDRANT__CLUSTER__ENABLED"] == "true"
        assert env["QDRANT__STORAGE__COLLECTION__REPLICATION_FACTOR"] == "2"
        command = [str(c) for c in node["command"]]
        assert command[0] == "./entrypoint.sh"
        uris[name] = command[command.index("--uri") + 1]
        assert uris[name] == f"http://{name}:6335", f"{name}: peers could not reach it"
        bootstraps[name] = (
            command[command.index("--bootstrap") + 1] if "--bootstrap" in command else None
        )
    seeds = [n for n, b in bootstraps.items() if b is None]
    assert len(seeds) == 1, "exactly one node starts the cluster"
    for name, bootstrap in bootstraps.items():
        if bootstrap is not None:
            assert bootstrap == uris[seeds[0]]
            assert services[name]["depends_on"][seeds[0]]["condition"] == "service_healthy"
    registries = [
        n
        for n, s in services.items()
        if _dockerfile_of(s) == "deploy/registry.Dockerfile"
        and "create_gallery.py" not in str(s.get("command", ""))
    ]
    assert len(registries) == 2
    audits = {_environment(services[r])["LIKENESS_REGISTRY_AUDIT_LOG"] for r in registries}
    assert len(audits) == 2, "two replicas must not append to one audit log"
    job = next(s for s in services.values() if "create_gallery.py" in str(s.get("command", "")))
    env = _environment(job)
    assert env["LIKENESS_GALLERY_SHARD_NUMBER"] == "2"
    assert env["LIKENESS_GALLERY_REPLICATION_FACTOR"] == "2"
    target = (env["LIKENESS_GALLERY_REGISTRY_ADDRESS"] or "").split(":")[0]
    assert target in registries and job["depends_on"][target]["condition"] == "service_healthy"


def test_cluster_build_contexts_point_at_the_repository() -> None:
    data, _ = _load_compose(CLUSTER)
    for name, service in data["services"].items():
        if "build" in service:
            context = (CLUSTER.parent / service["build"]["context"]).resolve()
            assert context == ROOT, f"{name}: builds from {context}"
            assert (context / service["build"]["dockerfile"]).is_file()


# --- Dockerfiles ---


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _dockerignore_excludes(relative: str) -> bool:
    """Docker's rule: the last pattern matching the path or a parent wins."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            body = line.lstrip("!").strip("/")
            regex = "".join(
                ".*"
                if part == "**"
                else "[^/]*"
                if part == "*"
                else "[^/]"
                if part == "?"
                else re.escape(part)
                for part in re.split(r"(\*\*|\*|\?)", body)
            )
            patterns.append((negate, re.compile(regex.replace(".*/", "(.*/)?"))))
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, pattern in patterns:
        if any(pattern.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


@pytest.mark.parametrize(
    "dockerfile", [REGISTRY_DOCKERFILE, EMBEDDER_DOCKERFILE], ids=lambda p: p.stem
)
def test_dockerfile_copies_existing_files_and_runs_unprivileged(dockerfile: Path) -> None:
    steps = _instructions(dockerfile)
    for keyword, rest in steps:
        if keyword == "COPY" and "--from=" not in rest:
            *sources, _destination = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}: missing"
                assert not _dockerignore_excludes(source.rstrip("/")), (
                    f".dockerignore drops {source}"
                )
                if (ROOT / source).is_dir():
                    for file in (ROOT / source).rglob("*.py"):
                        rel = file.relative_to(ROOT).as_posix()
                        assert not _dockerignore_excludes(rel), f".dockerignore drops {rel}"
        if keyword == "FROM":
            assert "python:3.11-slim" in rest or rest.startswith("${PYTHON_IMAGE}")
        if keyword == "RUN" and "pip install" in rest:
            assert rest.count("pip install") == rest.count("--no-cache-dir"), rest
    assert any(k == "ARG" and r.startswith("PYTHON_IMAGE=python:3.11-slim") for k, r in steps)
    users = [rest for keyword, rest in steps if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the service would run as root"
    assert sum(1 for keyword, _ in steps if keyword == "FROM") >= 2, "build and runtime stages"
    (health_cmd,) = [rest for keyword, rest in steps if keyword == "HEALTHCHECK"]
    kind = "registry" if dockerfile == REGISTRY_DOCKERFILE else "embedder"
    assert f'"/opt/likeness/healthcheck.py", "{kind}"' in health_cmd
    (cmd,) = [rest for keyword, rest in steps if keyword == "CMD"]
    module = re.search(r'"-m", "([a-z_.]+)"', cmd)
    assert module is not None
    assert (ROOT / (module[1].replace(".", "/") + ".py")).is_file(), f"{module[1]} does not exist"


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    for path in (
        ".venv/bin/python",
        "var/api_keys.json",
        "cache/lfw-test/x.npz",
        ".git/HEAD",
        "runs/model.keras",
        "likeness/__pycache__/x.pyc",
    ):
        assert _dockerignore_excludes(path), path
    for path in (
        "pyproject.toml",
        "server/settings.py",
        "embedder/models/likeness-mobilenet/manifest.json",
    ):
        assert not _dockerignore_excludes(path), path


def _copied_extras(dockerfile: Path) -> list[str]:
    match = re.search(r"requirements\.py pyproject\.toml ([a-z ]+?) >", dockerfile.read_text())
    assert match, "the image installs its requirements through deploy/requirements.py"
    return match[1].split()


def test_registry_image_installs_no_tensorflow_or_embedder_code() -> None:
    pyproject = ROOT / "pyproject.toml"
    extras = _copied_extras(REGISTRY_DOCKERFILE)
    assert extras == ["registry"]
    installed = " ".join(requirements.requirements(pyproject, extras)).lower()
    assert "qdrant-client" in installed and "grpcio" in installed
    assert not [p for p in HEAVY_PACKAGES if p in installed], installed
    copied = [rest for k, rest in _instructions(REGISTRY_DOCKERFILE) if k == "COPY"]
    assert not any(re.search(r"\b(embedder|trainer)\b", c) for c in copied)
    # The image has no embedder/ package: the server must never import it.
    for module in (ROOT / "server").rglob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                top = name.split(".")[0]
                assert top not in {"embedder", "trainer", "tensorflow", "keras", "cv2", "dlib"}, (
                    f"{module.relative_to(ROOT)} imports {name}"
                )


def test_embedder_image_installs_tensorflow_and_ships_the_model() -> None:
    extras = _copied_extras(EMBEDDER_DOCKERFILE)
    installed = " ".join(requirements.requirements(ROOT / "pyproject.toml", extras)).lower()
    assert "tensorflow" in installed and "dlib" in installed
    manifest = ROOT / "embedder" / "models" / "likeness-mobilenet" / "manifest.json"
    assert manifest.is_file(), "the embedder image would ship no model"
    for name in json.loads(manifest.read_text(encoding="utf-8"))["files"]:
        assert (manifest.parent / name).is_file(), f"model file {name} missing"


def test_requirements_follow_self_referencing_extras() -> None:
    trainer = requirements.requirements(ROOT / "pyproject.toml", ["train"])
    assert any(r.startswith("tensorflow-cpu") for r in trainer)  # via likeness[embedder]
    assert not any(r.startswith("likeness") for r in trainer)
    with pytest.raises(KeyError):
        requirements.requirements(ROOT / "pyproject.toml", ["no-such-extra"])


# --- scripts run inside the containers ---


@pytest.fixture()
def health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(0).wait()


def test_healthcheck_reports_serving_not_serving_and_down(
    health_server: tuple[int, health.HealthServicer], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, servicer = health_server
    monkeypatch.setenv("LIKENESS_REGISTRY_HOST", "0.0.0.0")
    monkeypatch.setenv("LIKENESS_REGISTRY_PORT", str(port))
    monkeypatch.delenv("LIKENESS_REGISTRY_TLS_CERT", raising=False)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert healthcheck.main(["registry", "--timeout", "2"]) == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert healthcheck.main(["registry", "--timeout", "2"]) == 1
    assert healthcheck.main(["registry", "--service", "no.such.Service", "--timeout", "2"]) == 1
    monkeypatch.setenv("LIKENESS_REGISTRY_PORT", "1")  # nothing listens there
    assert healthcheck.main(["registry", "--timeout", "1"]) == 1


def test_healthcheck_runs_as_a_script_with_embedder_settings(
    health_server: tuple[int, health.HealthServicer],
) -> None:
    port, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    env = {"PATH": "/usr/bin:/bin", "LIKENESS_EMBEDDER_PORT": str(port)}
    run = subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py"), "embedder", "--timeout", "5"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_healthcheck_speaks_tls_when_the_service_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=registry.test",
            "-addext",
            "subjectAltName=DNS:registry.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    creds = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    try:
        monkeypatch.setenv("LIKENESS_REGISTRY_PORT", str(port))
        monkeypatch.setenv("LIKENESS_REGISTRY_TLS_CERT", str(cert))
        monkeypatch.setenv("LIKENESS_REGISTRY_TLS_KEY", str(key))
        monkeypatch.setenv("LIKENESS_HEALTHCHECK_TLS_NAME", "registry.test")
        assert healthcheck.main(["registry", "--timeout", "5"]) == 0
        monkeypatch.setenv("LIKENESS_HEALTHCHECK_TLS_NAME", "other.test")
        assert healthcheck.main(["registry", "--timeout", "2"]) == 1
    finally:
        server.stop(0).wait()


class _FakeRegistry(registry_pb2_grpc.RegistryServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.requests: list[tuple[registry_pb2.CreateGalleryRequest, dict[str, str]]] = []
        self.existing: set[str] = set()

    def CreateGallery(  # noqa: N802 - the generated method name
        self, request: registry_pb2.CreateGalleryRequest, context: grpc.ServicerContext
    ) -> registry_pb2.Gallery:
        self.requests.append((request, {k: str(v) for k, v in context.invocation_metadata()}))
        if request.name == "broken":
            context.abort(grpc.StatusCode.UNAVAILABLE, "store down")
        if request.name in self.existing:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f"gallery {request.name} exists")
        self.existing.add(request.name)
        return registry_pb2.Gallery(name=request.name, model_fingerprint="m@1", dim=128)


def test_create_gallery_job_sends_sharding_and_tolerates_an_existing_gallery() -> None:
    fake = _FakeRegistry()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    registry_pb2_grpc.add_RegistryServicer_to_server(fake, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        settings = create_gallery.GallerySetupSettings(
            registry_address=f"127.0.0.1:{port}", name="faces", api_key="s3cret", timeout_s=5
        )
        created = create_gallery.create_gallery(settings)
        assert created is not None and created.name == "faces"
        request, metadata = fake.requests[0]
        assert (request.shard_number, request.replication_factor) == (2, 2)
        assert request.write_consistency_factor == 1
        assert metadata["authorization"] == "Bearer s3cret"
        assert create_gallery.create_gallery(settings) is None  # exists: success
        broken = settings.model_copy(update={"name": "broken"})
        with pytest.raises(grpc.RpcError):
            create_gallery.create_gallery(broken)
    finally:
        server.stop(0).wait()


class _Readyz(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.mark.skipif(shutil.which("bash") is None, reason="the Qdrant probe is a bash command")
def test_qdrant_healthcheck_command_accepts_200_and_rejects_503() -> None:
    data, _ = _load_compose(COMPOSE)
    command = data["services"]["qdrant"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "bash", "-c"]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Readyz)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    script = command[3].replace("/6333", f"/{httpd.server_address[1]}")
    try:
        for status, expected in ((200, 0), (503, 1)):
            _Readyz.status = status
            run = subprocess.run(
                ["bash", "-c", script], capture_output=True, timeout=10, check=False
            )
            assert (run.returncode == 0) == (expected == 0), (status, run.stderr)
    finally:
        httpd.shutdown()
