"""Calibration: the served threshold, chosen on the run's held-out training
people (never test people), with the test-time views the model will serve."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedder.model import InferenceViews
from trainer.config import TrainConfig
from trainer.data import FaceData, load_faces
from trainer.run import RunFolder


@dataclass(frozen=True)
class Calibration:
    """Thresholds (cosine similarity) at ``far`` on held-out training people;
    ours from faces embedded with the test-time views of ``tta_flip`` and
    ``tta_shift_px`` (embedder.model.InferenceViews)."""

    far: float
    threshold: float
    dlib_threshold: float
    validation_faces: int
    tta_shift_px: int = 0
    tta_flip: bool = True

    @property
    def views(self) -> InferenceViews:
        """The test-time views the threshold holds for."""
        return InferenceViews(flip=self.tta_flip, shift_px=self.tta_shift_px)

    @staticmethod
    def load(path: Path) -> Calibration:
        return Calibration(**json.loads(path.read_text()))


def run_model(run: RunFolder) -> tuple[Any, TrainConfig]:
    """The run's Keras network (final weights, else the last checkpoint's) and config."""
    from embedder.model import load_model

    cfg = TrainConfig.load(run.config)
    return load_model(cfg.model, run.weights()), cfg


def validation_faces(run: RunFolder, cfg: TrainConfig) -> FaceData:
    """The faces of the people the run held out of training."""
    return load_faces([Path(c) for c in cfg.caches]).subset(np.load(run.val_index))


def calibrate(run: RunFolder, views: InferenceViews, far: float, seed: int) -> Calibration:
    """Threshold of the run's model, embedding every face as ``views``, and
    of dlib-resnet at ``far`` on the run's validation people; saved in the
    run folder."""
    from trainer.embed import embed_views
    from trainer.evaluate import calibrate_threshold, unit

    model, cfg = run_model(run)
    val = validation_faces(run, cfg)
    emb = unit(embed_views(model, val, cfg.model.input_size, views))
    result = Calibration(
        far=far,
        threshold=calibrate_threshold(emb, val.person, far, seed),
        dlib_threshold=(
            calibrate_threshold(unit(val.teacher), val.person, far, seed)
            if val.teacher is not None
            else float("nan")
        ),
        validation_faces=len(val),
        tta_shift_px=views.shift_px,
        tta_flip=views.flip,
    )
    run.calibration.write_text(json.dumps(asdict(result), indent=2))
    return result
