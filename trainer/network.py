"""What only training does to the network of embedder.model: find its
MobileNetV2 backbone, fill it with ImageNet weights, freeze its BatchNorm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def backbone(model: Any) -> Any:
    """The MobileNetV2 sub-model inside a model from embedder.model.build_model."""
    return next(layer for layer in model.layers if layer.name.startswith("mobilenetv2"))


def freeze_backbone_batchnorm(model: Any) -> None:
    """Keras runs a non-trainable BatchNormalization layer in inference mode,
    even under ``training=True``: it keeps its moving statistics and scale."""
    import keras

    for layer in backbone(model).layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def load_imagenet_backbone(model: Any, npz_path: Path) -> int:
    """Copy Keras-named MobileNetV2 ImageNet weights (``Conv1/kernel``, ...)
    from an .npz into the backbone of ``model``; returns how many arrays
    were loaded (every backbone variable). Raises ValueError when the file
    does not fill the backbone, as when it holds another alpha: a partly
    pretrained backbone would train on silently."""
    weights = np.load(npz_path)
    loaded, missing, misfit = 0, [], []
    for layer in backbone(model).layers:
        for variable in layer.weights:
            # Keras 2 named depthwise kernels "depthwise_kernel"; Keras 3 "kernel".
            keys = [f"{layer.name}/{n}" for n in (variable.name, f"depthwise_{variable.name}")]
            key = next((k for k in keys if k in weights), None)
            if key is None:
                missing.append(keys[0])
            elif tuple(weights[key].shape) != tuple(variable.shape):
                misfit.append(f"{key} {weights[key].shape} != {tuple(variable.shape)}")
            else:
                variable.assign(weights[key])
                loaded += 1
    if misfit:
        raise ValueError(
            f"{npz_path} does not fit this backbone (another alpha?): {len(misfit)} arrays"
            f" of other shapes, e.g. {misfit[0]}"
        )
    if missing:
        raise ValueError(
            f"{npz_path} lacks {len(missing)} of the backbone's arrays, e.g. {missing[0]}"
        )
    return loaded
