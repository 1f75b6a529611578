"""The one configuration of a training stage, from the recipe file
(trainer.recipe) to the training loop (trainer.train) and the run folder's
``config.json``. No heavy imports: the CLI reads it without TensorFlow."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from embedder.model import ModelConfig

#: Length of dlib-resnet's descriptor, the distillation target: a distilled
#: network's embedding must have as many dimensions.
TEACHER_DIM = 128

#: Margin-head kinds (trainer.losses.margin_head_loss); "none" = no head.
MARGIN_HEADS = ("none", "cosface", "arcface")

#: Stage keys that only choose loss terms: the arms of an ablation
#: (trainer.recipe) may set these and nothing else, so every arm trains on
#: the same data, batches, steps and schedule (an equal budget).
LOSS_KEYS = frozenset(
    {
        "triplet_weight",
        "distill_weight",
        "relation_weight",
        "margin_head",
        "head_margin",
        "head_scale",
        "head_weight",
    }
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training stage (saved with the run).

    Resolved by the recipe from its sources and stages (never keys of a
    stage table): ``caches`` (face caches trained on, trainer.cache),
    ``view_caches`` (seeded views of the training images with the teacher's
    descriptors of those views, trainer.views; they join the training data
    after the split, their held-out people's faces dropped), ``model`` (the
    network), ``imagenet_weights`` (Keras-named MobileNetV2 .npz) or
    ``init_weights`` (an earlier stage's final weights; of another crop size
    is fine, trainer.transfer), or neither (random initialisation).

    Declared by the recipe, each a key of a stage table: ``steps``;
    ``people_per_batch`` x ``images_per_person`` faces for the triplet term
    plus ``extra_per_batch`` faces for distillation per batch; ``margin`` in
    squared unit-sphere distance (2 - 2 cos); loss weights (0 switches a
    term off): ``triplet_weight`` (the core objective), ``distill_weight``
    (1 - cos to the centred dlib descriptor of the same image),
    ``relation_weight`` (trainer.losses.relation_loss: the batch's pairwise
    cosines against the centred teacher's); ``learning_rate`` (peak: linear
    warm-up over ``warmup_steps``, then cosine decay to 0), AdamW
    ``weight_decay``; ``val_fraction`` of the labelled people held out,
    chosen by ``seed``; ``data_seed`` seeds batches and augmentation (None:
    ``seed``; the split stays ``seed``'s so every stage holds out the same
    people); ``freeze_backbone_bn`` keeps the backbone's BatchNorm on its
    moving statistics (about 2x faster on a CPU; for fine-tuning);
    ``checkpoint_every`` and ``eval_every`` in steps.

    The optional margin head (trainer.margin_head, training only, never
    exported): ``margin_head`` "cosface" or "arcface" ("none": off), one
    trainable centre per labelled training person; logits ``head_scale`` x
    cosine, the true class's made harder by ``head_margin`` (cosine units for
    CosFace, radians for ArcFace); its cross-entropy joins the loss with
    weight ``head_weight``. :func:`margin_head_problem` states the valid
    values.
    """

    caches: tuple[str, ...]
    model: ModelConfig
    imagenet_weights: str | None
    init_weights: str | None
    freeze_backbone_bn: bool
    steps: int
    people_per_batch: int
    images_per_person: int
    extra_per_batch: int
    margin: float
    triplet_weight: float
    distill_weight: float
    relation_weight: float
    learning_rate: float
    warmup_steps: int
    weight_decay: float
    val_fraction: float
    seed: int
    checkpoint_every: int
    eval_every: int
    view_caches: tuple[str, ...] = ()
    data_seed: int | None = None
    margin_head: str = "none"
    head_margin: float = 0.35
    head_scale: float = 30.0
    head_weight: float = 1.0

    def __post_init__(self) -> None:
        problem = margin_head_problem(asdict(self))
        if problem:
            raise ValueError(problem)

    @property
    def uses_margin_head(self) -> bool:
        return self.margin_head != "none"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["caches"] = list(self.caches)
        d["view_caches"] = list(self.view_caches)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["caches"] = tuple(d["caches"])
        d["view_caches"] = tuple(d.get("view_caches", ()))
        d["model"] = ModelConfig.from_dict(d["model"])
        return TrainConfig(**d)

    @staticmethod
    def load(path: Path) -> TrainConfig:
        """The config saved at ``path`` (a run folder's config file)."""
        return TrainConfig.from_dict(json.loads(path.read_text()))


#: Fields the recipe resolves from its sources and stage order; every other
#: field of TrainConfig is a key of a stage table.
RESOLVED = frozenset({"caches", "view_caches", "model", "imagenet_weights", "init_weights"})


def declared_fields() -> dict[str, bool]:
    """Stage-table keys (TrainConfig's declared fields) -> whether required."""
    return {f.name: f.default is MISSING for f in fields(TrainConfig) if f.name not in RESOLVED}


def optional_defaults() -> dict[str, Any]:
    """The optional stage keys (TrainConfig fields with a default) -> default."""
    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def margin_head_problem(settings: Mapping[str, Any]) -> str | None:
    """What is wrong with the margin-head keys of ``settings`` (a stage's
    keys; missing ones take TrainConfig's defaults), or None. ``margin_head``
    must be one of :data:`MARGIN_HEADS`; with a head on, ``head_weight`` and
    ``head_scale`` must be above 0, and ``head_margin`` at least 0 and below
    1 (CosFace, a cosine) or below pi/2 (ArcFace, radians)."""
    value = {**optional_defaults(), **settings}
    kind = value["margin_head"]
    if kind not in MARGIN_HEADS:
        return f"margin_head {kind!r} is not one of {', '.join(MARGIN_HEADS)}"
    if kind == "none":
        return None
    weight, scale, margin = (float(value[k]) for k in ("head_weight", "head_scale", "head_margin"))
    if not weight > 0:
        return (
            f"head_weight must be above 0 with a margin head (got {weight:g});"
            ' margin_head = "none" turns the head off'
        )
    if not scale > 0:
        return f"head_scale must be above 0 (got {scale:g})"
    top, unit = (1.0, "a cosine") if kind == "cosface" else (math.pi / 2, "radians")
    if not 0 <= margin < top:
        return (
            f"head_margin of {kind} must be at least 0 and below {top:.4g} ({unit}; got {margin:g})"
        )
    return None
