"""The one configuration of a training stage, from the recipe file
(trainer.recipe) to the training loop (trainer.train) and the run folder's
``config.json``. No heavy imports: the CLI reads it without TensorFlow."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from embedder.model import ModelConfig

#: Length of dlib-resnet's descriptor, the distillation target: a distilled
#: network's embedding must have as many dimensions.
TEACHER_DIM = 128


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
