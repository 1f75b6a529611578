"""Galleries: create (bound to the embedder's model), list, delete, count."""

from __future__ import annotations

import math
import time

from likeness import errors
from server import _validate as check
from server.domain import (
    GalleryConfig,
    GalleryOptions,
    GalleryStats,
)
from server.service._base import (
    ServiceBase,
    deadline_in,
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
        config = GalleryConfig(
            name=name,
            model_fingerprint=info.model_fingerprint,
            dim=info.dim,
            threshold=info.default_threshold if threshold is None else threshold,
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
