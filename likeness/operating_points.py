"""Operating points: named decision thresholds of a model, each calibrated
at a target false accept rate (FAR) on held-out people.

A model ships several (``far-1e-2``, ``far-1e-3``, ``far-1e-4``) in its
manifest; a gallery uses one of them by name, or a threshold set by hand
(:data:`CUSTOM`). Thresholds are cosine similarities in [-1, 1]: a pair is
"same person" when its score >= threshold. The one definition of the value
type, its names and its checks, shared by the embedder, the registry and
the client.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from likeness.v1 import common_pb2

#: The name a gallery reports when its threshold is not one of the model's
#: operating points: set by hand at creation, or a gallery created before
#: operating points existed (its stored threshold is kept).
CUSTOM = "custom"

#: The operating point a gallery gets when none is named and the model
#: names no default of its own.
DEFAULT_NAME = "far-1e-3"


@dataclass(frozen=True)
class SourceRate:
    """What an operating point gives on one held-out source.

    ``tar``: fraction of the ``genuine_pairs`` (same-person pairs) scoring >=
    the threshold; ``far``: fraction of the ``impostor_pairs`` (sampled
    different-person pairs, drawn with repetition from the
    ``distinct_impostor_pairs`` the faces allow) scoring >= it; measured on
    ``faces`` faces of ``people`` people.
    """

    source: str
    tar: float
    far: float
    people: int
    faces: int
    genuine_pairs: int
    impostor_pairs: int
    distinct_impostor_pairs: int


@dataclass(frozen=True)
class OperatingPoint:
    """``name`` (e.g. "far-1e-3"), the target ``far`` it was calibrated at
    (0 for :data:`CUSTOM`: none), its ``threshold`` (cosine similarity), and
    what it gives per held-out source (``rates``; empty where unmeasured)."""

    name: str
    far: float
    threshold: float
    rates: tuple[SourceRate, ...] = field(default_factory=tuple)


def point_name(far: float) -> str:
    """The name of the point calibrated at ``far``: 1e-3 -> "far-1e-3"."""
    mantissa, exponent = f"{far:.0e}".split("e")
    return f"far-{mantissa}e{int(exponent)}"


def custom(threshold: float) -> OperatingPoint:
    """A threshold that is none of the model's operating points."""
    return OperatingPoint(CUSTOM, 0.0, threshold)


def find(points: Sequence[OperatingPoint], name: str) -> OperatingPoint | None:
    """The point called ``name``, or None."""
    return next((p for p in points if p.name == name), None)


def strictest(points: Sequence[OperatingPoint]) -> OperatingPoint | None:
    """The calibrated point with the lowest target FAR (:data:`CUSTOM`
    points have none), or None. Grouping a folder compares every pair of
    its faces, so it needs a far lower per-pair FAR than one verification:
    ``likeness cluster`` links faces at this point's threshold."""
    calibrated = [p for p in points if p.far > 0]
    return min(calibrated, key=lambda p: p.far) if calibrated else None


def check_points(points: Sequence[OperatingPoint], default: str) -> None:
    """Raise ValueError unless names are unique and not :data:`CUSTOM`,
    thresholds are finite and in [-1, 1], FARs in (0, 1], rates in [0, 1],
    and ``default`` names one of the points."""
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        raise ValueError(f"operating point names must be unique, got {names}")
    for p in points:
        if not p.name or p.name == CUSTOM:
            raise ValueError(f"operating point name {p.name!r} is reserved or empty")
        if not (math.isfinite(p.threshold) and -1.0 <= p.threshold <= 1.0):
            raise ValueError(f"operating point {p.name}: threshold {p.threshold} not in [-1, 1]")
        if not 0.0 < p.far <= 1.0:
            raise ValueError(f"operating point {p.name}: far {p.far} not in (0, 1]")
        for r in p.rates:
            if not (0.0 <= r.tar <= 1.0 and 0.0 <= r.far <= 1.0):
                raise ValueError(f"operating point {p.name}: rates of {r.source} not in [0, 1]")
    if find(points, default) is None:
        raise ValueError(f"default operating point {default!r} is not among {names}")


def point_to_dict(point: OperatingPoint) -> dict[str, Any]:
    """The JSON form of a point (as a manifest stores it)."""
    return {
        "name": point.name,
        "far": point.far,
        "threshold": point.threshold,
        "rates": [vars(r).copy() for r in point.rates],
    }


def point_from_dict(raw: Mapping[str, Any]) -> OperatingPoint:
    """The point of :func:`point_to_dict`; KeyError/TypeError/ValueError when malformed."""
    return OperatingPoint(
        name=str(raw["name"]),
        far=float(raw["far"]),
        threshold=float(raw["threshold"]),
        rates=tuple(_rate(r.__getitem__) for r in raw.get("rates", ())),
    )


def _rate(value: Callable[[str], Any]) -> SourceRate:
    """The :class:`SourceRate` whose fields are ``value(field name)``, cast to
    the field's type (a manifest's JSON or a likeness.v1.SourceRate)."""
    return SourceRate(
        source=str(value("source")),
        tar=float(value("tar")),
        far=float(value("far")),
        people=int(value("people")),
        faces=int(value("faces")),
        genuine_pairs=int(value("genuine_pairs")),
        impostor_pairs=int(value("impostor_pairs")),
        distinct_impostor_pairs=int(value("distinct_impostor_pairs")),
    )


def to_proto(point: OperatingPoint, rates: bool = True) -> common_pb2.OperatingPoint:
    """The likeness.v1.OperatingPoint of ``point`` (its rates only when ``rates``)."""
    return common_pb2.OperatingPoint(
        name=point.name,
        far=point.far,
        threshold=point.threshold,
        rates=[common_pb2.SourceRate(**vars(r)) for r in point.rates] if rates else [],
    )


def from_proto(msg: common_pb2.OperatingPoint) -> OperatingPoint:
    """The :class:`OperatingPoint` of a likeness.v1.OperatingPoint."""
    return OperatingPoint(
        name=msg.name,
        far=msg.far,
        threshold=msg.threshold,
        rates=tuple(_rate(functools.partial(getattr, r)) for r in msg.rates),
    )
