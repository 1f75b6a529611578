"""Building a recipe: its stages in order, then evaluation, calibration and
the exported artifact. Each step that is done is skipped, an interrupted
stage resumes from its checkpoint, so the same command finishes a build
however often it was stopped."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer.config import optional_defaults
from trainer.recipe import INITS, Recipe, Stage, init_artifact, verified_artifact
from trainer.run import BuildFolder, RunFolder
from trainer.sources import data_report

log = logging.getLogger(__name__)

#: Receives one line per event of a build (the CLI prints them).
Report = Callable[[str], None]

#: The steps after the stages, in order.
FINISHING = ("evaluate", "calibrate", "export")


@dataclass(frozen=True)
class Build:
    """A recipe, the folder it is built into and where its caches live."""

    recipe: Recipe
    folder: BuildFolder
    cache_root: Path
    workers: int = 2

    def run(self, stage: Stage) -> RunFolder:
        return self.folder.stage(stage.name)


@dataclass(frozen=True)
class Step:
    """One line of the plan: a stage or a finishing step and how far it got."""

    name: str
    what: str
    status: str


def plan(build: Build) -> list[Step]:
    """Every step of the build with its status: done, resumable, or to do."""
    steps = []
    for stage in build.recipe.stages:
        run = build.run(stage)
        steps.append(Step(stage.name, _describe(stage), _status(run, stage)))
    final = build.run(build.recipe.final)
    done = (final.evaluation, final.calibration, build.folder.artifact_manifest)
    whats = (
        f"LFW pairsDevTest, ours and dlib-resnet, {build.recipe.test_views.count} views",
        f"threshold at FAR {build.recipe.far:g} on held-out training people",
        f"the model {build.recipe.model_id} into {build.folder.artifact}",
    )
    for name, what, path in zip(FINISHING, whats, done, strict=True):
        steps.append(Step(name, what, "done" if path.exists() else "to do"))
    return steps


def dry_run(build: Build) -> str:
    """The plan as text: the data each source lists, every step, and the
    arms of the recipe's ablation (each a build of its own)."""
    arm = f", arm {build.recipe.arm}" if build.recipe.arm else ""
    lines = [f"recipe {build.recipe.file}{arm} -> {build.folder.path}", "data:"]
    try:
        for s in data_report(build.recipe, build.cache_root):
            who = f"{s.people} people" if s.kind != "unlabelled" else "unlabelled"
            cached = "not cached" if s.faces is None else f"{s.faces} faces cached"
            lines.append(
                f"  {s.name} ({s.kind}): {s.images} images, {who}; left out"
                f" {s.excluded_images} images of {s.excluded_people} test people; {cached}"
            )
    except OSError as exc:
        lines.append(f"  not readable here: {exc}")
    lines.append("steps:")
    lines += [f"  {s.name:<12} {s.status:<28} {s.what}" for s in plan(build)]
    if build.recipe.arms and build.recipe.arm is None:
        lines += arm_lines(build)
    return "\n".join(lines)


def arm_build(build: Build, arm: str) -> Build:
    """The build of arm ``arm`` of ``build``'s recipe, beside it
    (``<runs>/<recipe>-<arm>``)."""
    recipe = build.recipe.with_arm(arm)
    return Build(recipe, BuildFolder(build.folder.path.parent / recipe.name), build.cache_root)


def arm_lines(build: Build) -> list[str]:
    """The ablation's arms: each one's loss terms per stage and how far its
    build got; every other setting is the recipe's, the same for all arms."""
    lines = [
        "arms (an ablation at equal budget: same network, data, batches, steps, schedule and"
        " seeds; only the loss terms differ):"
    ]
    for arm in build.recipe.arms:
        sub = arm_build(build, arm.name)
        changed = ", ".join(f"{k} = {v!r}" for k, v in arm.settings.items()) or "nothing"
        steps = plan(sub)
        done = sum(1 for step in steps if step.status == "done")
        lines += [
            f"  {arm.name}: {arm.about or '-'}",
            f"    -> {sub.folder.path} ({done}/{len(steps)} steps done)",
            f"    sets {changed}",
            f"    likeness-train build {build.recipe.file} --arm {arm.name}",
        ]
        for stage in sub.recipe.stages:
            if not stage.average:
                lines.append(
                    f"    {stage.name:<12} {stage.settings['steps']} steps:"
                    f" {loss_terms(stage.settings)}"
                )
    return lines


def loss_terms(settings: Mapping[str, Any]) -> str:
    """A stage's loss as text: each term that is on, with its weight."""
    value = {**optional_defaults(), **settings}
    names = {"triplet": "triplet_weight", "distillation": "distill_weight"}
    terms = [f"{name} x{value[key]:g}" for name, key in names.items() if value[key] > 0]
    if value["relation_weight"] > 0:
        terms.append(f"relation x{value['relation_weight']:g}")
    if value["margin_head"] != "none":
        terms.append(
            f"{value['margin_head']} head x{value['head_weight']:g}"
            f" (margin {value['head_margin']:g}, scale {value['head_scale']:g})"
        )
    return " + ".join(terms) or "no loss term"


def run_build(
    build: Build,
    only: str | None = None,
    report: Report = log.info,
    max_minutes: float | None = None,
) -> bool:
    """Run the build's steps that are not done (only stage ``only`` when
    given). Returns whether every step it was asked for finished (False:
    stopped by ``max_minutes``; run again to resume). Raises ValueError for
    data, caches or run folders that do not fit the recipe."""
    from trainer.average import average_runs
    from trainer.plots import plot_history
    from trainer.sources import excluded_people, held_out_people, stage_caches
    from trainer.train import train

    recipe = build.recipe
    build.folder.path.mkdir(parents=True, exist_ok=True)
    if recipe.file.resolve() != build.folder.recipe.resolve():
        shutil.copyfile(recipe.file, build.folder.recipe)
    if recipe.arm is not None:
        build.folder.arm.write_text(recipe.arm)
    started = time.monotonic()
    for stage in [recipe.stage(only)] if only else recipe.stages:
        run = build.run(stage)
        if run.finished:
            report(f"{stage.name}: done")
            continue
        artifact = init_artifact(stage.init)
        parents = stage.average or (() if stage.init in INITS or artifact else (stage.init,))
        for parent in parents:
            if not build.folder.stage(parent).finished:
                raise ValueError(f"stage {stage.name} needs stage {parent} first")
        if artifact is not None and not stage.average:
            _check_artifact(artifact)
        if stage.average:
            average_runs([build.folder.stage(p) for p in stage.average], run)
            report(f"{stage.name}: averaged {', '.join(stage.average)}")
            continue
        report(f"{stage.name}: caching faces")
        stage_caches(recipe, stage, build.cache_root, build.workers)
        cfg = recipe.config(stage, build.cache_root, build.folder.path)
        left = None if max_minutes is None else max_minutes - (time.monotonic() - started) / 60
        result = train(
            cfg,
            run,
            excluded_people(recipe),
            _Meter(stage.name, report),
            left,
            held_out_people=held_out_people(recipe),
        )
        if not run.finished:
            report(f"{stage.name}: stopped at step {result.steps_done}; run again to resume")
            return False
        plot_history(result.history, run.training_curve)
        report(f"{stage.name}: done")
    if only is None:
        _finish(build, report)
    return True


def _check_artifact(folder: Path) -> None:
    """A stage starts only from the artifact its manifest's hashes describe."""
    try:
        verified_artifact(folder)
    except ValueError as exc:
        raise ValueError(f"init model: {exc}") from None


def _finish(build: Build, report: Report) -> None:
    from trainer.calibrate import calibrate
    from trainer.evaluate import evaluate_run
    from trainer.export import export_run
    from trainer.sources import evaluation_caches

    recipe = build.recipe
    final = build.run(recipe.final)
    if not final.evaluation.exists():
        caches = evaluation_caches(recipe, build.cache_root, build.workers)
        report(evaluate_run(final, recipe.lfw, caches, recipe.test_views))
    if not final.calibration.exists():
        result = calibrate(
            final, recipe.test_views, recipe.far, recipe.calibration_seed, recipe.calibration_rule
        )
        report(f"threshold at FAR {result.far:g} ({result.rule}): {result.threshold:.4f}")
    if not build.folder.artifact_manifest.exists():
        sources = data_report(recipe, build.cache_root)
        build.folder.data_report.write_text(json.dumps([asdict(s) for s in sources], indent=2))
        arm = f" --arm {recipe.arm}" if recipe.arm is not None else ""
        command = f"likeness-train build {recipe.file}{arm}"
        manifest = export_run(recipe, final, build.folder.artifact, sources, command)
        report(f"exported {manifest.fingerprint} to {build.folder.artifact}")


class _Meter:
    """Training progress as report lines, with the time left estimated from
    the pace since this process started the stage."""

    def __init__(self, stage: str, report: Report) -> None:
        self.stage, self.report = stage, report
        self.start: tuple[float, int] | None = None

    def __call__(self, done: int, total: int, row: dict[str, float]) -> None:
        now = time.monotonic()
        if self.start is None:
            self.start = (now, done)
        t0, step0 = self.start
        pace = (now - t0) / (done - step0) if done > step0 else None
        eta = "-" if pace is None else _duration((total - done) * pace)
        val = f"  val acc {row['val_accuracy']:.3f}" if "val_accuracy" in row else ""
        self.report(
            f"{self.stage}: step {done}/{total}  loss {row['loss']:.4f}"
            f"  {row['images_per_s']:.0f} img/s  ETA {eta}{val}"
        )


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes >= 60:
        return f"{minutes // 60}h{minutes % 60:02d}m"
    return f"{minutes}m" if minutes else f"{seconds:.0f}s"


def _describe(stage: Stage) -> str:
    if stage.average:
        return f"mean of the weights of {', '.join(stage.average)}"
    s = stage.settings
    views = f", {stage.views} views" if stage.views else ""
    return (
        f"from {stage.init}, {s['steps']} steps at {stage.input_size} px,"
        f" lr {s['learning_rate']:g}{views}"
    )


def _status(run: RunFolder, stage: Stage) -> str:
    if run.finished:
        return "done"
    if run.checkpoint_state.exists():
        step = json.loads(run.checkpoint_state.read_text())["step"]
        return f"resumes at step {step}/{stage.settings['steps']}"
    return "to do"
