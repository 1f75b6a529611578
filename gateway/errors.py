"""gRPC status -> HTTP status, and the one JSON error body of the gateway.

Every error answers ``{"error": {"code": "NOT_FOUND", "reason": "...",
"message": "..."}}``: ``code`` the gRPC status name, ``reason`` the
machine-readable reason when the service gave one ("" otherwise),
``message`` the service's text (safe to show, never a traceback). The
status mapping is Google's (google.rpc.Code, as grpc-gateway uses it).
"""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from likeness.client import LikenessRpcError

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def error_body(code: str, message: str, reason: str = "") -> dict[str, Any]:
    return {"error": {"code": code, "reason": reason, "message": message}}


class GatewayError(Exception):
    """An error the gateway itself answers (before any gRPC call)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def on_rpc_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LikenessRpcError)
    reason = str(getattr(exc, "reason", "") or "")
    return JSONResponse(
        error_body(exc.code.name, exc.details, reason), status_code=HTTP_STATUS[exc.code]
    )


async def on_gateway_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.code is grpc.StatusCode.UNAUTHENTICATED else {}
    return JSONResponse(
        error_body(exc.code.name, exc.message),
        status_code=HTTP_STATUS[exc.code],
        headers=headers,
    )


async def on_invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return JSONResponse(error_body("INVALID_ARGUMENT", problems), status_code=400)
