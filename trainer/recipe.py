"""The shipped model's training recipe, in one place: ``likeness train``'s
defaults and the loss ablation both read it. No heavy imports, so the CLI can
use it without loading TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """Training choices beyond the data (see trainer.train.TrainConfig for
    each field's meaning and units; ``template`` is the crop alignment
    template, embedder.align.TEMPLATES)."""

    steps: int
    triplet_weight: float
    distill_weight: float
    margin: float
    people_per_batch: int
    extra_per_batch: int
    learning_rate: float
    template: str
    freeze_backbone_bn: bool = False
    data_seed: int | None = None


#: likeness-mnv2-a035-112-v2: 3,600 steps of 160 faces (32 people x 2 for the
#: triplet term, 96 more for distillation), distillation-led.
SHIPPED = Recipe(
    steps=3600,
    triplet_weight=0.3,
    distill_weight=1.0,
    margin=0.2,
    people_per_batch=32,
    extra_per_batch=96,
    learning_rate=2e-3,
    template="dlib",
)
