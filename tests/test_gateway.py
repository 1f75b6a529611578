"""The HTTP/JSON gateway through a real HTTP client (httpx) against a real
gateway, registry and embedder on loopback: every route, and its errors."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from registry_helpers import server_settings

from gateway.app import openapi_document
from gateway.server import HttpGateway
from gateway.settings import GatewaySettings
from server.main import RegistryServer, create_server

pytest_plugins = ["registry_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
ADMIN_KEY = "bootstrap-secret-for-gateway-tests"


def image(name: str) -> bytes:
    return (DATA / "lfw" / name).read_bytes()


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, real_embedder: str
) -> Iterator[RegistryServer]:
    settings = server_settings(
        tmp_path_factory.mktemp("gateway"),
        real_embedder,
        api_keys_required=True,
        bootstrap_admin_key=ADMIN_KEY,
    )
    srv = create_server(settings)
    srv.start()
    yield srv
    srv.stop(0)


@pytest.fixture(scope="module")
def http(registry: RegistryServer, real_embedder: str) -> Iterator[httpx.Client]:
    gateway = HttpGateway(
        GatewaySettings(
            port=0,
            registry_address=f"127.0.0.1:{registry.port}",
            embedder_address=real_embedder,
            max_upload_bytes=200_000,
        )
    )
    gateway.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=60.0) as client:
        yield client
    gateway.stop()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ADMIN = auth(ADMIN_KEY)


def error_of(reply: httpx.Response) -> tuple[int, str]:
    body = reply.json()["error"]
    assert set(body) == {"code", "reason", "message"}
    assert "Traceback" not in body["message"]
    return reply.status_code, body["code"]


def test_the_whole_flow_through_every_route(http: httpx.Client) -> None:
    created = http.post("/v1/galleries", json={"name": "staff"}, headers=ADMIN)
    assert created.status_code == 201
    assert created.json()["name"] == "staff"
    assert [g["name"] for g in http.get("/v1/galleries", headers=ADMIN).json()] == ["staff"]

    enrolled = http.post(
        "/v1/galleries/staff/subjects/emma/faces",
        files=[("images", ("e1.jpg", image("Emma_Watson_0001.jpg"), "image/jpeg"))],
        data={"metadata": json.dumps({"team": "red"}), "idempotency_key": "k-1"},
        headers=ADMIN,
    )
    assert enrolled.status_code == 200, enrolled.text
    face_id = enrolled.json()["faces"][0]["face_id"]
    assert enrolled.json()["subject_id"] == "emma" and not enrolled.json()["replayed"]

    same = http.post(
        "/v1/galleries/staff/subjects/emma/verify",
        files={"image": image("Emma_Watson_0002.jpg")},
        headers=ADMIN,
    ).json()
    other = http.post(
        "/v1/galleries/staff/subjects/emma/verify",
        files={"image": image("Albert_Costa_0001.jpg")},
        headers=ADMIN,
    ).json()
    assert same["match"] and not other["match"] and same["face_id"] == face_id

    found = http.post(
        "/v1/galleries/staff/identify",
        files={"image": image("Emma_Watson_0003.jpg")},
        data={"top_k": "3"},
        headers=ADMIN,
    ).json()
    assert found["candidates"][0]["subject_id"] == "emma"
    assert found["candidates"][0]["metadata"] == {"team": "red"}

    compared = http.post(
        "/v1/compare",
        files={"a": image("Emma_Watson_0001.jpg"), "b": image("Emma_Watson_0002.jpg")},
        headers=ADMIN,
    ).json()
    assert compared["match"] and compared["quality_a"]["face_size_px"] > 0

    page = http.get("/v1/galleries/staff/subjects", params={"page_size": 10}, headers=ADMIN)
    assert page.json() == {
        "subjects": [{"subject_id": "emma", "face_count": 1}],
        "next_page_token": "",
    }
    subject = http.get("/v1/galleries/staff/subjects/emma", headers=ADMIN).json()
    assert subject["metadata"] == {"team": "red"} and subject["faces"][0]["face_id"] == face_id
    stats = http.get("/v1/galleries/staff", headers=ADMIN).json()
    assert (stats["subjects"], stats["faces"]) == (1, 1)

    embedded = http.post(
        "/v1/embed", files={"image": image("Emma_Watson_0001.jpg")}, headers=ADMIN
    ).json()
    info = http.get("/v1/info", headers=ADMIN).json()
    assert len(embedded["faces"]) == 1
    assert len(embedded["faces"][0]["embedding"]["values"]) == info["dim"]
    assert embedded["faces"][0]["embedding"]["model_fingerprint"] == info["model_fingerprint"]
    assert created.json()["threshold"] == pytest.approx(info["default_threshold"])
    assert created.json()["operating_point"]["name"] == info["default_operating_point"]
    strict = info["operating_points"][-1]
    moved = http.patch(
        "/v1/galleries/staff", json={"operating_point": strict["name"]}, headers=ADMIN
    ).json()
    assert moved["operating_point"]["name"] == strict["name"]
    assert moved["threshold"] == pytest.approx(strict["threshold"])
    unknown = http.patch("/v1/galleries/staff", json={"operating_point": "nope"}, headers=ADMIN)
    assert unknown.status_code == 400

    assert http.delete(f"/v1/galleries/staff/faces/{face_id}", headers=ADMIN).json() == {
        "subject_id": "emma"
    }
    http.post(
        "/v1/galleries/staff/subjects/emma/faces",
        files=[("images", ("e2.jpg", image("Emma_Watson_0002.jpg"), "image/jpeg"))],
        headers=ADMIN,
    )
    assert http.delete("/v1/galleries/staff/subjects/emma", headers=ADMIN).json() == {
        "faces_deleted": 1
    }
    assert http.delete("/v1/galleries/staff", headers=ADMIN).json() == {"faces_deleted": 0}


def test_api_keys_are_forwarded_and_managed(http: httpx.Client) -> None:
    http.post("/v1/galleries", json={"name": "keys"}, headers=ADMIN)
    created = http.post(
        "/v1/api-keys", json={"name": "reader", "scopes": {"keys": "read"}}, headers=ADMIN
    )
    assert created.status_code == 201
    secret, key_id = created.json()["secret"], created.json()["key"]["key_id"]
    listed = http.get("/v1/api-keys", headers=ADMIN).json()
    assert key_id in [k["key_id"] for k in listed] and "secret" not in json.dumps(listed)

    reader = auth(secret)
    assert http.get("/v1/galleries/keys/subjects", headers=reader).status_code == 200
    denied = http.post(
        "/v1/galleries/keys/subjects/x/faces",
        files=[("images", ("e.jpg", image("Emma_Watson_0001.jpg"), "image/jpeg"))],
        headers=reader,
    )
    assert error_of(denied) == (403, "PERMISSION_DENIED")

    assert http.delete(f"/v1/api-keys/{key_id}", headers=ADMIN).status_code == 204
    revoked = http.get("/v1/galleries/keys/subjects", headers=reader)
    assert error_of(revoked) == (401, "UNAUTHENTICATED")


def test_errors_map_grpc_codes_to_http_statuses(http: httpx.Client) -> None:
    http.post("/v1/galleries", json={"name": "errs"}, headers=ADMIN)
    cases = {
        "no key": http.get("/v1/galleries"),
        "not bearer": http.get("/v1/galleries", headers={"Authorization": "Basic abc"}),
        "unknown subject": http.get("/v1/galleries/errs/subjects/nobody", headers=ADMIN),
        "unknown gallery": http.get("/v1/galleries/nope", headers=ADMIN),
        "gallery twice": http.post("/v1/galleries", json={"name": "errs"}, headers=ADMIN),
        "not an image": http.post(
            "/v1/compare", files={"a": b"not an image", "b": b"nor this"}, headers=ADMIN
        ),
        "no face": http.post(
            "/v1/embed", files={"image": (DATA / "bad" / "no_face.jpg").read_bytes()}, headers=ADMIN
        ),
        "top_k out of range": http.post(
            "/v1/galleries/errs/identify",
            files={"image": image("Emma_Watson_0001.jpg")},
            data={"top_k": "0"},
            headers=ADMIN,
        ),
        "missing body field": http.post("/v1/galleries", json={}, headers=ADMIN),
        "bad metadata": http.post(
            "/v1/galleries/errs/subjects/a/faces",
            files=[("images", ("e.jpg", image("Emma_Watson_0001.jpg"), "image/jpeg"))],
            data={"metadata": "[1, 2]"},
            headers=ADMIN,
        ),
        "too large": http.post("/v1/embed", files={"image": b"\xff" * 200_001}, headers=ADMIN),
    }
    got = {name: error_of(reply) for name, reply in cases.items()}
    assert got == {
        "no key": (401, "UNAUTHENTICATED"),
        "not bearer": (401, "UNAUTHENTICATED"),
        "unknown subject": (404, "NOT_FOUND"),
        "unknown gallery": (404, "NOT_FOUND"),
        "gallery twice": (409, "ALREADY_EXISTS"),
        "not an image": (400, "INVALID_ARGUMENT"),
        "no face": (404, "NOT_FOUND"),
        "top_k out of range": (400, "INVALID_ARGUMENT"),
        "missing body field": (400, "INVALID_ARGUMENT"),
        "bad metadata": (400, "INVALID_ARGUMENT"),
        "too large": (429, "RESOURCE_EXHAUSTED"),
    }
    assert cases["not bearer"].headers["WWW-Authenticate"] == "Bearer"


def test_an_unreachable_registry_answers_503() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    gateway = HttpGateway(
        GatewaySettings(port=0, registry_address=closed, embedder_address=None, timeout_s=3.0)
    )
    gateway.start()
    try:
        reply = httpx.get(f"http://127.0.0.1:{gateway.port}/v1/galleries", timeout=30.0)
    finally:
        gateway.stop()
    assert error_of(reply) == (503, "UNAVAILABLE")


def test_the_served_openapi_document_is_the_committed_one(http: httpx.Client) -> None:
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert committed == openapi_document(), (
        "docs/openapi.json is stale: python -m gateway.server openapi docs/openapi.json"
    )
    assert http.get("/openapi.json").json() == committed
    routes = {(m, p) for p, ops in committed["paths"].items() for m in ops}
    assert len(routes) == 18
