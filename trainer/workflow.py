"""The trainer commands behind ``likeness train|validate|evaluate|calibrate``.

Folder conventions: ``cache_dir`` holds ``lfw-train`` (LFW minus every View 1
test person), ``lfw-test`` (only View 1 test people: evaluation) and
``unlabelled`` (optional, e.g. UTKFace crops: distillation only); a run folder
holds config, checkpoints, history and the final weights.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from embedder.model import InferenceViews, ModelConfig
from trainer.average import averaged_from, comparable_runs
from trainer.cache import CacheSpec, build_cache, cache_paths, cache_spec, list_images
from trainer.data import FaceData, concat_faces, load_faces
from trainer.lfw import devtest_people
from trainer.recipe import BASE, Recipe
from trainer.train import TrainConfig, TrainResult, check_caches_fit, embed_faces, train
from trainer.validate import (
    HeldOutReport,
    PairedDifference,
    all_pairs,
    held_out_report,
    paired_bootstrap,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, int, dict[str, float]], None]


def build_caches(
    lfw_root: Path,
    cache_dir: Path,
    unlabelled: Path | None,
    workers: int = 2,
    model: ModelConfig | None = None,
    views: int = 0,
    first_view_seed: int = 1,
    teacher_from: Path | None = None,
) -> tuple[list[Path], list[Path]]:
    """Run the embedder front end over LFW (train and test people apart) and
    the optional unlabelled folder, with the crop size and alignment template
    of ``model``; resumable. ``views`` > 0 also caches that many seeded views
    (trainer.views) of every training image, seeds ``first_view_seed`` ...
    ``first_view_seed + views - 1``, in ``<cache>-view<seed>``.
    ``teacher_from``, a cache folder built the same way at another crop size,
    lends each cache the teacher descriptors of its namesake there (see
    trainer.cache.build_cache); caches it lacks compute their own. Returns
    (training caches, view caches)."""
    if first_view_seed < 1:
        raise ValueError(f"view seeds start at 1, not {first_view_seed}")

    def build(items: list[tuple[str, Path]], out: Path, spec: CacheSpec) -> None:
        donor = teacher_from / out.name if teacher_from is not None else None
        if donor is not None and not (donor / "spec.json").exists():
            log.info("no teacher to borrow", extra={"cache": str(out), "from": str(donor)})
            donor = None
        build_cache(items, out, spec, workers, teacher_from=donor)

    model = model or ModelConfig()
    test_people = devtest_people(lfw_root)
    images = lfw_root / "images_deepfunneled"
    everyone = {p.name for p in images.iterdir() if p.is_dir()}
    spec = CacheSpec(
        size=model.input_size, centre_fallback=True, teacher=True, template=model.template
    )
    sources = [(list_images(images, True, test_people), cache_dir / "lfw-train", spec)]
    build(*sources[0])
    build(list_images(images, True, everyone - test_people), cache_dir / "lfw-test", spec)
    if unlabelled is not None:
        sources.append(
            (
                list_images(unlabelled, False),
                cache_dir / "unlabelled",
                replace(spec, centre_fallback=False, pick_centre=False),
            )
        )
    for items, out, source_spec in sources[1:]:
        build(items, out, source_spec)
    view_caches: list[Path] = []
    for seed in range(first_view_seed, first_view_seed + views):
        for items, out, source_spec in sources:
            view_dir = out.with_name(f"{out.name}-view{seed}")
            build(items, view_dir, replace(source_spec, view_seed=seed))
            view_caches.append(view_dir)
    return [out for _, out, _ in sources], view_caches


def run_training(
    lfw_root: Path,
    cache_dir: Path,
    run_dir: Path,
    unlabelled: Path | None = None,
    imagenet_weights: Path | None = None,
    recipe: Recipe = BASE,
    init_weights: Path | None = None,
    max_minutes: float | None = None,
    progress: Progress | None = None,
    teacher_from: Path | None = None,
) -> TrainResult:
    """Build caches (if needed; ``teacher_from`` as in :func:`build_caches`)
    and train (or resume) into ``run_dir`` with ``recipe`` (default: the
    shipped model's first stage), from ``init_weights`` (a run's
    ``final.weights.h5``, of any crop size) when given; writes
    ``history.json`` and ``training_curve.png`` there."""
    model = ModelConfig(
        alpha=recipe.alpha,
        input_size=recipe.input_size,
        dim=recipe.dim,
        template=recipe.template,
    )
    caches, view_caches = build_caches(
        lfw_root,
        cache_dir,
        unlabelled,
        model=model,
        views=recipe.views,
        first_view_seed=recipe.first_view_seed,
        teacher_from=teacher_from,
    )
    cfg = TrainConfig(
        caches=tuple(str(c) for c in caches),
        view_caches=tuple(str(c) for c in view_caches),
        model=model,
        imagenet_weights=str(imagenet_weights) if imagenet_weights else None,
        init_weights=str(init_weights) if init_weights else None,
        freeze_backbone_bn=recipe.freeze_backbone_bn,
        data_seed=recipe.data_seed,
        steps=recipe.steps,
        people_per_batch=recipe.people_per_batch,
        extra_per_batch=recipe.extra_per_batch,
        margin=recipe.margin,
        triplet_weight=recipe.triplet_weight,
        distill_weight=recipe.distill_weight,
        relation_weight=recipe.relation_weight,
        learning_rate=recipe.learning_rate,
    )
    result = train(cfg, run_dir, devtest_people(lfw_root), progress, max_minutes)
    (run_dir / "history.json").write_text(json.dumps(result.history, indent=1))
    plot_history(result.history, run_dir / "training_curve.png")
    return result


def plot_history(history: list[dict[str, float]], path: Path) -> Path:
    """Loss terms and validation accuracy against the step, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    steps = [h["step"] for h in history]
    for key in ("loss", "triplet", "distill", "relation"):
        if any(h.get(key) for h in history):
            ax[0].plot(steps, [h.get(key, 0.0) for h in history], label=key)
    ax[0].set(xlabel="step", title="training loss")
    ax[0].legend()
    val = [(h["step"], h["val_accuracy"]) for h in history if "val_accuracy" in h]
    if val:
        ax[1].plot(*zip(*val, strict=True), marker="o")
    ax[1].set(xlabel="step", ylabel="accuracy", title="validation pair accuracy (held-out people)")
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _run_model(run_dir: Path) -> tuple[Any, TrainConfig]:
    from embedder.model import load_model

    cfg = TrainConfig.read(run_dir)
    final = run_dir / "final.weights.h5"
    weights = final if final.exists() else run_dir / "checkpoint" / "model.weights.h5"
    return load_model(cfg.model, weights), cfg


def _validation_faces(run_dir: Path, cfg: TrainConfig) -> FaceData:
    data = load_faces([Path(c) for c in cfg.caches])
    return data.subset(np.load(run_dir / "val_index.npy"))


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


def calibrate(
    run_dir: Path,
    far: float = 1e-3,
    seed: int = 7,
    tta_shift_px: int = 0,
    tta_flip: bool = True,
) -> Calibration:
    """Threshold of the run's model and of dlib-resnet at ``far`` on the run's
    validation people (never test people); saved as ``calibration.json``.
    Test-time views, as the exported model will serve them: ``tta_shift_px``
    shifted copies (pixels; 0 = none), ``tta_flip`` mirror images."""
    from trainer.evaluate import calibrate_threshold, unit

    model, cfg = _run_model(run_dir)
    val = _validation_faces(run_dir, cfg)
    views = InferenceViews(flip=tta_flip, shift_px=tta_shift_px)
    emb = unit(_embed_tta(model, val, cfg.model.input_size, views))
    result = Calibration(
        far=far,
        threshold=calibrate_threshold(emb, val.person, far, seed),
        dlib_threshold=(
            calibrate_threshold(unit(val.teacher), val.person, far, seed)
            if val.teacher is not None
            else float("nan")
        ),
        validation_faces=len(val),
        tta_shift_px=tta_shift_px,
        tta_flip=tta_flip,
    )
    (run_dir / "calibration.json").write_text(json.dumps(asdict(result), indent=2))
    return result


def _embed_tta(
    model: Any, data: FaceData, size: int, views: InferenceViews, chunk: int = 512
) -> np.ndarray:
    """Sum over ``views`` of each face's embedding (as served; not normalised)."""
    parts = []
    for start in range(0, len(data), chunk):
        part = data.subset(np.arange(start, min(start + chunk, len(data))))
        crops, landmarks = views.apply(part.crops, part.landmarks, size)
        people = np.tile(part.person, views.count)
        paths = np.tile(part.path, views.count)
        outputs = embed_faces(model, FaceData(crops, landmarks, people, paths, None), size)
        parts.append(views.sum(np.asarray(outputs)))
    return np.concatenate(parts)


def evaluate(
    lfw_root: Path,
    cache_dir: Path,
    run_dir: Path,
    out_dir: Path,
    tta_shift_px: int = 0,
    tta_flip: bool = True,
) -> tuple[str, Path]:
    """Evaluate the run's model (the face, its mirror image when
    ``tta_flip``, shifted views when ``tta_shift_px`` > 0) and dlib-resnet on
    the same cached faces; returns (markdown table, ROC/DET plot path) and
    writes ``evaluation.json`` into ``out_dir``."""
    from trainer.evaluate import best_threshold, evaluate_backend, markdown_table, plot_roc, unit

    model, cfg = _run_model(run_dir)
    caches = (cache_dir / "lfw-train", cache_dir / "lfw-test")
    # Evaluation reads no view caches: they may be gone once training ended.
    check_caches_fit(replace(cfg, caches=tuple(str(c) for c in caches), view_caches=()))
    data = load_faces(list(caches))
    test_mask = np.isin(data.person, sorted(devtest_people(lfw_root)))
    val = _validation_faces(run_dir, cfg)
    views = InferenceViews(flip=tta_flip, shift_px=tta_shift_px)
    size = cfg.model.input_size
    ours = unit(_embed_tta(model, data, size, views))
    ours_val = best_threshold(unit(_embed_tta(model, val, size, views)), val.person, 7)
    reports = [
        evaluate_backend("likeness-mobilenet", ours, data, test_mask, lfw_root, False, ours_val)
    ]
    if data.teacher is not None and val.teacher is not None:
        dlib_val = best_threshold(unit(val.teacher), val.person, 7)
        reports.append(
            evaluate_backend(
                "dlib-resnet", unit(data.teacher), data, test_mask, lfw_root, True, dlib_val
            )
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = plot_roc(reports, out_dir / "roc_devtest.png")
    summary = [{k: v for k, v in asdict(r).items() if k != "roc"} for r in reports]
    summary[0]["tta_shift_px"] = tta_shift_px
    summary[0]["tta_flip"] = tta_flip
    (out_dir / "evaluation.json").write_text(json.dumps(summary, indent=2))
    return markdown_table(reports), plot


@dataclass(frozen=True)
class Validation:
    """What :func:`validate` measured: one report per run and, when asked
    for, each later run's paired difference to the first."""

    reports: list[HeldOutReport]
    differences: list[PairedDifference]


def validate(
    runs: Sequence[Path], tta_shift_px: int = 0, tta_flip: bool = True, bootstrap: int = 0
) -> Validation:
    """Held-out figures (trainer.validate) of each finished run's final
    weights (single runs and ensembles alike), each face embedded with its
    mirror image when ``tta_flip`` and shifted views when ``tta_shift_px`` >
    0, all on the validation faces of the last run.
    Clean-vs-view pairs use the views of those faces in the last run's view
    caches; a cache counts only if it holds a view of every held-out face
    (a missing or partly built one is passed over with a warning), and the
    reports name the seeds used. With ``bootstrap`` > 0, every run after the
    first is also compared with the first by a paired bootstrap over the
    held-out people with that many resamples
    (trainer.validate.paired_bootstrap). Raises ValueError when the runs
    differ in architecture, caches or validation people, or one is
    unfinished."""
    from trainer.evaluate import unit

    last = comparable_runs(runs)
    check_caches_fit(replace(last, view_caches=()))
    val = _validation_faces(runs[-1], last)
    views, seeds = _held_out_views(last, val)
    size = last.model.input_size
    tta = InferenceViews(flip=tta_flip, shift_px=tta_shift_px)
    reports = []
    embeddings = []
    for run in runs:
        model, _ = _run_model(run)
        emb = unit(_embed_tta(model, val, size, tta))
        view_arg = (
            None
            if views is None
            else (unit(_embed_tta(model, views, size, tta)), views.person, views.path)
        )
        reports.append(held_out_report(str(run), emb, val.person, val.path, view_arg, seeds))
        if bootstrap > 0:
            embeddings.append(emb)
    differences = []
    if bootstrap > 0:
        codes = np.unique(val.person, return_inverse=True)[1]
        first, second = np.triu_indices(len(codes), k=1)
        ref_scores, same = all_pairs(embeddings[0], val.person)
        for run, emb in zip(runs[1:], embeddings[1:], strict=True):
            scores, _ = all_pairs(emb, val.person)
            differences.append(
                paired_bootstrap(
                    str(run),
                    str(runs[0]),
                    scores,
                    ref_scores,
                    same,
                    (codes[first], codes[second]),
                    resamples=bootstrap,
                )
            )
    return Validation(reports, differences)


def _held_out_views(cfg: TrainConfig, val: FaceData) -> tuple[FaceData | None, tuple[int, ...]]:
    parts, seeds = [], set()
    for name in cfg.view_caches:
        cache = Path(name)
        if not (cache / "spec.json").exists():
            log.warning("view cache %s not found; its views are left out", cache)
            continue
        paths = cache_paths(cache)
        if not np.isin(paths, val.path).any():
            continue  # views of other sources (unlabelled faces)
        if not np.isin(val.path, paths).all():
            log.warning("view cache %s lacks views of some held-out faces; left out", cache)
            continue
        check_caches_fit(replace(cfg, caches=(), view_caches=(name,)))
        data = load_faces([cache])
        parts.append(data.subset(np.flatnonzero(np.isin(data.path, val.path))))
        seeds.add(cache_spec(cache).view_seed or 0)
    return (concat_faces(parts) if parts else None), tuple(sorted(seeds))


def export_run(
    run_dir: Path, model_dir: Path, calibration: Calibration, command: str, model_id: str
) -> Path:
    """Ship the run's final weights as a served artifact in ``model_dir`` with
    the calibrated threshold, the evaluation figures (if ``evaluate`` ran
    into the run folder) and a model card; the model serves the test-time
    views it was calibrated with. Returns the manifest path. Raises
    ValueError when the evaluation used other test-time views than the
    calibration."""
    from trainer.ensemble import ensemble_members
    from trainer.export import export_model

    cfg = TrainConfig.read(run_dir)
    evaluation_file = run_dir / "evaluation.json"
    evaluation = json.loads(evaluation_file.read_text()) if evaluation_file.exists() else []
    if evaluation:
        evaluated = InferenceViews(
            flip=evaluation[0].get("tta_flip", True), shift_px=evaluation[0].get("tta_shift_px", 0)
        )
        if evaluated != calibration.views:
            raise ValueError(
                f"the run was evaluated with {_flags(evaluated)} but calibrated with"
                f" {_flags(calibration.views)}: evaluate again with the served views"
            )
    history = json.loads((run_dir / "history.json").read_text())
    terms = [f"triplet (semi-hard, margin {cfg.margin:.2f})"]
    if cfg.distill_weight > 0:
        terms.append(f"distillation from dlib-resnet (weight {cfg.distill_weight})")
    if cfg.relation_weight > 0:
        terms.append(
            f"pairwise-similarity distillation from dlib-resnet (weight {cfg.relation_weight})"
        )
    averaged = averaged_from(run_dir)
    training: dict[str, Any] = {
        "command": command,
        "config": cfg.to_dict(),
        "steps": history[-1]["step"],
    }
    if averaged:
        training["averaged_from"] = averaged
    members = ensemble_members(run_dir)
    if members:
        training["towers"] = members
    extra = {
        "threshold_far": calibration.far,
        "calibration": asdict(calibration),
        "evaluation": evaluation,
        "training": training,
    }
    tower_runs = [str(m["run"]) for m in members]
    card = _model_card(model_id, cfg, calibration, evaluation, terms, command, averaged, tower_runs)
    weights = run_dir / "final.weights.h5"
    manifest = export_model(
        weights,
        cfg.model,
        model_dir,
        model_id,
        calibration.threshold,
        calibration.views,
        extra,
        card,
    )
    return model_dir / f"manifest.json ({manifest.fingerprint})"


def _view_seed(cache: Path) -> int:
    # A run's view caches may be gone by the time it ships (they are large);
    # build_caches names them <cache>-view<seed>.
    if (cache / "spec.json").exists():
        return cache_spec(cache).view_seed or 0
    return int(cache.name.rsplit("-view", 1)[1])


def _flags(views: InferenceViews) -> str:
    return f"--tta-shift-px {views.shift_px} {'--tta-flip' if views.flip else '--no-tta-flip'}"


def _views_text(views: InferenceViews) -> str:
    s = views.shift_px
    if views.count == 1:
        return "Each face is embedded once (no test-time views)."
    mirror = " plus its mirror image (landmarks permuted)" if views.flip else ""
    shifted = (
        f", and as copies shifted by {s} px right, left, down and up"
        + (", each with its mirror image" if views.flip else "")
        if s
        else ""
    )
    return (
        f"Each face is embedded as itself{mirror}{shifted} ({views.count} views);"
        " the views' embeddings are summed and normalised."
    )


_TEMPLATE_NOTES = {
    "dlib": ": the field of view of dlib's face chip, so the student sees what its teacher saw",
    "arcface": ": the common ArcFace 112 px template",
}


def _model_card(
    model_id: str,
    cfg: TrainConfig,
    calibration: Calibration,
    evaluation: list[dict[str, Any]],
    terms: list[str],
    command: str,
    averaged_from: list[str],
    tower_runs: list[str],
) -> str:
    rows = "\n".join(
        f"| {e['backend']} | {e['devtest_accuracy']:.2%} "
        f"| {e['devtest_accuracy_val_threshold']:.2%} | {e['devtest_auc']:.4f} "
        f"| {e['devtest_tar_at_far_1e3']:.2%} | {e['rank1']:.2%} |"
        for e in evaluation
    )
    m = cfg.model
    template_note = _TEMPLATE_NOTES.get(m.template, "")
    if cfg.init_weights:
        init = f"initialised from the trained weights `{cfg.init_weights}` (an earlier stage)"
    else:
        init = f"{'ImageNet' if cfg.imagenet_weights else 'random'} initialisation"
    frozen = (
        " The backbone's BatchNorm layers stayed frozen on their moving statistics."
        if cfg.freeze_backbone_bn
        else ""
    )
    view_seeds = sorted({_view_seed(Path(c)) for c in cfg.view_caches})
    views = (
        f" {len(view_seeds)} seeded views of every training image (trainer.views:"
        " mirrored, blurred, downscaled, JPEG-compressed, grey or colour-cast,"
        " alignment jittered), each with the teacher's descriptor of that view,"
        " joined the data."
        if view_seeds
        else ""
    )
    averaged = (
        " The shipped weights are the element-wise mean of the final weights of the runs "
        + ", ".join(f"`{r}`" for r in averaged_from)
        + " (weight averaging; the run described here is the last of them)."
        if averaged_from
        else ""
    )
    ensemble = (
        f" This card describes the training of the last tower (`{tower_runs[-1]}`); every"
        " tower's run and config are in manifest.json (`training.towers`)."
        if tower_runs
        else ""
    )
    extra = views + averaged + ensemble
    towers = (
        f"{m.towers} networks (towers) run side by side on the same inputs, and their unit"
        " embeddings are summed and normalised (an ensemble of the separately trained runs "
        + ", ".join(f"`{r}`" for r in tower_runs)
        + "; trainer.ensemble). Each is "
        if m.towers > 1
        else ""
    )
    return f"""# Model card: {model_id}

**What it does.** Maps an aligned face crop ({m.input_size}x{m.input_size} px, RGB)
and its 68 landmarks to a {m.dim}-d unit vector; cosine similarity >=
{calibration.threshold:.4f} means "same person" (calibrated at FAR = {calibration.far:g} on
{calibration.validation_faces} faces of held-out training people). {_views_text(calibration.views)}

**Files.** `model.weights.h5`: the Keras weights (their sha256 makes the
fingerprint). `model.tflite`: the same network as a LiteRT flatbuffer, which
the embedder serves (several times faster on a CPU; the same embeddings to
float32 rounding). Both are hashed in `manifest.json`.

**Architecture.** {towers}MobileNetV2 (alpha {m.alpha}) with a global depthwise
convolution head, plus a landmark branch (136 -> 128 -> 64) fused before the
embedding layer; {init}.
Crops are aligned to the `{m.template}` template (embedder/align.py){template_note}.

**Training.** Objective: {", ".join(terms)}. Batches of
{cfg.people_per_batch} people x {cfg.images_per_person} images plus
{cfg.extra_per_batch} faces for distillation; {cfg.steps} steps; AdamW, peak
learning rate {cfg.learning_rate}, warm-up then cosine decay; seed {cfg.seed}.{frozen}{extra}
Data: LFW (deep-funneled) without any person of the View 1 test split, and
UTKFace part 1 crops as unlabelled faces (distillation only, never as identities).
Reproduce: the commands of README.md, "Training the model" (`likeness train`,
`likeness evaluate`, `likeness calibrate --export`); this artifact was written
by `{command}`.

**Evaluation** (LFW View 1 pairsDevTest; the protocol's threshold comes from
pairsDevTrain, whose people this model was trained on, which biases it upwards;
the second column uses the threshold best on held-out training people; rank-1
over the test people with one enrolled image each):

| backend | DevTest (DevTrain thr.) | DevTest (held-out thr.) | AUC | TAR@FAR=1e-3 | rank-1 |
|---|---|---|---|---|---|
{rows}

**Limits.** LFW is a research benchmark of mostly frontal, well-lit celebrity
photos; it says little about children, strong poses, low light or
demographic differentials, none of which was measured here. The training data
(LFW, UTKFace) is for research use only. Use a threshold calibrated on your own
population before deciding anything that matters about a person.
"""
