"""The shipped model's training recipe, in one place: ``likeness train``'s
defaults and the loss ablation both read it. No heavy imports, so the CLI can
use it without loading TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass, replace

#: Length of dlib-resnet's descriptor, the distillation target: a distilled
#: network's embedding must have as many dimensions.
TEACHER_DIM = 128


@dataclass(frozen=True)
class Recipe:
    """Training choices beyond the data (see trainer.train.TrainConfig for
    each field's meaning and units; ``template`` is the crop alignment
    template, embedder.align.TEMPLATES; ``views`` is how many seeded views
    of every training image, teacher descriptors included, join the data:
    trainer.views, seeds ``first_view_seed`` ... ``first_view_seed + views - 1``;
    ``alpha``, ``input_size`` (crop side, pixels) and ``dim`` are the
    network's, embedder.model.ModelConfig)."""

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
    views: int = 0
    first_view_seed: int = 1
    alpha: float = 0.35
    input_size: int = 112
    dim: int = 128
    relation_weight: float = 0.0


#: Stage 1 of likeness-mnv2-a035-112-v3 and -v4 (all of v2): 3,600 steps of 160
#: faces (32 people x 2 for the triplet term, 96 more for distillation) from
#: ImageNet weights, distillation-led.
BASE = Recipe(
    steps=3600,
    triplet_weight=0.3,
    distill_weight=1.0,
    margin=0.2,
    people_per_batch=32,
    extra_per_batch=96,
    learning_rate=2e-3,
    template="dlib",
)

#: Stage 2 of v3: 4,000 more steps from BASE's final weights at half the
#: learning rate, the backbone's BatchNorm frozen (about 2x faster on a CPU),
#: new batches, the same held-out people. v3 ships the mean of the two stages'
#: final weights (``likeness average``).
FINETUNE = replace(BASE, steps=4000, learning_rate=1e-3, freeze_backbone_bn=True, data_seed=1235)

#: Stage 3, shipped as likeness-mnv2-a035-112-v4 (and, served with 10
#: test-time views, as -v4-tta10, until -128-v5-tta10): FINETUNE's schedule for
#: 3,500 steps from v3's averaged weights, with two seeded views of every
#: training image (mirrored, degraded, alignment jittered) and the teacher's
#: descriptors of those views joining the data (trainer.views).
VIEWS = replace(FINETUNE, steps=3500, data_seed=1238, views=2)

#: Stage 4, shipped as likeness-mnv2-a035-128-v5-tta10 (10 test-time views)
#: until -128-v6-tta10:
#: VIEWS's schedule from stage 3's weights on crops aligned at 128 px instead
#: of 112 (the same network: its global depthwise head sees 4x4 cells at both
#: sizes, so stage 3's weights load unchanged), with new batches. Its caches
#: hold 128 px crops, so they live in their own --cache-dir.
VIEWS_128 = replace(VIEWS, data_seed=1241, input_size=128)

#: Stage 8, shipped as likeness-mnv2-a035-128-v6-tta10 (10 test-time views):
#: 2,000 steps from stage 4's final weights with new batches and the
#: pairwise-similarity distillation term (trainer.losses.relation_loss) at
#: weight 10, which puts it on a par with the distillation term at the start.
RELATION_128 = replace(VIEWS_128, steps=2000, data_seed=1245, relation_weight=10.0)
