"""Galleries: create (bound to the embedder's model and one of its
operating points), change the operating point, list, delete, count."""

from __future__ import annotations

import dataclasses
import math
import time

from likeness import errors
from likeness.operating_points import OperatingPoint, custom
from likeness.reasons import Reason
from server import _validate as check
from server.domain import (
    GalleryConfig,
    GalleryOptions,
    GalleryStats,
    ModelInfo,
)
from server.service._base import (
    ServiceBase,
    deadline_in,
    fingerprint_mismatch,
    gallery_not_found,
    seconds_left,
)

_MAX_ABS_YAW_DEG = 180.0


class Galleries(ServiceBase):
    """The gallery verbs of the registry service."""

    def create_gallery(
        self, name: str, options: GalleryOptions, timeout_s: float | None = None
    ) -> GalleryConfig:
        """Create a gallery bound to the embedder's current model.

        ``timeout_s`` (here and on every RPC that asks the embedder): what is
        left of the client's deadline, seconds (None: no deadline); each
        embedder call waits at most that long (and at most its own timeout).
        """
        deadline = deadline_in(timeout_s)
        name = check.gallery_name(name, field="name")
        threshold = (
            None if options.threshold is None else check.score(options.threshold, "threshold")
        )
        if threshold is not None and options.operating_point:
            raise errors.InvalidArgument(
                "threshold and operating_point: set one (a threshold set by hand is the"
                " operating point 'custom')"
            )
        gates = {
            "min_face_size_px": options.min_face_size_px,
            "min_sharpness": options.min_sharpness,
            "max_abs_yaw_deg": options.max_abs_yaw_deg,
        }
        checked = {
            key: 0.0
            if value is None
            else check.non_negative(
                value, key, _MAX_ABS_YAW_DEG if key == "max_abs_yaw_deg" else math.inf
            )
            for key, value in gates.items()
        }
        for key in ("shard_number", "replication_factor", "write_consistency_factor"):
            if getattr(options, key) < 0:
                raise errors.InvalidArgument(f"{key}: must be >= 0 (0 = server default)")
        info = self._embedder.info(seconds_left(deadline))
        point = (
            custom(threshold)
            if threshold is not None
            else known_point(info, options.operating_point, "operating_point")
        )
        config = GalleryConfig(
            name=name,
            model_fingerprint=info.model_fingerprint,
            dim=info.dim,
            threshold=point.threshold,
            operating_point=point.name,
            operating_point_far=point.far,
            created_at=time.time(),
            min_face_size_px=checked["min_face_size_px"],
            min_sharpness=checked["min_sharpness"],
            max_abs_yaw_deg=checked["max_abs_yaw_deg"],
            shard_number=options.shard_number,
            replication_factor=options.replication_factor,
            write_consistency_factor=options.write_consistency_factor,
            gate_probes=options.gate_probes,
        )
        try:
            self._store.create_gallery(config)
        except errors.AlreadyExists:
            raise errors.AlreadyExists(f"gallery {name!r} already exists") from None
        return self._store.get_gallery(name)

    def update_gallery(
        self, name: str, operating_point: str, timeout_s: float | None = None
    ) -> GalleryConfig:
        """Move a gallery to another of its model's operating points (by
        name; required). NotFound for an unknown gallery, InvalidArgument
        (UNKNOWN_OPERATING_POINT) for an unknown point, FailedPrecondition
        (MODEL_MISMATCH) when the embedder serves another model than the
        gallery's. The faces stay as they are."""
        deadline = deadline_in(timeout_s)
        name = check.gallery_name(name, field="name")
        if not operating_point:
            raise errors.InvalidArgument("operating_point: required (one of the model's names)")
        config = self._existing_gallery(name)
        info = self._embedder.info(seconds_left(deadline))
        if info.model_fingerprint != config.model_fingerprint:
            raise fingerprint_mismatch(
                "embedder", info.model_fingerprint, config, config.model_fingerprint
            )
        point = known_point(info, operating_point, "operating_point")
        updated = dataclasses.replace(
            config,
            threshold=point.threshold,
            operating_point=point.name,
            operating_point_far=point.far,
        )
        try:
            self._store.update_gallery(updated)
        except errors.NotFound:
            raise gallery_not_found(name) from None
        return self._store.get_gallery(name)

    def list_galleries(self) -> list[GalleryConfig]:
        """Every gallery, by name."""
        return sorted(self._store.list_galleries(), key=lambda g: g.name)

    def delete_gallery(self, name: str) -> int:
        """Delete a gallery with all its faces; returns the number of faces."""
        name = check.gallery_name(name, field="name")
        try:
            return self._store.delete_gallery(name)
        except errors.NotFound:
            raise gallery_not_found(name) from None

    def stats(self, gallery: str) -> GalleryStats:
        config = self._existing_gallery(check.gallery_name(gallery))
        subjects, faces = self._store.counts(config.name)
        return GalleryStats(config, subjects, faces, self._store.backend)


def known_point(info: ModelInfo, name: str, field: str) -> OperatingPoint:
    """The model's operating point ``name`` ("" = its default); the
    UNKNOWN_OPERATING_POINT refusal (INVALID_ARGUMENT) naming ``field`` and
    the known names otherwise."""
    point = info.point(name)
    if point is None:
        known = ", ".join(info.point_names)
        raise errors.InvalidArgument(
            f"{field}: unknown operating point {name!r}; the model {info.model_fingerprint}"
            f" has {known}",
            reason=Reason.UNKNOWN_OPERATING_POINT,
            metadata={"value": name, "field": field, "known": ",".join(info.point_names)},
        )
    return point
