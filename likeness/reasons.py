"""Machine-readable refusal reasons and their wire form, google.rpc.ErrorInfo.

A refused request carries, besides its status code and message, a
``google.rpc.Status`` in the standard ``grpc-status-details-bin`` trailer
whose details hold one ``google.rpc.ErrorInfo``: ``reason`` (a
:class:`Reason` name, the likeness.v1.Reason value without ``REASON_``),
``domain`` :data:`DOMAIN` and ``metadata`` (measured "value" and "limit"
where a measurement was refused). Servers attach it (:func:`status_details`),
clients read it back (:func:`error_info_of`); nothing else touches the trailer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from likeness.v1 import common_pb2

#: The trailer key of the binary google.rpc.Status (gRPC's standard one).
STATUS_DETAILS_KEY = "grpc-status-details-bin"
#: ErrorInfo.domain of every Likeness reason.
DOMAIN = "likeness.v1"


class Reason(enum.StrEnum):
    """The values of likeness.v1.Reason, by the name sent in ErrorInfo.reason."""

    NO_FACE = "NO_FACE"
    MULTIPLE_FACES = "MULTIPLE_FACES"
    FACE_TOO_SMALL = "FACE_TOO_SMALL"
    FACE_TOO_BLURRY = "FACE_TOO_BLURRY"
    POSE_TOO_LARGE = "POSE_TOO_LARGE"
    MODEL_MISMATCH = "MODEL_MISMATCH"
    GALLERY_NOT_FOUND = "GALLERY_NOT_FOUND"
    SUBJECT_NOT_FOUND = "SUBJECT_NOT_FOUND"
    IMAGE_UNREADABLE = "IMAGE_UNREADABLE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    IMAGE_TOO_SMALL = "IMAGE_TOO_SMALL"
    UNKNOWN_OPERATING_POINT = "UNKNOWN_OPERATING_POINT"

    @property
    def number(self) -> int:
        """The likeness.v1.Reason enum number of this reason."""
        return int(common_pb2.Reason.Value(f"REASON_{self.value}"))


@dataclass(frozen=True)
class ErrorInfo:
    """The reason of a refusal: ``reason`` a :class:`Reason` name (kept as a
    plain string on the client side, so that a newer server's reason is not
    lost), ``metadata`` string keys and values ("value", "limit", "field")."""

    reason: str
    metadata: Mapping[str, str] = field(default_factory=dict)


def measured(value: float | int | str, limit: float | int | str, **extra: str) -> dict[str, str]:
    """ErrorInfo metadata of a refused measurement: ``value`` and ``limit``
    as decimal strings (floats to 6 significant digits), plus ``extra`` keys."""

    def text(x: float | int | str) -> str:
        return f"{x:.6g}" if isinstance(x, float) else str(x)

    return {"value": text(value), "limit": text(limit), **extra}


def status_details(code: int, message: str, info: ErrorInfo) -> tuple[str, bytes]:
    """The trailer entry (key, value) carrying ``info`` for a status of
    numeric ``code`` and ``message`` (google.rpc.Status requires both to match
    the call's status)."""
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.ErrorInfo(reason=info.reason, domain=DOMAIN, metadata=info.metadata)
    )
    status = status_pb2.Status(code=code, message=message, details=[detail])
    return STATUS_DETAILS_KEY, status.SerializeToString()


def error_info_of(trailing: Sequence[tuple[str, str | bytes]] | None) -> ErrorInfo | None:
    """The ErrorInfo of a call's trailing metadata; None when it carries none
    (or an unreadable one: a reason is an addition, never a new failure)."""
    for key, value in trailing or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return ErrorInfo(info.reason, dict(info.metadata))
    return None
