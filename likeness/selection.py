"""Which faces of an image a request uses: the one definition for the
embedder, the registry, the client and the CLI."""

from __future__ import annotations

import enum
from typing import cast

from likeness import errors
from likeness.v1 import common_pb2


class FaceSelection(enum.IntEnum):
    """The values of likeness.v1.FaceSelection.

    ``DEFAULT`` is the RPC's documented default: LARGEST for Embed and for
    probes, REQUIRE_SINGLE for Enroll (see :func:`from_pb`).
    """

    DEFAULT = common_pb2.FACE_SELECTION_UNSPECIFIED
    LARGEST = common_pb2.FACE_SELECTION_LARGEST
    ALL = common_pb2.FACE_SELECTION_ALL
    REQUIRE_SINGLE = common_pb2.FACE_SELECTION_REQUIRE_SINGLE


def from_pb(value: int, default: FaceSelection) -> FaceSelection:
    """The selection a request's FaceSelection field asks for, ``default``
    standing for DEFAULT (unset); InvalidArgument for a value outside the enum."""
    try:
        selection = FaceSelection(value)
    except ValueError:
        raise errors.InvalidArgument(f"selection: unknown FaceSelection value {value}") from None
    return default if selection is FaceSelection.DEFAULT else selection


def to_pb(selection: FaceSelection) -> common_pb2.FaceSelection:
    """The FaceSelection field value of ``selection`` (the same number)."""
    return cast("common_pb2.FaceSelection", int(selection))
