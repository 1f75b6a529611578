"""The trainer end to end on the 30 committed LFW images (10 people x 3):
cache -> train -> resume -> export -> serve, and a tiny recipe built with
``likeness-train build``'s code, killed mid-stage and resumed.

One small run (32 px crops, 75 steps) is shared by the module. While it runs,
its folder is copied at step 25 (the last checkpoint is step 20), which is
what a run killed at that moment leaves behind; that copy is then resumed and
must end exactly where the uninterrupted run ended.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from embedder.backends import MobileNetBackend, Runtime
from embedder.landmarks import flip_landmarks
from embedder.manifest import Manifest
from embedder.model import (
    InferenceViews,
    ModelConfig,
    build_model,
    load_model,
    model_inputs,
)
from likeness.errors import FailedPrecondition
from trainer.average import average_runs, comparable_runs
from trainer.build import Build, dry_run, run_build
from trainer.cache import (
    CacheSpec,
    build_cache,
    cache_paths,
    cache_spec,
    list_images,
    load_cache,
)
from trainer.calibrate import Calibration
from trainer.config import TrainConfig
from trainer.data import (
    BatchSampler,
    FaceData,
    centred_targets,
    check_no_forbidden,
    load_faces,
    split_people,
)
from trainer.embed import embed_views
from trainer.export import add_litert, export_model, export_run
from trainer.losses import (
    distillation_loss,
    margin_head_loss,
    relation_loss,
    triplet_semi_hard_loss,
)
from trainer.margin_head import class_index, initial_centres, load_head
from trainer.model_card import run_card
from trainer.network import backbone, load_imagenet_backbone
from trainer.recipe import load_recipe
from trainer.run import BuildFolder, RunFolder
from trainer.selection import validate
from trainer.sources import data_report, stage_caches
from trainer.train import TrainResult, train
from trainer.transfer import load_init_weights, resize_gdc_kernel
from trainer.validate import paired_table

pytestmark = [
    pytest.mark.slow,
    # Keras' own numpy-2 deprecation notice, thousands of times per weights file.
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
]

LFW = Path(__file__).resolve().parent / "data" / "lfw"
SIZE = 32
NO_TTA = InferenceViews(flip=False)
PEOPLE = 10
KILL_AT = 25  # progress reports come every 25 steps
CHECKPOINT_EVERY = 10


@dataclass(frozen=True)
class Runs:
    cfg: TrainConfig
    data: FaceData
    full: TrainResult
    resumed: TrainResult
    resumed_from: list[int]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed images as identity folders, plus one undecodable file."""
    root = tmp_path_factory.mktemp("lfw")
    for image in sorted(LFW.glob("*.jpg")):
        person = image.stem.rsplit("_", 1)[0]
        (root / person).mkdir(exist_ok=True)
        shutil.copyfile(image, root / person / image.name)
    (root / "Zz_Broken").mkdir()
    (root / "Zz_Broken" / "Zz_Broken_0001.jpg").write_bytes(b"not a jpeg")
    (root / "Zz_Broken" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def cache(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cache")
    items = list_images(dataset, labelled=True)
    build_cache(
        items, out, CacheSpec(size=SIZE, teacher=True), workers=1, shard_size=16, progress=False
    )
    return out


@pytest.fixture(scope="module")
def view_cache(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("views")
    spec = CacheSpec(size=SIZE, teacher=True, view_seed=1)
    build_cache(
        list_images(dataset, labelled=True), out, spec, workers=1, shard_size=16, progress=False
    )
    return out


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def runs(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    cfg = TrainConfig(
        caches=(str(cache),),
        model=ModelConfig(alpha=0.35, input_size=SIZE, dim=128),
        imagenet_weights=None,
        init_weights=None,
        freeze_backbone_bn=False,
        steps=75,
        people_per_batch=PEOPLE,
        images_per_person=3,
        extra_per_batch=0,
        margin=0.2,
        triplet_weight=1.0,
        distill_weight=1.0,
        relation_weight=0.0,
        learning_rate=1e-2,
        warmup_steps=5,
        weight_decay=5e-5,
        val_fraction=0.0,
        seed=1234,
        checkpoint_every=CHECKPOINT_EVERY,
        eval_every=1000,
    )
    full_dir = tmp_path_factory.mktemp("run") / "full"
    killed_dir = full_dir.parent / "killed"

    def snapshot(done: int, total: int, row: dict[str, float]) -> None:
        if done == KILL_AT and not killed_dir.exists():
            shutil.copytree(full_dir, killed_dir)

    full = train(cfg, RunFolder(full_dir), progress=snapshot)
    logger = logging.getLogger("trainer.train")
    handler, level = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        resumed = train(cfg, RunFolder(killed_dir))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    resumed_from = [
        int(getattr(r, "step", -1)) for r in handler.records if r.getMessage() == "resumed"
    ]
    return Runs(cfg, load_faces([cache]), full, resumed, resumed_from)


def _objective(model: Any, data: FaceData, margin: float) -> tuple[float, float]:
    """(triplet, distillation) loss over every cached face as training sees
    it (batch statistics: 75 steps barely move the moving averages), without
    augmentation and, for a noise-free comparison, without dropout."""
    assert data.teacher is not None
    model.get_layer("gdc_dropout").rate = 0.0
    labels = np.unique(data.person, return_inverse=True)[1]
    targets = centred_targets(data.teacher, data.teacher.mean(axis=0))
    emb = model(model_inputs(data.crops, data.landmarks, SIZE), training=True)
    return (
        float(triplet_semi_hard_loss(emb, labels, margin)),
        float(distillation_loss(emb, targets, tf.ones([len(data)]))),
    )


def test_list_images_reads_identity_folders_and_excludes_people(dataset: Path) -> None:
    items = list_images(dataset, labelled=True, exclude_people={"Emma_Watson", "Zz_Broken"})
    people = [person for person, _ in items]
    assert len(items) == 27 and "Emma_Watson" not in people
    assert all(path.parent.name == person for person, path in items)
    assert len(list_images(dataset / "Rick_Perry", labelled=False)) == 3


def test_cache_holds_aligned_faces_landmarks_and_teacher(cache: Path, dataset: Path) -> None:
    faces = load_cache(cache)
    assert faces["crop"].shape == (30, SIZE, SIZE, 3) and faces["crop"].dtype == np.uint8
    assert faces["landmarks"].shape == (30, 68, 2)
    # Aligned: the eyes and mouth sit well inside the crop.
    inner = faces["landmarks"][:, 36:68]
    assert inner.min() > 0 and inner.max() < SIZE
    assert faces["teacher"].shape == (30, 128) and np.isfinite(faces["teacher"]).all()
    people, counts = np.unique(faces["person"], return_counts=True)
    assert len(people) == PEOPLE and (counts == 3).all()
    assert faces["detected"].all()
    skipped = (cache / "skipped.txt").read_text().split()
    assert skipped == [str(dataset / "Zz_Broken" / "Zz_Broken_0001.jpg")]


def test_cache_rebuild_only_redoes_missing_shards(cache: Path, dataset: Path) -> None:
    before = load_cache(cache)
    shards = sorted(cache.glob("shard-*.npz"))
    assert len(shards) == 2  # 31 images in shards of 16
    kept = shards[0].stat().st_mtime_ns
    shards[1].unlink()
    build_cache(
        list_images(dataset, labelled=True),
        cache,
        CacheSpec(size=SIZE, teacher=True),
        workers=1,
        shard_size=16,
        progress=False,
    )
    assert shards[0].stat().st_mtime_ns == kept
    after = load_cache(cache)
    assert after.keys() == before.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def test_a_shard_left_half_written_by_a_killed_build_is_not_read(
    cache: Path, tmp_path: Path
) -> None:
    killed = tmp_path / "killed"
    shutil.copytree(cache, killed)
    (killed / "shard-00002.tmp.npz").write_bytes(b"PK\x03\x04 truncated")
    before, after = load_cache(cache), load_cache(killed)
    assert after.keys() == before.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
    np.testing.assert_array_equal(cache_paths(killed), before["path"])


def test_a_cache_of_another_spec_is_refused_and_left_intact(cache: Path, dataset: Path) -> None:
    before = sorted(p.name for p in cache.iterdir())
    with pytest.raises(ValueError, match="cache built with"):
        build_cache(
            list_images(dataset, labelled=True),
            cache,
            CacheSpec(size=SIZE, teacher=True, template="dlib"),
            workers=1,
            shard_size=16,
            progress=False,
        )
    assert sorted(p.name for p in cache.iterdir()) == before
    assert json.loads((cache / "spec.json").read_text())["template"] == "arcface"


def test_a_view_cache_holds_the_same_faces_seen_anew_with_their_own_teacher(
    cache: Path, view_cache: Path
) -> None:
    clean, views = load_cache(cache), load_cache(view_cache)
    np.testing.assert_array_equal(views["path"], clean["path"])
    np.testing.assert_array_equal(views["person"], clean["person"])
    assert views["crop"].shape == clean["crop"].shape
    # Every view's alignment is jittered, so no crop is the clean one.
    assert all(not np.array_equal(a, b) for a, b in zip(views["crop"], clean["crop"], strict=True))
    inner = views["landmarks"][:, 36:68]
    assert inner.min() > 0 and inner.max() < SIZE
    # The teacher looked at the view itself: its descriptor moved, but dlib
    # still takes it for the same person (Euclidean distance under 0.6).
    moved = np.linalg.norm(views["teacher"] - clean["teacher"], axis=1)
    assert (moved > 1e-3).all() and (moved < 0.6).all(), moved


@pytest.fixture(scope="module")
def cache_2x(cache: Path, dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The faces of ``cache`` at twice the crop size, teachers borrowed from it."""
    out = tmp_path_factory.mktemp("cache2x")
    spec = CacheSpec(size=2 * SIZE, teacher=True)
    items = list_images(dataset, labelled=True)
    build_cache(items, out, spec, workers=1, shard_size=16, progress=False, teacher_from=cache)
    return out


def test_a_cache_at_another_size_borrows_the_teacher_descriptors_of_the_same_faces(
    cache: Path, cache_2x: Path, dataset: Path, tmp_path: Path
) -> None:
    items = list_images(dataset, labelled=True)
    spec = CacheSpec(size=2 * SIZE, teacher=True)
    fresh = tmp_path / "fresh"
    build_cache(items, fresh, spec, workers=1, shard_size=16, progress=False)
    small, computed, lent = load_cache(cache), load_cache(fresh), load_cache(cache_2x)
    # What borrowing rests on: dlib's descriptor does not depend on our crop size.
    np.testing.assert_allclose(computed["teacher"], small["teacher"], atol=1e-6)
    for key in computed:
        np.testing.assert_array_equal(lent[key], computed[key], err_msg=key)
    assert lent["crop"].shape[1:3] == (2 * SIZE, 2 * SIZE)
    # Descriptors are copied, not recomputed: a marked donor's marks come
    # through; the faces the donor lacks (its second shard) are computed.
    marked = tmp_path / "marked"
    shutil.copytree(cache, marked)
    (marked / "shard-00001.npz").unlink()
    with np.load(marked / "shard-00000.npz") as npz:
        arrays = dict(npz)
    arrays["teacher"] = arrays["teacher"] + 1.0
    np.savez(marked / "shard-00000.npz", **arrays)  # type: ignore[arg-type]
    copied = tmp_path / "copied"
    build_cache(items, copied, spec, workers=1, shard_size=16, progress=False, teacher_from=marked)
    teacher, lent_rows = load_cache(copied)["teacher"], len(arrays["teacher"])
    np.testing.assert_array_equal(teacher[:lent_rows], small["teacher"][:lent_rows] + 1.0)
    np.testing.assert_allclose(teacher[lent_rows:], small["teacher"][lent_rows:], atol=1e-6)
    assert 0 < lent_rows < len(teacher)


def test_a_teacher_donor_of_another_spec_is_refused_before_anything_is_written(
    cache: Path, view_cache: Path, dataset: Path, tmp_path: Path
) -> None:
    items = list_images(dataset, labelled=True)
    for spec, donor in [
        (CacheSpec(size=2 * SIZE, teacher=True, template="dlib"), cache),
        (CacheSpec(size=2 * SIZE, teacher=True), view_cache),
        (CacheSpec(size=2 * SIZE, teacher=False), cache),
    ]:
        out = tmp_path / "out"
        with pytest.raises(ValueError, match="no teacher for"):
            build_cache(items, out, spec, workers=1, progress=False, teacher_from=donor)
        assert not out.exists()


def test_a_gdc_kernel_resized_to_another_grid_pools_the_same_regions_with_the_same_gain() -> None:
    rng = np.random.default_rng(0)
    uniform = np.full((4, 4, 3, 1), 0.5, np.float32)
    np.testing.assert_allclose(resize_gdc_kernel(uniform, 5), np.full((5, 5, 3, 1), 0.32), 1e-6)
    corner = rng.uniform(0, 0.1, (4, 4, 3, 1)).astype(np.float32)
    corner[0, 0] = 1.0
    bigger = resize_gdc_kernel(corner, 5)
    assert bigger.shape == (5, 5, 3, 1)
    for channel in range(3):
        cells, old = bigger[..., channel, 0], corner[..., channel, 0]
        assert np.unravel_index(cells.argmax(), cells.shape) == (0, 0)
        assert abs(cells.sum() - old.sum()) < 0.1 * old.sum()


def test_a_stage_at_another_crop_size_starts_from_the_given_weights(
    runs: Runs, cache_2x: Path, tmp_path: Path
) -> None:
    """A 32 px network's head pools a 1x1 feature grid, a 64 px one's 2x2:
    each of the four cells takes a quarter of the old weight, and every
    other weight moves over as it is (learning rate 0)."""
    init = runs.full.run.final_weights
    bigger = replace(runs.cfg.model, input_size=2 * SIZE)
    stage = replace(
        runs.cfg,
        caches=(str(cache_2x),),
        model=bigger,
        init_weights=str(init),
        freeze_backbone_bn=True,
        steps=3,
        learning_rate=0.0,
    )
    result = train(stage, RunFolder(tmp_path / "stage"))
    before = load_model(runs.cfg.model, init)
    after = load_model(bigger, result.run.final_weights)
    gdc = [i for i, w in enumerate(before.weights) if w.path.endswith("gdc/kernel")]
    assert len(gdc) == 1
    for i, (a, b) in enumerate(zip(before.weights, after.weights, strict=True)):
        if i in gdc:
            assert b.shape == (2, 2, *a.shape[2:])
            np.testing.assert_allclose(b.numpy(), np.broadcast_to(a.numpy() / 4, b.shape))
        elif "moving" not in a.path:
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    wider = replace(bigger, alpha=0.5)
    with pytest.raises(ValueError, match="more than the crop size"):
        load_init_weights(build_model(wider), wider, init, runs.cfg.model)


def test_batches_are_people_by_images_and_a_function_of_the_step(cache: Path) -> None:
    data = load_faces([cache])
    sampler = BatchSampler(data, people=4, per_person=2, extra=3, seed=9)
    index, labels = sampler.batch(17)
    assert len(index) == 4 * 2 + 3 and labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    people = data.person[index[:8]]
    assert (people[0::2] == people[1::2]).all() and len(set(people.tolist())) == 4
    assert len(set(index[:8].tolist())) == 8
    again = sampler.batch(17)
    np.testing.assert_array_equal(index, again[0])
    assert not np.array_equal(index, sampler.batch(18)[0])
    with pytest.raises(ValueError, match="need 11"):
        BatchSampler(data, people=11, per_person=2, extra=0, seed=9)


def test_validation_people_are_held_out_whole(cache: Path) -> None:
    data = load_faces([cache])
    train_index, val_index = split_people(data, val_fraction=0.2, seed=3)
    assert len(train_index) + len(val_index) == len(data)
    held_out = set(data.person[val_index].tolist())
    assert len(held_out) == 2 and not held_out & set(data.person[train_index].tolist())
    np.testing.assert_array_equal(split_people(data, 0.2, seed=3)[1], val_index)


def test_training_lowers_the_loss(runs: Runs) -> None:
    cfg = runs.cfg
    tf.keras.utils.set_random_seed(cfg.seed)  # train() builds its first model so
    initial = _objective(build_model(cfg.model), runs.data, cfg.margin)
    final = _objective(load_model(cfg.model, runs.full.run.final_weights), runs.data, cfg.margin)
    assert final[0] < 0.75 * initial[0], (initial, final)
    assert final[1] < 0.9 * initial[1], (initial, final)
    history = runs.full.history
    assert [row["step"] for row in history] == [25.0, 50.0, 75.0]
    # One batch's loss is noisy (about 10% here); the objective above is the
    # firm check, the logged curve only has to go down.
    assert history[-1]["loss"] < history[0]["loss"], history
    assert runs.full.steps_done == 75
    assert runs.full.teacher_mean is not None and runs.data.teacher is not None
    np.testing.assert_allclose(runs.full.teacher_mean, runs.data.teacher.mean(axis=0), rtol=1e-5)


def test_a_killed_run_resumes_to_the_same_weights(runs: Runs) -> None:
    assert runs.resumed_from == [KILL_AT - KILL_AT % CHECKPOINT_EVERY]
    assert runs.resumed.steps_done == runs.full.steps_done
    assert [r["step"] for r in runs.resumed.history] == [r["step"] for r in runs.full.history]
    for a, b in zip(runs.resumed.history, runs.full.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    full = load_model(runs.cfg.model, runs.full.run.final_weights)
    resumed = load_model(runs.cfg.model, runs.resumed.run.final_weights)
    for a, b in zip(full.weights, resumed.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5, err_msg=a.path)


def test_the_relation_term_pulls_pairwise_cosines_towards_the_teachers(
    runs: Runs, tmp_path: Path
) -> None:
    """A stage with only the relation term on must bring the batch's pairwise
    cosines closer to the centred teacher's, and log the term."""
    assert runs.data.teacher is not None
    targets = tf.constant(centred_targets(runs.data.teacher, runs.data.teacher.mean(axis=0)))

    def relation(weights: Path) -> float:
        model = load_model(runs.cfg.model, weights)
        model.get_layer("gdc_dropout").rate = 0.0
        emb = model(model_inputs(runs.data.crops, runs.data.landmarks, SIZE), training=True)
        return float(relation_loss(emb, targets))

    init = runs.full.run.final_weights
    stage = replace(
        runs.cfg,
        init_weights=str(init),
        data_seed=runs.cfg.seed + 2,
        steps=50,
        triplet_weight=0.0,
        distill_weight=0.0,
        relation_weight=1.0,
    )
    result = train(stage, RunFolder(tmp_path / "stage"))
    before, after = relation(init), relation(result.run.final_weights)
    assert after < 0.6 * before, (before, after)
    assert all(row["relation"] > 0 and row["distill"] == 0 for row in result.history)


def _backbone_bn_statistics(model: Any) -> dict[str, np.ndarray]:
    return {
        v.path: v.numpy()
        for layer in backbone(model).layers
        if isinstance(layer, tf.keras.layers.BatchNormalization)
        for v in layer.weights
    }


@pytest.mark.parametrize("freeze", [True, False])
def test_a_fine_tuning_stage_starts_from_the_given_weights(
    runs: Runs, tmp_path: Path, freeze: bool
) -> None:
    """With a learning rate of 0 only BatchNorm moving statistics can move:
    the stage must start from the given weights, and with
    freeze_backbone_bn the backbone's statistics must stay as they were."""
    init = runs.full.run.final_weights
    stage = replace(
        runs.cfg,
        init_weights=str(init),
        freeze_backbone_bn=freeze,
        data_seed=runs.cfg.seed + 1,
        steps=5,
        learning_rate=0.0,
    )
    result = train(stage, RunFolder(tmp_path / "stage"))
    before = load_model(runs.cfg.model, init)
    after = load_model(runs.cfg.model, result.run.final_weights)
    bn_before, bn_after = _backbone_bn_statistics(before), _backbone_bn_statistics(after)
    moved = [k for k in bn_before if not np.array_equal(bn_before[k], bn_after[k])]
    assert bool(moved) != freeze, moved
    for a, b in zip(before.weights, after.weights, strict=True):
        if a.path not in bn_before and "moving" not in a.path:
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_averaging_two_runs_writes_the_mean_of_their_weights(runs: Runs, tmp_path: Path) -> None:
    first, second = runs.full.run, runs.resumed.run
    out = average_runs([first, second], RunFolder(tmp_path / "avg"))
    a, b = (
        load_model(runs.cfg.model, first.final_weights),
        load_model(runs.cfg.model, second.final_weights),
    )
    mean = load_model(runs.cfg.model, out.final_weights)
    for wa, wb, wm in zip(a.weights, b.weights, mean.weights, strict=True):
        np.testing.assert_allclose(wm.numpy(), (wa.numpy() + wb.numpy()) / 2, rtol=1e-6)
    assert out.config.read_text() == second.config.read_text()
    runs_read = json.loads(out.averaged_from.read_text())["runs"]
    assert runs_read == [str(first.path), str(second.path)]
    with pytest.raises(ValueError, match="already holds a run"):
        average_runs([first, second], out)


def test_averaging_refuses_runs_that_do_not_fit_together(runs: Runs, tmp_path: Path) -> None:
    first = runs.full.run
    avg = RunFolder(tmp_path / "avg")
    with pytest.raises(ValueError, match="at least two"):
        average_runs([first], RunFolder(tmp_path / "one"))
    unfinished = RunFolder(tmp_path / "unfinished")
    unfinished.path.mkdir()
    with pytest.raises(ValueError, match="not a finished run"):
        average_runs([first, unfinished], avg)
    other_split = RunFolder(tmp_path / "other-split")
    shutil.copytree(first.path, other_split.path)
    np.save(other_split.val_index, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="other validation people"):
        average_runs([first, other_split], avg)
    assert not (tmp_path / "avg").exists()


def test_runs_compare_by_cache_folder_however_the_path_was_spelled(
    runs: Runs, tmp_path: Path
) -> None:
    """A build run with --cache-dir spelled relative and one spelled absolute
    trained on the same caches: comparable; another cache folder is not."""
    first = runs.full.run
    cfg = json.loads(first.config.read_text())

    def copy_with(name: str, caches: list[str]) -> RunFolder:
        copy = RunFolder(tmp_path / name)
        shutil.copytree(first.path, copy.path)
        copy.config.write_text(json.dumps({**cfg, "caches": caches}))
        return copy

    relative = [os.path.relpath(Path(c).resolve(), Path.cwd()) for c in cfg["caches"]]
    assert relative != cfg["caches"]
    assert comparable_runs([copy_with("relative", relative), first]).caches == tuple(cfg["caches"])
    other = copy_with("other", [str(tmp_path / "elsewhere")] * len(cfg["caches"]))
    with pytest.raises(ValueError, match="other caches"):
        comparable_runs([other, first])


def test_imagenet_weights_load_only_into_a_backbone_they_fill(tmp_path: Path) -> None:
    """Keras-named arrays (layer/variable, as in the ImageNet .npz) fill the
    whole backbone; a file of another alpha, or one short of an array, is
    refused rather than leaving part of the backbone random."""

    def npz_of(model: Any, path: Path, skip: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(3)
        arrays = {
            f"{layer.name}/{v.name}": rng.normal(size=v.shape).astype(np.float32)
            for layer in backbone(model).layers
            for v in layer.weights
        }
        kept = dict(list(arrays.items())[skip:])
        np.savez(path, **kept)
        return kept

    model = build_model(ModelConfig(input_size=SIZE))
    written = npz_of(build_model(ModelConfig(input_size=SIZE)), tmp_path / "a035.npz")
    assert load_imagenet_backbone(model, tmp_path / "a035.npz") == len(written)
    first = backbone(model).layers[1]
    np.testing.assert_array_equal(
        first.weights[0].numpy(), written[f"{first.name}/{first.weights[0].name}"]
    )
    npz_of(build_model(ModelConfig(alpha=0.5, input_size=SIZE)), tmp_path / "a050.npz")
    with pytest.raises(ValueError, match="another alpha"):
        load_imagenet_backbone(build_model(ModelConfig(input_size=SIZE)), tmp_path / "a050.npz")
    npz_of(build_model(ModelConfig(input_size=SIZE)), tmp_path / "short.npz", skip=1)
    with pytest.raises(ValueError, match="lacks 1 of"):
        load_imagenet_backbone(build_model(ModelConfig(input_size=SIZE)), tmp_path / "short.npz")


def _lfw_root(dataset: Path, root: Path) -> Path:
    """An LFW layout over the committed images: Emma_Watson and Rick_Perry
    are its DevTest people, the eight others its training people."""
    shutil.copytree(dataset, root / "images_deepfunneled")
    (root / "peopleDevTest.txt").write_text("2\nEmma_Watson\t3\nRick_Perry\t3\n")
    (root / "pairsDevTest.txt").write_text(
        "2\nEmma_Watson\t1\t2\nRick_Perry\t1\t3\nEmma_Watson\t3\tRick_Perry\t2\n"
    )
    (root / "pairsDevTrain.txt").write_text(
        "2\nKurt_Warner\t1\t2\nKurt_Warner\t1\tMichael_Phelps\t1\n"
    )
    (root / "pairs.txt").write_text(
        "2\t1\nEmma_Watson\t1\t3\nEmma_Watson\t1\tRick_Perry\t1\n"
        "Rick_Perry\t2\t3\nEmma_Watson\t2\tRick_Perry\t3\n"
    )
    return root


#: A stage table of the tiny recipe: 32 px crops, batches of 4 people x 2
#: faces plus 4, a checkpoint every 10 steps.
_TINY_STAGE = """
input_size = 32
views = {views}
first_view_seed = 1
steps = {steps}
people_per_batch = 4
images_per_person = 2
extra_per_batch = 4
margin = 0.2
triplet_weight = 1.0
distill_weight = 1.0
relation_weight = 0.0
learning_rate = {lr}
warmup_steps = 5
weight_decay = 5e-5
val_fraction = 0.25
seed = 1234
freeze_backbone_bn = {freeze}
checkpoint_every = 10
eval_every = 1000
"""


def _tiny_recipe(folder: Path, lfw: Path, unlabelled: Path, views: int = 0) -> Path:
    """Two stages over the committed images: from random weights, then
    fine-tuned with the backbone's BatchNorm frozen; two test-time views."""
    first = _TINY_STAGE.format(views=0, steps=30, lr=1e-2, freeze="false")
    second = _TINY_STAGE.format(views=views, steps=30, lr=5e-3, freeze="true")
    text = f"""model_id = "tiny-test-model"
[network]
alpha = 0.35
dim = 128
landmark_branch = true
template = "dlib"
[lfw]
root = "{lfw}"
[[sources]]
name = "lfw-train"
kind = "identities"
root = "{lfw / "images_deepfunneled"}"
centre_fallback = true
[[sources]]
name = "unlabelled"
kind = "unlabelled"
root = "{unlabelled}"
pick_centre = false
[defaults]
[[stages]]
name = "first"
init = "random"
{first}
[[stages]]
name = "second"
init = "first"
data_seed = 99
{second}
[test_views]
flip = true
shift_px = 0
[calibration]
far = 0.1
seed = 7
"""
    path = folder / "tiny.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tiny(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny recipe file, its LFW and unlabelled folders beside it."""
    root = tmp_path_factory.mktemp("tiny")
    lfw = _lfw_root(dataset, root / "lfw")
    unlabelled = Path(shutil.copytree(dataset / "Albert_Costa", root / "crops"))
    return _tiny_recipe(root, lfw, unlabelled)


def test_a_stage_caches_every_source_and_its_views_without_the_test_people(
    tiny: Path, tmp_path: Path
) -> None:
    with_views = _tiny_recipe(tmp_path, *_tiny_folders(tiny), views=1)
    recipe = load_recipe(with_views)
    second = recipe.stage("second")
    stage_caches(recipe, second, tmp_path / "cache", workers=1)
    cfg = recipe.config(second, tmp_path / "cache", tmp_path / "runs")
    caches, views = [Path(c) for c in cfg.caches], [Path(c) for c in cfg.view_caches]
    assert [c.name for c in caches] == ["lfw-train", "unlabelled"]
    assert [v.name for v in views] == ["lfw-train-view1", "unlabelled-view1"]
    for source, view in zip(caches, views, strict=True):
        assert cache_spec(view) == replace(cache_spec(source), view_seed=1)
        np.testing.assert_array_equal(load_cache(view)["path"], load_cache(source)["path"])
    people = set(load_cache(views[0])["person"].tolist())
    assert len(people) == PEOPLE - 2 and not people & {"Emma_Watson", "Rick_Perry"}
    assert set(load_cache(views[1])["person"].tolist()) == {""}
    assert cache_spec(caches[0]).centre_fallback and not cache_spec(caches[1]).pick_centre
    (lfw_train, unlabelled) = data_report(recipe, tmp_path / "cache")
    # 24 photos of the 8 training people and Zz_Broken's undecodable file.
    assert (lfw_train.images, lfw_train.people) == (25, 9)
    assert (lfw_train.excluded_images, lfw_train.excluded_people) == (6, 2)
    assert lfw_train.faces == len(load_cache(caches[0])["path"]) == 24
    assert lfw_train.found == pytest.approx(24 / 25)
    assert (unlabelled.images, unlabelled.people, unlabelled.excluded_images) == (3, 0, 0)


def _tiny_folders(recipe_file: Path) -> tuple[Path, Path]:
    return recipe_file.parent / "lfw", recipe_file.parent / "crops"


def test_views_join_training_without_their_held_out_people(
    runs: Runs, cache: Path, view_cache: Path, tmp_path: Path
) -> None:
    cfg = replace(
        runs.cfg, view_caches=(str(view_cache),), val_fraction=0.2, people_per_batch=4, steps=2
    )
    logger = logging.getLogger("trainer.train")
    handler, level = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        result = train(cfg, RunFolder(tmp_path / "run"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    (record,) = [r for r in handler.records if r.getMessage() == "training data"]
    clean = load_faces([cache])
    train_index, val_index = split_people(clean, 0.2, cfg.seed)
    np.testing.assert_array_equal(np.load(result.run.val_index), val_index)
    # 8 training people's 24 faces, each once as it is and once as a view.
    assert (getattr(record, "faces", None), getattr(record, "val_faces", None)) == (48, 6)
    assert clean.teacher is not None and result.teacher_mean is not None
    np.testing.assert_allclose(
        result.teacher_mean, clean.teacher[train_index].mean(axis=0), rtol=1e-5
    )
    assert TrainConfig.load(result.run.config) == cfg


def test_validate_measures_runs_on_the_held_out_faces_and_their_views(
    runs: Runs, view_cache: Path, tmp_path: Path
) -> None:
    cfg = replace(
        runs.cfg, view_caches=(str(view_cache),), val_fraction=0.2, people_per_batch=4, steps=2
    )
    run = train(cfg, RunFolder(tmp_path / "run")).run
    checked = validate([run, run], InferenceViews(), bootstrap=20)
    (first, again) = checked.reports
    assert first == replace(again, name=first.name)
    # The same weights twice: the paired bootstrap finds no difference at all.
    (itself,) = checked.differences
    assert itself.eer == (0.0, 0.0, 0.0) and itself.tar_at_far_1e3 == (0.0, 0.0, 0.0)
    assert itself.resamples == 20
    # 2 held-out people x 3 faces: 6 same-person and 9 other pairs. Each clean
    # face meets the views of the 5 other held-out photos: 12 + 18 pairs.
    assert (first.genuine_pairs, first.impostor_pairs) == (6, 9)
    assert (first.view_genuine_pairs, first.view_impostor_pairs, first.view_seeds) == (12, 18, (1,))

    other_split = RunFolder(tmp_path / "other-split")
    shutil.copytree(run.path, other_split.path)
    np.save(other_split.val_index, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="other validation people"):
        validate([other_split, run], InferenceViews())

    # A view cache that is gone, or lacks a held-out face's view, is left
    # out rather than measured on fewer faces.
    held_out = load_faces([Path(cfg.caches[0])]).subset(np.load(run.val_index)).path
    partial = tmp_path / "partial-views"
    shutil.copytree(view_cache, partial)
    for shard in partial.glob("shard-*.npz"):
        arrays = dict(np.load(shard))
        keep = arrays["path"] != held_out[0]
        np.savez(shard, **{k: v[keep] for k, v in arrays.items()})
    for listed in (tmp_path / "gone", partial):
        folder = RunFolder(tmp_path / f"run-{listed.name}")
        shutil.copytree(run.path, folder.path)
        folder.config.write_text(json.dumps(replace(cfg, view_caches=(str(listed),)).to_dict()))
        (report,) = validate([folder], InferenceViews()).reports
        assert report.view_eer is None and report.view_seeds == ()
        assert report.auc == first.auc and report.eer == first.eer


def test_validate_measures_a_shipped_model_first_on_the_same_faces(
    runs: Runs, tmp_path: Path
) -> None:
    cfg = replace(runs.cfg, val_fraction=0.2, people_per_batch=4, steps=2)
    run = train(cfg, RunFolder(tmp_path / "run")).run
    folder = tmp_path / "shipped"
    args = (run.final_weights, cfg.model, folder, "shipped-model", 0.5, NO_TTA, {}, "# card")
    manifest = export_model(*args)
    checked = validate([run], NO_TTA, bootstrap=20, shipped=[folder])
    shipped, trained = checked.reports
    assert (shipped.name, trained.name) == (manifest.fingerprint, str(run.path))
    # The artifact holds the run's weights: the same figures on the same faces.
    assert replace(shipped, name=trained.name) == trained
    (difference,) = checked.differences
    assert (difference.name, difference.reference) == (str(run.path), manifest.fingerprint)
    assert difference.eer == (0.0, 0.0, 0.0)
    # An ablation's arms in order: each against the first and the one before.
    arms = validate([run, run], NO_TTA, bootstrap=20, shipped=[folder], consecutive=True)
    compared = [(d.name, d.reference) for d in arms.differences]
    path = str(run.path)
    fingerprint = manifest.fingerprint
    assert compared == [(path, fingerprint), (path, fingerprint), (path, path)]
    table = paired_table(arms.differences)
    assert f"| weights vs {fingerprint} |" in table and f"| weights vs {path} |" in table

    wider = tmp_path / "wider"
    shutil.copytree(folder, wider)
    _edit_manifest(wider, lambda raw: raw["config"].update(alpha=0.5))
    with pytest.raises(ValueError, match="is the network"):
        validate([run], NO_TTA, shipped=[wider])
    _flip_a_byte(folder / manifest.weights)
    with pytest.raises(ValueError, match="sha256"):
        validate([run], NO_TTA, shipped=[folder])


def _cache_of(cache: Path, out: Path, people: list[str]) -> Path:
    """A copy of ``cache`` holding only the faces of ``people``: a source of its own."""
    shutil.copytree(cache, out)
    for shard in out.glob("shard-*.npz"):
        arrays = dict(np.load(shard))
        keep = np.isin(arrays["person"], people)
        np.savez(shard, **{k: v[keep] for k, v in arrays.items()})
    return out


def test_another_config_in_a_run_folder_is_refused(runs: Runs) -> None:
    saved = runs.full.run.config.read_text()
    with pytest.raises(ValueError, match="another config"):
        train(replace(runs.cfg, margin=0.3), runs.full.run)
    assert runs.full.run.config.read_text() == saved
    assert json.loads(saved)["margin"] == runs.cfg.margin


def test_test_people_in_the_data_are_refused(runs: Runs, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="test people"):
        check_no_forbidden(runs.data, {"Emma_Watson", "Someone_Else"})
    check_no_forbidden(runs.data, {"Someone_Else"})
    with pytest.raises(ValueError, match="test people"):
        train(runs.cfg, RunFolder(tmp_path / "run"), forbidden_people={"Kurt_Warner"})
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_a_validation_split_of_one_person_is_refused_up_front(runs: Runs, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="two people"):
        train(replace(runs.cfg, val_fraction=0.1), RunFolder(tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_a_model_on_crops_of_another_template_is_refused(runs: Runs, tmp_path: Path) -> None:
    dlib_view = replace(runs.cfg, model=replace(runs.cfg.model, template="dlib"))
    with pytest.raises(ValueError, match="'arcface' crops"):
        train(dlib_view, RunFolder(tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_distillation_needs_the_teacher_dimension(runs: Runs, tmp_path: Path) -> None:
    small = replace(runs.cfg, model=replace(runs.cfg.model, dim=64))
    with pytest.raises(ValueError, match="dim"):
        train(small, RunFolder(tmp_path / "run"))


@dataclass(frozen=True)
class Export:
    folder: Path
    manifest: Manifest


# Exporting (LiteRT conversion included) takes seconds on a small CPU: tests
# share two exports and copy them before changing anything.
@pytest.fixture(scope="module")
def exported(runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> Export:
    folder = tmp_path_factory.mktemp("export") / "model"
    weights = runs.full.run.final_weights
    args = (weights, runs.cfg.model, folder, "test-model", 0.4567891, NO_TTA, {"n": 1}, "# card")
    return Export(folder, export_model(*args))


@pytest.fixture(scope="module")
def flip_exported(runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> Export:
    folder = tmp_path_factory.mktemp("export") / "model"
    weights = runs.full.run.final_weights
    args = (weights, runs.cfg.model, folder, "tta-model", 0.5, InferenceViews(), {}, "# card")
    return Export(folder, export_model(*args))


def _copy(export: Export, tmp_path: Path) -> Path:
    return Path(shutil.copytree(export.folder, tmp_path / "model"))


def _flip_a_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _edit_manifest(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change ``folder``'s manifest.json in place, its file hashes untouched."""
    path = folder / "manifest.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize("runtime", ["litert", "keras"])
def test_exported_model_serves_the_trained_embeddings(
    runs: Runs, exported: Export, runtime: Runtime
) -> None:
    manifest = exported.manifest
    backend = MobileNetBackend(exported.folder, runtime=runtime)
    assert backend.runtime == runtime
    assert backend.manifest.fingerprint == manifest.fingerprint
    assert manifest.fingerprint.startswith("test-model@")
    assert (backend.manifest.dim, backend.manifest.input_size) == (128, SIZE)
    assert backend.manifest.default_threshold == 0.4568
    assert backend.manifest.config == runs.cfg.model.to_dict()
    assert backend.manifest.extra["n"] == 1 and backend.manifest.extra["flip_tta"] is False
    assert (exported.folder / "MODEL_CARD.md").read_text() == "# card"
    served = backend.embed_arrays(runs.data.crops, runs.data.landmarks)
    inputs = model_inputs(runs.data.crops, runs.data.landmarks, SIZE)
    weights = runs.full.run.final_weights
    expected = np.asarray(load_model(runs.cfg.model, weights)(inputs, training=False))
    np.testing.assert_allclose(served, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)


def test_an_export_serves_through_litert_by_default(exported: Export) -> None:
    assert exported.manifest.extra["litert"] == "model.tflite"
    assert "model.tflite" in exported.manifest.files
    assert MobileNetBackend(exported.folder).runtime == "litert"


@pytest.fixture(scope="module")
def both_runtimes(exported: Export) -> tuple[MobileNetBackend, MobileNetBackend]:
    return (
        MobileNetBackend(exported.folder, runtime="litert"),
        MobileNetBackend(exported.folder, runtime="keras"),
    )


@pytest.mark.parametrize("count", [1, 3, 16, 29, 150])
def test_litert_embeds_batches_of_any_size_like_keras(
    runs: Runs, both_runtimes: tuple[MobileNetBackend, MobileNetBackend], count: int
) -> None:
    """Calls run as chunks of 16, 8, 4, 2 and 1 faces (29 = 16 + 8 + 4 + 1):
    no face may be lost, repeated or put out of order."""
    index = np.arange(count) % len(runs.data)
    crops, marks = runs.data.crops[index], runs.data.landmarks[index]
    litert, keras = (backend.embed_arrays(crops, marks) for backend in both_runtimes)
    assert litert.shape == (count, 128)
    np.testing.assert_allclose(litert, keras, atol=1e-5)


def test_a_tampered_litert_file_is_refused(exported: Export, tmp_path: Path) -> None:
    folder = _copy(exported, tmp_path)
    _flip_a_byte(folder / "model.tflite")
    for runtime in ("auto", "keras"):  # the whole artifact is refused
        with pytest.raises(FailedPrecondition, match="sha256"):
            MobileNetBackend(folder, runtime=runtime)  # type: ignore[arg-type]


def _strip_litert(folder: Path) -> None:
    """Make ``folder`` look like an artifact exported before LiteRT files."""

    def forget(raw: dict[str, Any]) -> None:
        del raw["litert"], raw["files"]["model.tflite"]

    _edit_manifest(folder, forget)
    (folder / "model.tflite").unlink()


def test_an_older_artifact_serves_through_keras_and_gains_litert_keeping_its_fingerprint(
    runs: Runs, flip_exported: Export, tmp_path: Path
) -> None:
    folder = _copy(flip_exported, tmp_path)
    before = flip_exported.manifest
    _strip_litert(folder)
    old = MobileNetBackend(folder)
    assert old.runtime == "keras"
    with pytest.raises(FailedPrecondition, match="LiteRT"):
        MobileNetBackend(folder, runtime="litert")
    after = add_litert(folder)
    assert after.fingerprint == before.fingerprint
    assert after.default_threshold == before.default_threshold
    assert after.extra["flip_tta"] is True
    new = MobileNetBackend(folder)
    assert new.runtime == "litert"
    crops, marks = runs.data.crops, runs.data.landmarks
    np.testing.assert_allclose(
        new.embed_arrays(crops, marks), old.embed_arrays(crops, marks), atol=1e-5
    )


def test_a_litert_file_the_manifest_does_not_hash_is_refused(
    exported: Export, tmp_path: Path
) -> None:
    folder = _copy(exported, tmp_path)
    _edit_manifest(folder, lambda raw: raw["files"].pop("model.tflite"))
    with pytest.raises(FailedPrecondition, match="not hashed"):
        MobileNetBackend(folder)


def test_a_flip_tta_export_serves_the_sum_of_face_and_mirror(
    runs: Runs, flip_exported: Export
) -> None:
    """What calibration and evaluation score (trainer.embed.embed_views
    embeds each face and its mirror) is what the service must serve."""
    cfg = runs.cfg
    weights = runs.full.run.final_weights
    backend = MobileNetBackend(flip_exported.folder)
    crops, marks = runs.data.crops, runs.data.landmarks
    served = backend.embed_arrays(crops, marks)
    model = load_model(cfg.model, weights)
    mirrored = np.stack([flip_landmarks(p, SIZE) for p in marks])
    plain = np.asarray(model(model_inputs(crops, marks, SIZE), training=False))
    mirror = np.asarray(model(model_inputs(crops[:, :, ::-1], mirrored, SIZE), training=False))
    expected = (plain + mirror) / np.linalg.norm(plain + mirror, axis=1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert not np.allclose(served, plain, atol=1e-3), "the mirror changed nothing"
    one = backend.embed_arrays(crops[:1], marks[:1])
    np.testing.assert_allclose(one, expected[:1], atol=1e-5)


def test_a_shift_tta_model_serves_the_sum_over_shifted_and_mirrored_faces(
    runs: Runs, exported: Export, tmp_path: Path
) -> None:
    """Ten views per face (as is, moved 2 px right, left, down, up; each also
    mirrored), computed here independently with OpenCV; calibration and
    evaluation (trainer.embed.embed_views) must embed faces exactly as
    served. (That export writes the views it is given is checked with
    export_run below.)"""
    import cv2

    cfg = runs.cfg
    weights = runs.full.run.final_weights
    views = InferenceViews(flip=True, shift_px=2)
    folder = _copy(exported, tmp_path)
    _edit_manifest(folder, lambda raw: raw.update(flip_tta=True, shift_tta_px=2))
    backend = MobileNetBackend(folder)
    crops, marks = runs.data.crops, runs.data.landmarks
    served = backend.embed_arrays(crops, marks)
    model = load_model(cfg.model, weights)
    total = np.zeros((len(crops), 128), np.float32)
    for dx, dy in [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2)]:
        move = np.float32([[1, 0, dx], [0, 1, dy]])
        moved = np.stack(
            [cv2.warpAffine(c, move, (SIZE, SIZE), borderMode=cv2.BORDER_REPLICATE) for c in crops]
        )
        moved_marks = marks + np.float32([dx, dy])
        mirrored = np.stack([flip_landmarks(p, SIZE) for p in moved_marks])
        total += np.asarray(model(model_inputs(moved, moved_marks, SIZE), training=False))
        total += np.asarray(model(model_inputs(moved[:, :, ::-1], mirrored, SIZE), training=False))
    expected = total / np.linalg.norm(total, axis=1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    flip_only = InferenceViews(flip=True)
    plain = embed_views(model, runs.data, SIZE, flip_only)
    plain /= np.linalg.norm(plain, axis=1, keepdims=True)
    assert not np.allclose(served, plain, atol=1e-3), "the shifts changed nothing"
    calibrated = embed_views(model, runs.data, SIZE, views, chunk=7)
    calibrated /= np.linalg.norm(calibrated, axis=1, keepdims=True)
    np.testing.assert_allclose(calibrated, served, atol=1e-5)


def test_a_run_ships_the_test_time_views_it_was_calibrated_and_evaluated_with(
    runs: Runs, tiny: Path, tmp_path: Path
) -> None:
    recipe = load_recipe(tiny)
    run = RunFolder(tmp_path / "run")
    shutil.copytree(runs.full.run.path, run.path)
    figures = ("devtest_accuracy", "devtest_accuracy_val_threshold", "devtest_auc", "rank1")
    evaluation: dict[str, Any] = dict.fromkeys(figures, 0.9)
    evaluation.update(
        backend="likeness-mobilenet", devtest_tar_at_far_1e3=0.5, tta_shift_px=4, tta_flip=True
    )
    run.evaluation.write_text(json.dumps([evaluation]))
    flip_only = Calibration(far=1e-3, threshold=0.7, dlib_threshold=0.9, validation_faces=10)
    run.calibration.write_text(json.dumps(asdict(flip_only)))
    refused = "evaluated with InferenceViews\\(flip=True, shift_px=4\\) but calibrated with"
    with pytest.raises(ValueError, match=refused):
        export_run(recipe, run, tmp_path / "refused", [], "test")
    assert not (tmp_path / "refused").exists()
    run.calibration.write_text(json.dumps(asdict(replace(flip_only, tta_shift_px=4))))
    export_run(recipe, run, tmp_path / "model", [], "test")
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    backend = MobileNetBackend(tmp_path / "model")
    assert (backend.manifest.extra["flip_tta"], backend.manifest.extra["shift_tta_px"]) == (True, 4)
    assert backend.manifest.default_threshold == 0.7
    assert "shifted by 4 px" in card


def _arrays(weights: Path) -> list[tuple[str, tuple[int, ...]]]:
    """The arrays of a Keras weights file: (name, shape), values aside."""
    import h5py

    arrays: list[tuple[str, tuple[int, ...]]] = []
    with h5py.File(weights) as h5:
        h5.visititems(
            lambda name, item: (
                arrays.append((name, item.shape)) if isinstance(item, h5py.Dataset) else None
            )
        )
    return sorted(arrays)


def test_a_margin_head_trains_over_the_training_people_and_stays_out_of_the_export(
    runs: Runs, cache: Path, tmp_path: Path
) -> None:
    """One stage with a CosFace head, started from the trained network, on
    two sources (five people each, one test person in each):

    - the head's classes are the training people only: not the test people
      (they leave the caches first) nor the validation people, who are read
      back whole from the caches as they are on disk;
    - its loss over the training faces falls; its centres are checkpointed
      and kept beside the run;
    - the final weights hold the very arrays of a run without a head. They
      are all an export reads (export_model copies the file and converts the
      network of the same model config to LiteRT from it), so the artifact
      is the same in structure with or without the head (converting once
      more here would cost a LiteRT conversion and prove nothing more);
    - validation, in the loop and by ``validate``, gives pooled figures and
      each source's, on the pairs within it.
    """
    people = sorted(set(runs.data.person.tolist()))
    first = _cache_of(cache, tmp_path / "first", people[:5])
    second = _cache_of(cache, tmp_path / "second", people[5:])
    test_people = {"Emma_Watson", "Rick_Perry"}
    assert [p in people[:5] for p in sorted(test_people)] == [True, False]
    stage = replace(
        runs.cfg,
        caches=(str(first), str(second)),
        init_weights=str(runs.full.run.final_weights),
        steps=30,
        people_per_batch=4,
        val_fraction=0.5,
        seed=1231,  # holds out two people of each source (four of the eight)
        margin_head="cosface",
        head_scale=16.0,
        head_margin=0.2,
        head_weight=1.0,
    )
    result = train(stage, RunFolder(tmp_path / "head"), held_out_people=test_people)
    run = result.run
    classes, centres = load_head(run.margin_head)
    validation = load_faces([first, second]).subset(np.load(run.val_index))
    assert validation.source is not None
    held_out = {
        source: set(validation.person[validation.source == source].tolist())
        for source in ("first", "second")
    }
    assert [len(names) for names in held_out.values()] == [2, 2], held_out
    everyone_held_out = held_out["first"] | held_out["second"]
    assert not everyone_held_out & test_people
    assert np.unique(validation.person, return_counts=True)[1].tolist() == [3] * 4
    assert sorted(classes.tolist()) == sorted(set(people) - test_people - everyone_held_out)
    assert centres.shape == (4, 128)
    np.testing.assert_array_equal(np.load(run.checkpoint_margin_head), centres)
    assert all(np.isfinite(row["margin_head"]) and row["margin_head"] > 0 for row in result.history)

    training = runs.data.subset(np.flatnonzero(np.isin(runs.data.person, classes)))
    labels = tf.constant(class_index(training.person, classes))

    def head_loss(weights: Path, head: np.ndarray) -> float:
        model = load_model(stage.model, weights)
        model.get_layer("gdc_dropout").rate = 0.0
        emb = model(model_inputs(training.crops, training.landmarks, SIZE), training=True)
        return float(margin_head_loss(emb, labels, tf.constant(head), 16.0, 0.2, "cosface"))

    before = head_loss(runs.full.run.final_weights, initial_centres(4, 128, stage.seed))
    after = head_loss(run.final_weights, centres)
    assert after < 0.5 * before, (before, after)

    assert stage.model == runs.cfg.model
    assert _arrays(run.final_weights) == _arrays(runs.full.run.final_weights)

    last = result.history[-1]
    for source in ("", "/first", "/second"):
        assert 0.0 <= last[f"val_auc{source}"] <= 1.0
        assert 0.0 <= last[f"val_accuracy{source}"] <= 1.0
    checked = validate([run], InferenceViews())
    assert sorted(checked.by_source) == ["first", "second"]
    (pooled,) = checked.reports
    # 4 held-out people x 3 faces: 12 same-person pairs and 66 - 12 others
    # pooled; within a source 2 people: 6 same-person pairs and 9 others.
    assert (pooled.genuine_pairs, pooled.impostor_pairs) == (12, 54)
    for reports in checked.by_source.values():
        (report,) = reports
        assert (report.genuine_pairs, report.impostor_pairs) == (6, 9)
        assert report.name == pooled.name


def test_a_tampered_export_is_refused(exported: Export, tmp_path: Path) -> None:
    folder = _copy(exported, tmp_path)
    _flip_a_byte(folder / "model.weights.h5")
    with pytest.raises(FailedPrecondition, match="sha256"):
        MobileNetBackend(folder)


class _Killed(Exception):
    """Stands for the process dying mid-stage."""


@dataclass(frozen=True)
class Built:
    build: Build
    lines: list[str]


@pytest.fixture(scope="module")
def built(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The tiny recipe built end to end, as ``likeness-train build`` does."""
    root = tmp_path_factory.mktemp("built")
    build = Build(load_recipe(tiny), BuildFolder(root / "runs" / "tiny"), root / "cache", 1)
    lines: list[str] = []
    assert run_build(build, report=lines.append)
    return Built(build, lines)


def test_a_tiny_recipe_builds_end_to_end_into_a_model_that_serves_the_runs_embeddings(
    built: Built,
) -> None:
    build, recipe = built.build, built.build.recipe
    second = build.run(recipe.stage("second"))
    assert build.run(recipe.stage("first")).finished and second.finished
    progress = [line for line in built.lines if line.startswith("second: step 25/30")]
    assert len(progress) == 1 and "ETA" in progress[0]
    # The second stage started from the first stage's final weights.
    cfg = TrainConfig.load(second.config)
    assert cfg == recipe.config(recipe.stage("second"), build.cache_root, build.folder.path)
    assert cfg.init_weights == str(build.run(recipe.stage("first")).final_weights)

    backend = MobileNetBackend(build.folder.artifact)
    assert backend.runtime == "litert"
    manifest = backend.manifest
    assert manifest.model_id == "tiny-test-model"
    assert manifest.extra["training"]["config"] == cfg.to_dict()
    calibration = Calibration.load(second.calibration)
    assert manifest.default_threshold == round(calibration.threshold, 4)
    # Calibration emits a point at the recipe's FAR and at each shipped FAR
    # where the pairs reach it: dlib-resnet's reach all four here; the tiny
    # model's (threshold inf: no pairs at FAR 0.1) none, so none ship.
    dlib = calibration.dlib_operating_points
    assert [p.name for p in dlib] == ["far-1e-1", "far-1e-2", "far-1e-3", "far-1e-4"]
    assert dlib[0].threshold == round(calibration.dlib_threshold, 4)
    assert [p.threshold for p in dlib] == sorted(p.threshold for p in dlib)
    assert dlib[0].rates[0].faces == calibration.validation_faces
    assert calibration.operating_points == () and manifest.points[1] == "custom"
    assert "operating_points" not in manifest.extra["calibration"]
    assert (manifest.extra["flip_tta"], manifest.extra["shift_tta_px"]) == (True, 0)

    faces = load_faces([Path(c) for c in cfg.caches[:1]])
    model = load_model(cfg.model, second.final_weights)
    ours = embed_views(model, faces, SIZE, recipe.test_views)
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    served = backend.embed_arrays(faces.crops, faces.landmarks)
    np.testing.assert_allclose(served, ours, atol=1e-5)

    card = (build.folder.artifact / "MODEL_CARD.md").read_text()
    lfw_train = data_report(recipe, build.cache_root)[0]
    assert lfw_train.faces is not None and lfw_train.found is not None
    row = (
        f"| lfw-train | identity folders | 25 | 9 | 6 images of 2 people "
        f"| {lfw_train.faces} ({lfw_train.found:.1%}) |"
    )
    assert row in card
    # The export renders the card `likeness-train model-card` renders again.
    assert card == run_card(recipe, second, data_report(recipe, build.cache_root))
    assert "| unlabelled | unlabelled faces" in card and "`first`: from random weights" in card
    assert "`second`: from `first`" in card and "backbone BatchNorm frozen" in card
    evaluation = json.loads(second.evaluation.read_text())
    assert [e["backend"] for e in evaluation] == ["likeness-mobilenet", "dlib-resnet"]


def test_a_finished_build_is_all_done_and_a_rerun_trains_nothing(built: Built) -> None:
    build = built.build
    steps = dry_run(build).split("steps:\n")[1].splitlines()
    assert [line.split()[:2] for line in steps] == [
        [name, "done"] for name in ("first", "second", "evaluate", "calibrate", "export")
    ]
    weights = build.run(build.recipe.final).final_weights.read_bytes()
    lines: list[str] = []
    assert run_build(build, report=lines.append)
    assert lines == ["first: done", "second: done"]
    assert build.run(build.recipe.final).final_weights.read_bytes() == weights


def test_a_build_killed_mid_stage_resumes_to_the_weights_of_an_uninterrupted_one(
    built: Built, tmp_path: Path
) -> None:
    recipe = built.build.recipe
    build = Build(recipe, BuildFolder(tmp_path / "tiny"), built.build.cache_root, 1)

    def die_at_step_25(line: str) -> None:
        if line.startswith("second: step 25/"):
            raise _Killed(line)

    with pytest.raises(_Killed):
        run_build(build, report=die_at_step_25)
    second = build.run(recipe.stage("second"))
    assert not second.finished
    assert "resumes at step 20/30" in dry_run(build)
    assert run_build(build, only="second")
    done = load_model(recipe.model(recipe.final), second.final_weights)
    uninterrupted = built.build.run(recipe.stage("second")).final_weights
    for a, b in zip(
        load_model(recipe.model(recipe.final), uninterrupted).weights, done.weights, strict=True
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5, err_msg=a.path)
