"""Starting a run from another run's weights when the crop size differs.

Every weight of the network is independent of the crop size except the
kernel of the global depthwise head (``gdc``), which spans the backbone's
final feature grid: ceil(size / 32) cells a side, so 4x4 for 97-128 px and
5x5 for 129-160 px. Keras loads a weights file only into a network of the
same shapes, so a change of grid goes through a model of the source's size.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from embedder.model import ModelConfig, build_model

log = logging.getLogger(__name__)


def load_init_weights(
    model: Any, config: ModelConfig, weights: Path, source_config: ModelConfig | None
) -> None:
    """Load ``weights`` (a run's ``final.weights.h5``) into ``model``, built
    from ``config``. ``source_config`` is the network that wrote ``weights``
    (None: taken to be ``config``). When it was trained on crops of another
    size whose feature grid differs, every weight is copied as it is except the
    ``gdc`` kernel: each channel's kernel is resized bilinearly to the new
    grid and scaled by (old cells / new cells), so it pools the same regions
    of the face with the same overall gain; fine-tuning does the rest.
    Raises ValueError when the two networks differ in anything else."""
    if source_config is None or source_config.input_size == config.input_size:
        model.load_weights(str(weights))
        return
    if replace(source_config, input_size=config.input_size) != config:
        raise ValueError(
            f"{weights} is of a network {source_config}, which differs from {config} "
            "in more than the crop size"
        )
    source = build_model(source_config)
    source.load_weights(str(weights))
    resized = []
    for src, dst in zip(source.weights, model.weights, strict=True):
        value = np.asarray(src.numpy())
        if value.shape != tuple(dst.shape):
            if not dst.path.endswith("gdc/kernel"):
                raise ValueError(f"{dst.path}: {value.shape} does not fit {tuple(dst.shape)}")
            value = resize_gdc_kernel(value, int(dst.shape[0]))
            resized.append(dst.path)
        dst.assign(value)
    log.info(
        "weights moved across crop sizes",
        extra={"from": source_config.input_size, "to": config.input_size, "resized": resized},
    )


def resize_gdc_kernel(kernel: np.ndarray, side: int) -> np.ndarray:
    """A depthwise kernel (k, k, C, 1) resized to (side, side, C, 1):
    bilinear over the cell grid (half-pixel centres, as the feature map's
    cells), times k^2 / side^2 so a uniform feature map gives the same sum."""
    import tensorflow as tf

    k = kernel.shape[0]
    grid = np.transpose(kernel[..., 0], (2, 0, 1))[..., None]  # (C, k, k, 1)
    out = tf.image.resize(grid, (side, side), method="bilinear").numpy()
    out = np.transpose(out[..., 0], (1, 2, 0))[..., None] * (k * k) / (side * side)
    resized: np.ndarray = out.astype(kernel.dtype)
    return resized
