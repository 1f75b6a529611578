"""Training: triplet loss with online semi-hard mining (FaceNet) on P x K
batches, plus optional distillation from dlib-resnet descriptors and an
optional margin head over the labelled training people (trainer.margin_head).

Resumable: the run folder's checkpoint (trainer.run.RunFolder) holds
weights, optimizer state and the step; batches and augmentation are
functions of (seed, step), so a resumed run sees the same data it would have
seen uninterrupted.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedder.landmarks import NUM_LANDMARKS
from embedder.model import ModelConfig, build_model
from trainer.cache import cache_spec
from trainer.config import TEACHER_DIM, TrainConfig
from trainer.data import (
    BatchSampler,
    FaceData,
    centred_targets,
    check_no_forbidden,
    concat_faces,
    load_faces,
    rows_without_people,
    split_people,
    without_people,
)
from trainer.margin_head import class_index, head_classes, save_head, starting_centres
from trainer.network import freeze_backbone_batchnorm, load_imagenet_backbone
from trainer.run import RunFolder
from trainer.transfer import load_init_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Where a run left its files and how far it got."""

    run: RunFolder
    steps_done: int
    teacher_mean: np.ndarray | None
    history: list[dict[str, float]]


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``steps``."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


Progress = Callable[[int, int, dict[str, float]], None]


def train(
    cfg: TrainConfig,
    run: RunFolder,
    forbidden_people: Iterable[str] = (),
    progress: Progress | None = None,
    max_minutes: float | None = None,
    held_out_people: Iterable[str] = (),
) -> TrainResult:
    """Train (or resume) a model into ``run``; the final weights and the
    history are written when it finishes.

    ``forbidden_people``: names that must not appear in the data (LFW View 1
    test people); training refuses to start if any does. ``progress`` is
    called every 25 steps with (steps done, steps in all, the history row).
    ``max_minutes`` stops early (resumable) after that wall time.
    ``held_out_people``: test people whose faces are dropped from the caches
    before the split (so neither training nor validation sees them).
    """
    import keras
    import tensorflow as tf

    from trainer.augment import augment
    from trainer.losses import (
        distillation_loss,
        margin_head_loss,
        relation_loss,
        triplet_semi_hard_loss,
    )

    run.path.mkdir(parents=True, exist_ok=True)
    state_file = run.checkpoint_state
    if state_file.exists() and TrainConfig.load(run.config) != cfg:
        raise ValueError(f"{run.path} holds a run with another config; use a new folder")
    run.config.write_text(json.dumps(cfg.to_dict(), indent=2))

    check_caches_fit(cfg.model, cfg.caches + cfg.view_caches)
    test_people = set(held_out_people)
    cached = load_faces([Path(c) for c in cfg.caches])
    kept = rows_without_people(cached, test_people)
    data = cached if len(kept) == len(cached) else cached.subset(kept)
    del cached
    check_no_forbidden(data, forbidden_people)
    train_idx, val_idx = split_people(data, cfg.val_fraction, cfg.seed)
    if len(val_idx) and len(np.unique(data.person[val_idx])) < 2:
        raise ValueError("validation needs at least two people: raise val_fraction or set it to 0")
    train_data = data.subset(train_idx)
    # Rows of the caches as they are on disk (test people's faces included),
    # which is how calibration and validation read them back.
    np.save(run.val_index, kept[val_idx])
    # The mean of the source images alone: a second stage with views keeps the
    # first stage's targets for the same faces.
    teacher_mean = train_data.teacher.mean(axis=0) if train_data.teacher is not None else None
    if cfg.view_caches:
        views = without_people(load_faces([Path(c) for c in cfg.view_caches]), test_people)
        check_no_forbidden(views, forbidden_people)
        held_out = np.isin(views.person, data.person[val_idx])
        train_data = concat_faces([train_data, views.subset(np.flatnonzero(~held_out))])
    use_distill = cfg.distill_weight > 0
    use_relation = cfg.relation_weight > 0
    if (use_distill or use_relation) and train_data.teacher is None:
        raise ValueError("the distillation and relation terms need caches with teacher descriptors")
    if use_distill and cfg.model.dim != TEACHER_DIM:
        raise ValueError(f"distillation needs an embedding dim of {TEACHER_DIM} (the teacher's)")
    use_head = cfg.uses_margin_head
    # The head's classes: the labelled people of the training split only
    # (test people left before the split, validation people by it).
    classes = head_classes(train_data) if use_head else np.array([], dtype=str)
    if use_head and len(classes) < 2:
        raise ValueError("the margin head needs two or more labelled training people")
    face_class = (
        class_index(train_data.person, classes)
        if use_head
        else np.full(len(train_data), -1, np.int32)
    )
    targets = (
        centred_targets(train_data.teacher, teacher_mean)
        if train_data.teacher is not None and teacher_mean is not None
        else np.zeros((len(train_data), TEACHER_DIM), np.float32)
    )
    if teacher_mean is not None:
        np.save(run.teacher_mean, teacher_mean)
    data_seed = cfg.seed if cfg.data_seed is None else cfg.data_seed
    sampler = BatchSampler(
        train_data, cfg.people_per_batch, cfg.images_per_person, cfg.extra_per_batch, data_seed
    )
    log.info(
        "training data",
        extra={
            "faces": len(train_data),
            "triplet_people": sampler.people,
            "val_faces": len(val_idx),
        },
    )

    tf.keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg.model)
    resuming = state_file.exists()
    if cfg.init_weights and not resuming:
        init = Path(cfg.init_weights)
        # A run folder's config says which network, and so which crop size, wrote the weights.
        parent = RunFolder(init.parent)
        source = TrainConfig.load(parent.config).model if parent.config.exists() else None
        load_init_weights(model, cfg.model, init, source)
    elif cfg.imagenet_weights and not resuming:
        load_imagenet_backbone(model, Path(cfg.imagenet_weights))
    if cfg.freeze_backbone_bn:
        freeze_backbone_batchnorm(model)
    optimizer = tf.keras.optimizers.AdamW(
        learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    head = None
    trained = list(model.trainable_variables)
    if use_head:
        # A stage started from an earlier one keeps that stage's centres.
        parent_head = (
            RunFolder(Path(cfg.init_weights).parent).margin_head if cfg.init_weights else None
        )
        centres = starting_centres(classes, cfg.model.dim, cfg.seed, parent_head)
        head = keras.Variable(centres, trainable=True, name="margin_head_centres")
        # The loss normalises the centres: decay would only change their step size.
        optimizer.exclude_from_weight_decay(var_list=[head])
        trained.append(head)
    optimizer.build(trained)
    step0 = 0
    history: list[dict[str, float]] = []
    if resuming:
        step0, history = _load_checkpoint(run, model, optimizer, head)
        log.info("resumed", extra={"step": step0})

    size = cfg.model.input_size
    n_trip = cfg.people_per_batch * cfg.images_per_person
    batch_size = n_trip + cfg.extra_per_batch

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[
            tf.TensorSpec([batch_size, size, size, 3], tf.uint8),
            tf.TensorSpec([batch_size, NUM_LANDMARKS, 2], tf.float32),
            tf.TensorSpec([n_trip], tf.int32),
            tf.TensorSpec([batch_size], tf.int32),
            tf.TensorSpec([batch_size, TEACHER_DIM], tf.float32),
            tf.TensorSpec([2], tf.int32),
            tf.TensorSpec([], tf.float32),
        ]
    )
    def step_fn(
        crops: Any, marks: Any, labels: Any, people: Any, tgt: Any, seed: Any, lr: Any
    ) -> Any:
        images, points = augment(tf.cast(crops, tf.float32), marks, seed, size)
        points = (points / float(size)) * 2.0 - 1.0
        inputs = {"image": images, "landmarks": tf.reshape(points, [batch_size, -1])}
        with tf.GradientTape() as tape:
            emb = model(inputs, training=True)
            trip = triplet_semi_hard_loss(emb[:n_trip], labels, cfg.margin)
            dist = (
                distillation_loss(emb, tgt, tf.ones([batch_size]))
                if use_distill
                else tf.constant(0.0)
            )
            rel = relation_loss(emb, tgt) if use_relation else tf.constant(0.0)
            head_loss = (
                margin_head_loss(
                    emb, people, head, cfg.head_scale, cfg.head_margin, cfg.margin_head
                )
                if head is not None
                else tf.constant(0.0)
            )
            loss = (
                cfg.triplet_weight * trip
                + (cfg.distill_weight * dist if use_distill else 0.0)
                + (cfg.relation_weight * rel if use_relation else 0.0)
                + (cfg.head_weight * head_loss if head is not None else 0.0)
            )
        grads = tape.gradient(loss, trained)
        optimizer.learning_rate.assign(lr)
        optimizer.apply_gradients(zip(grads, trained, strict=True))
        return loss, trip, dist, rel, head_loss

    started = time.monotonic()
    window_t, window_n = time.monotonic(), 0
    step = step0
    for step in range(step0, cfg.steps):
        idx, labels = sampler.batch(step)
        loss, trip, dist, rel, head_loss = step_fn(
            train_data.crops[idx],
            train_data.landmarks[idx],
            labels.astype(np.int32),
            face_class[idx],
            targets[idx],
            np.array([data_seed, step], np.int32),
            np.float32(learning_rate(step, cfg)),
        )
        window_n += batch_size
        done = step + 1
        if done % 25 == 0 or done == cfg.steps:
            rate = window_n / max(1e-6, time.monotonic() - window_t)
            window_t, window_n = time.monotonic(), 0
            row = {
                "step": float(done),
                "loss": float(loss),
                "triplet": float(trip),
                "distill": float(dist),
                "relation": float(rel),
                "margin_head": float(head_loss),
                "lr": learning_rate(step, cfg),
                "images_per_s": rate,
            }
            if len(val_idx) and (done % cfg.eval_every == 0 or done == cfg.steps):
                row |= _validate(model, data.subset(val_idx), cfg)
            history.append(row)
            if progress:
                progress(done, cfg.steps, row)
        out_of_time = max_minutes is not None and time.monotonic() - started > max_minutes * 60
        if done % cfg.checkpoint_every == 0 or done == cfg.steps or out_of_time:
            _save_checkpoint(run, model, optimizer, done, history, head)
        if out_of_time:
            return TrainResult(run, done, teacher_mean, history)
    run.history.write_text(json.dumps(history, indent=1))
    if head is not None:
        # Beside the network, never in it: the export reads final_weights only.
        save_head(run.margin_head, classes, head.numpy())
    model.save_weights(str(run.final_weights))
    return TrainResult(run, cfg.steps if cfg.steps > step0 else step0, teacher_mean, history)


def check_caches_fit(model: ModelConfig, caches: Iterable[Path | str]) -> None:
    """Raise ValueError unless every cache holds crops of the model's size
    and alignment template (a model trained on other crops than it is
    served would silently lose accuracy)."""
    for cache in caches:
        spec = cache_spec(Path(cache))
        if (spec.size, spec.template) != (model.input_size, model.template):
            raise ValueError(
                f"cache {cache} holds {spec.size} px {spec.template!r} crops; the model takes "
                f"{model.input_size} px {model.template!r} crops: use another cache folder"
            )


def _save_checkpoint(
    run: RunFolder,
    model: Any,
    optimizer: Any,
    step: int,
    history: list[dict[str, float]],
    head: Any = None,
) -> None:
    # The step's files are written into a folder of their own, then one
    # rename of the pointer file switches to it: a run killed anywhere in
    # here resumes either the previous checkpoint or this one, never a mix.
    run.checkpoint.mkdir(parents=True, exist_ok=True)
    staging = run.checkpoint / f".staging-{step:08d}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    model.save_weights(str(staging / run.checkpoint_weights.name))
    if head is not None:
        np.save(staging / run.checkpoint_margin_head.name, head.numpy())
    np.savez(
        staging / run.checkpoint_optimizer.name,
        **{f"v{i}": v.numpy() for i, v in enumerate(optimizer.variables)},
        **{f"rng{i}": v.numpy() for i, v in enumerate(_rng_states(model))},
    )
    (staging / run.checkpoint_state.name).write_text(json.dumps({"step": step, "history": history}))
    folder = run.checkpoint_step(step)
    if folder.exists() and folder != run.current_checkpoint:
        shutil.rmtree(folder)
    if not folder.exists():
        staging.rename(folder)
    else:  # re-saving the current step (a resume that stopped at once): swap via a new name
        folder = run.checkpoint / f"{folder.name}-{os.getpid()}-{time.monotonic_ns()}"
        staging.rename(folder)
    pointer_tmp = run.checkpoint_pointer.with_suffix(".tmp")
    with pointer_tmp.open("w") as f:
        f.write(folder.name)
        f.flush()
        os.fsync(f.fileno())
    pointer_tmp.replace(run.checkpoint_pointer)
    for old in run.checkpoint.iterdir():
        if old.is_dir() and old != folder:
            shutil.rmtree(old, ignore_errors=True)
    for legacy in ("model.weights.h5", "optimizer.npz", "state.json"):
        (run.checkpoint / legacy).unlink(missing_ok=True)


def _load_checkpoint(
    run: RunFolder, model: Any, optimizer: Any, head: Any = None
) -> tuple[int, list[Any]]:
    """Load the current checkpoint into ``model``, ``optimizer`` and the
    margin head's centres (``head``, when the stage has one); returns (steps
    done, history so far)."""
    folder = run.current_checkpoint
    state = json.loads((folder / run.checkpoint_state.name).read_text())
    model.load_weights(str(folder / run.checkpoint_weights.name))
    if head is not None:
        head.assign(np.load(folder / run.checkpoint_margin_head.name))
    opt_state = np.load(folder / run.checkpoint_optimizer.name)
    for i, var in enumerate(optimizer.variables):
        var.assign(opt_state[f"v{i}"])
    # Checkpoints written before the dropout RNG state was saved lack it.
    for i, var in enumerate(_rng_states(model)):
        if f"rng{i}" in opt_state:
            var.assign(opt_state[f"rng{i}"])
    return int(state["step"]), list(state["history"])


def _rng_states(model: Any) -> list[Any]:
    """The model's random-generator states (dropout seeds): variables that
    ``save_weights`` leaves out but a bit-exact resume needs."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def _validate(model: Any, val: FaceData, cfg: TrainConfig) -> dict[str, float]:
    """Pair accuracy and AUC of the held-out faces, pooled ("val_accuracy",
    "val_auc") and, when they come from two or more sources, per source
    ("val_accuracy/<cache>", "val_auc/<cache>"; within-source pairs, a
    source whose faces make no same-person pair is left out)."""
    from trainer.embed import embed_faces
    from trainer.metrics import best_accuracy, roc_auc, sample_pairs

    emb = embed_faces(model, val, cfg.model.input_size)

    def figures(rows: np.ndarray, suffix: str) -> dict[str, float]:
        a, b, same = sample_pairs(val.person[rows], n_different=3000, seed=cfg.seed)
        if not same.any():
            return {}
        scores = np.sum(emb[rows[a]] * emb[rows[b]], axis=1)
        return {
            f"val_accuracy{suffix}": best_accuracy(scores, same)[0],
            f"val_auc{suffix}": roc_auc(scores, same),
        }

    row = figures(np.arange(len(val)), "")
    sources = np.unique(val.source) if val.source is not None else np.array([], dtype=str)
    for name in sources.tolist() if len(sources) > 1 else []:
        assert val.source is not None
        rows = np.flatnonzero(val.source == name)
        if len(np.unique(val.person[rows])) >= 2:
            row |= figures(rows, f"/{name}")
    return row
