"""One conversion of face-quality values to the wire type, for every package.

The embedder, the registry and the client each have their own quality
dataclass (none may import another's); all carry the same five fields.
"""

from __future__ import annotations

from typing import Protocol

from likeness.v1 import common_pb2


class QualityValues(Protocol):
    """Anything with the five quality fields (units as in likeness.v1.Quality)."""

    @property
    def face_size_px(self) -> float: ...
    @property
    def sharpness(self) -> float: ...
    @property
    def yaw_deg(self) -> float: ...
    @property
    def pitch_deg(self) -> float: ...
    @property
    def roll_deg(self) -> float: ...


def quality_to_pb(value: QualityValues | None) -> common_pb2.Quality | None:
    """The likeness.v1.Quality of ``value``; None (field left unset) for None."""
    if value is None:
        return None
    return common_pb2.Quality(
        face_size_px=value.face_size_px,
        sharpness=value.sharpness,
        yaw_deg=value.yaw_deg,
        pitch_deg=value.pitch_deg,
        roll_deg=value.roll_deg,
    )
