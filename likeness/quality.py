"""Face quality: the one value type for every package, and its wire form."""

from __future__ import annotations

from dataclasses import dataclass, fields

from likeness.v1 import common_pb2


@dataclass(frozen=True)
class Quality:
    """Quality of one face (units as in likeness.v1.Quality).

    ``face_size_px``: inter-ocular distance in image pixels; ``sharpness``:
    variance of the Laplacian of the grey aligned crop (under about 30 is
    blurred); ``yaw_deg``/``pitch_deg``/``roll_deg``: head pose in degrees,
    (0, 0, 0) is frontal.
    """

    face_size_px: float
    sharpness: float
    yaw_deg: float
    pitch_deg: float
    roll_deg: float


#: The field names, in order (as in likeness.v1.Quality and JSON exports).
QUALITY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Quality))


def quality_to_pb(value: Quality | None) -> common_pb2.Quality | None:
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


def quality_from_pb(message: common_pb2.Quality) -> Quality:
    """The value of a likeness.v1.Quality, field for field."""
    return Quality(
        face_size_px=message.face_size_px,
        sharpness=message.sharpness,
        yaw_deg=message.yaw_deg,
        pitch_deg=message.pitch_deg,
        roll_deg=message.roll_deg,
    )
