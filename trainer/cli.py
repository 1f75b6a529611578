"""``likeness-train``: build a model from its recipe file, and the tools
that measure runs (evaluate, calibrate, validate). Installed with the
``train`` extra; ``likeness`` itself is the service and admin CLI only.

Options never restate recipe keys: where files go (``--runs``,
``--cache-dir``), how much CPU and time to spend (``--workers``,
``--max-minutes``) and, for ``validate``, the test-time views to compare.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from trainer.build import Build, dry_run, run_build
from trainer.recipe import RecipeError, load_recipe
from trainer.run import BuildFolder, RunFolder

app = typer.Typer(
    name="likeness-train",
    help="Train, evaluate and export Likeness embedding models from recipe files "
    "(trainer/recipes/*.toml).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Runs = Annotated[
    Path, typer.Option("--runs", help="Folder of build folders: a recipe builds into RUNS/<name>.")
]
CacheDir = Annotated[
    Path, typer.Option("--cache-dir", help="Aligned-face caches (built once, resumable).")
]
Target = Annotated[
    Path,
    typer.Argument(
        help="A recipe file (its last stage's run) or a stage's run folder inside a build folder.",
        exists=True,
    ),
]


def _build(
    recipe_file: Path, runs: Path, cache_dir: Path, workers: int = 2, arm: str | None = None
) -> Build:
    try:
        recipe = load_recipe(recipe_file)
        if arm is not None:
            recipe = recipe.with_arm(arm)
    except RecipeError as exc:
        raise typer.BadParameter(str(exc), param_hint="RECIPE") from exc
    return Build(recipe, BuildFolder(runs / recipe.name), cache_dir, workers)


def _target(target: Path, runs: Path, cache_dir: Path) -> tuple[Build, RunFolder]:
    """A recipe file, or a run folder whose build folder holds the recipe it was built from."""
    if target.is_file():
        build = _build(target, runs, cache_dir)
        return build, build.run(build.recipe.final)
    folder = BuildFolder(target.parent)
    if not folder.recipe.exists():
        raise typer.BadParameter(f"{target} is not a run folder of a build", param_hint="TARGET")
    return _folder_build(folder, runs, cache_dir), RunFolder(target)


def _folder_build(folder: BuildFolder, runs: Path, cache_dir: Path) -> Build:
    """The build in ``folder``, from the recipe (and arm) it was built with."""
    arm = folder.arm.read_text().strip() if folder.arm.exists() else None
    return Build(_build(folder.recipe, runs, cache_dir, arm=arm).recipe, folder, cache_dir)


@app.command()
def build(
    recipe: Annotated[Path, typer.Argument(help="The model's recipe file.", exists=True)],
    stage: Annotated[
        str | None, typer.Option(help="Run this stage only (its parents must be done).")
    ] = None,
    dry_run_: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan: data, stages, what is done, the ablation's arms; run nothing.",
        ),
    ] = False,
    arm: Annotated[
        str | None,
        typer.Option(
            help="Build this arm of the recipe's ablation ([arms.<name>]) into RUNS/<name>-<arm>."
        ),
    ] = None,
    runs: Runs = Path("runs"),
    cache_dir: CacheDir = Path("cache"),
    workers: Annotated[int, typer.Option(min=1, help="Processes building caches.")] = 2,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop (resumably) after this many minutes.")
    ] = None,
) -> None:
    """Build the model RECIPE declares, resumably.

    Every stage in order, then evaluation on LFW, calibration and the
    exported artifact in RUNS/<name>/model. Finished steps are skipped and an
    interrupted stage resumes: rerun the same command after any
    interruption. Exit code 3: stopped by --max-minutes. A recipe with an
    ablation ([arms.<name>], same budget, other loss terms) builds one arm
    per --arm; --dry-run lists them."""
    target = _build(recipe, runs, cache_dir, workers, arm)
    if stage is not None and stage not in {s.name for s in target.recipe.stages}:
        names = ", ".join(s.name for s in target.recipe.stages)
        raise typer.BadParameter(f"no stage {stage!r}; stages: {names}", param_hint="--stage")
    if dry_run_:
        typer.echo(dry_run(target))
        return
    logging.basicConfig(level=logging.WARNING)
    try:
        finished = run_build(target, stage, lambda line: typer.echo(line, err=True), max_minutes)
    except ValueError as exc:
        # Data, caches or run folders that do not fit the recipe are the
        # user's to fix: a message, not a traceback.
        raise typer.BadParameter(str(exc)) from exc
    if not finished:
        raise typer.Exit(3)


@app.command()
def evaluate(
    target: Target, runs: Runs = Path("runs"), cache_dir: CacheDir = Path("cache")
) -> None:
    """Evaluate a run and dlib-resnet on LFW.

    View 1 DevTest, View 2 for dlib-resnet and identification, with the
    recipe's test-time views; prints a markdown table and writes the figures
    into the run folder."""
    from trainer.evaluate import evaluate_run
    from trainer.sources import evaluation_caches

    where, run = _target(target, runs, cache_dir)
    caches = evaluation_caches(where.recipe, cache_dir, where.workers)
    typer.echo(evaluate_run(run, where.recipe.lfw, caches, where.recipe.test_views))
    typer.echo(f"figures: {run.evaluation}; ROC/DET plot: {run.roc_plot}")


@app.command("test-sets")
def test_sets(
    target: Target,
    runs: Runs = Path("runs"),
    cache_dir: CacheDir = Path("cache"),
    test_people: Annotated[
        str, typer.Option(help="The recipe's [test_people] list to evaluate on.")
    ] = "celeba",
    source: Annotated[
        str, typer.Option(help="The recipe source whose cache holds those people's faces.")
    ] = "celeba",
    people: Annotated[
        Path | None,
        typer.Option(
            exists=True, help="Another people list (e.g. training people, to try the command)."
        ),
    ] = None,
    artifact: Annotated[
        Path | None,
        typer.Option(
            help="The exported model whose served default threshold (manifest) each of our "
            "rows reports TAR and FAR at; default: the build's own export, when there is one.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    dlib_model: Annotated[
        Path | None,
        typer.Option(
            help="dlib-resnet's model folder, for its served threshold in its rows.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Evaluate a run and dlib-resnet on both test sets, in one table.

    LFW pairsDevTest and every same/different pair of the held-out people's
    cached faces: accuracy (10-fold), AUC, EER, TAR at FAR 1e-3 and 1e-4,
    rank-1. Test people are measured once, for the chosen model
    (trainer/recipes/v7-rule.md); the rows go into the run folder too."""
    import json
    from dataclasses import asdict

    from trainer.sources import evaluation_caches
    from trainer.test_people import read_test_people
    from trainer.test_sets import evaluate_test_sets, markdown_table

    where, run = _target(target, runs, cache_dir)
    recipe = where.recipe
    lists = dict(recipe.test_people)
    sources = {s.name: s for s in recipe.sources}
    if people is None and test_people not in lists:
        raise typer.BadParameter(f"{recipe.file} names no [test_people] list {test_people!r}")
    if source not in sources:
        raise typer.BadParameter(f"{recipe.file} has no source {source!r}")
    for hint, folder in (("--artifact", artifact), ("--dlib-model", dlib_model)):
        if folder is not None and not (folder / "manifest.json").is_file():
            # Named on purpose: its served threshold must not quietly read "n/a".
            raise typer.BadParameter(f"{folder} holds no manifest.json", param_hint=hint)
    listed = read_test_people(people or lists[test_people])
    served = _served_thresholds(artifact or where.folder.artifact, dlib_model)
    lfw_cache = evaluation_caches(recipe, cache_dir, where.workers)[-1]
    celeba_cache = recipe.cache_dir(sources[source], recipe.final.input_size, cache_dir)
    try:
        rows = evaluate_test_sets(
            run, recipe.lfw, lfw_cache, celeba_cache, listed, recipe.test_views, served
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    out = run.test_sets
    out.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    typer.echo(markdown_table(rows))
    typer.echo(f"figures: {out}")


def _served_thresholds(artifact: Path, dlib_model: Path | None) -> dict[str, float]:
    """Served default thresholds by test-set backend name, from the manifests there are."""
    from embedder.manifest import read_manifest

    folders = {"likeness-mobilenet": artifact, "dlib-resnet": dlib_model}
    return {
        name: read_manifest(folder).default_threshold
        for name, folder in folders.items()
        if folder is not None and (folder / "manifest.json").is_file()
    }


@app.command("model-card")
def model_card_(
    target: Annotated[
        Path,
        typer.Argument(
            help="A recipe file (RUNS/<name> is its build) or a build folder.", exists=True
        ),
    ],
    runs: Runs = Path("runs"),
    cache_dir: CacheDir = Path("cache"),
    artifact: Annotated[
        Path | None,
        typer.Option(
            help="The artifact whose MODEL_CARD.md is rewritten (default: the build's own "
            "export); it must hold the build's final weights.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Render a finished build's model card again, weights untouched.

    From the recipe, the final run's calibration, evaluation and test sets
    (test-sets.json, when written) and the data counted from the caches
    (--cache-dir), the same rendering as the export's. Only MODEL_CARD.md
    changes, which the manifest does not hash. Exit code 2: the artifact's
    fingerprint is not the build's final weights', its files do not match
    its manifest, or the build is not finished."""
    from trainer.model_card import rewrite_card

    if target.is_file():
        build = _build(target, runs, cache_dir)
    else:
        folder = BuildFolder(target)
        if not folder.recipe.exists():
            raise typer.BadParameter(f"{target} holds no recipe.toml", param_hint="TARGET")
        build = _folder_build(folder, runs, cache_dir)
    run = build.run(build.recipe.final)
    try:
        card = rewrite_card(build.recipe, run, artifact or build.folder.artifact, cache_dir)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{card} written")


@app.command()
def calibrate(
    target: Target,
    runs: Runs = Path("runs"),
    cache_dir: CacheDir = Path("cache"),
    dlib_model: Annotated[
        Path | None,
        typer.Option(help="Also write dlib-resnet's threshold into this artifact's manifest."),
    ] = None,
) -> None:
    """Choose the served threshold on the run's held-out training people.

    The cosine threshold at the recipe's FAR, with the recipe's test-time
    views, by the recipe's rule; written into the run folder."""
    from trainer.calibrate import calibrate as run_calibration

    where, run = _target(target, runs, cache_dir)
    recipe = where.recipe
    result = run_calibration(
        run, recipe.test_views, recipe.far, recipe.calibration_seed, recipe.calibration_rule
    )
    typer.echo(
        f"threshold at FAR {result.far:g} ({result.rule}): {result.threshold:.4f} "
        f"(dlib-resnet {result.dlib_threshold:.4f})"
    )
    if dlib_model is not None:
        from trainer.export import update_threshold

        note = {"threshold_far": result.far, "calibration": "held-out LFW training people"}
        update_threshold(dlib_model, result.dlib_threshold, note)
        typer.echo(f"dlib-resnet threshold written to {dlib_model}")


@app.command("operating-points")
def operating_points_(
    recipe_file: Annotated[Path, typer.Argument(help="The shipped model's recipe.", exists=True)],
    artifact: Annotated[
        Path, typer.Option(help="The shipped artifact whose manifest gets the points.", exists=True)
    ],
    dlib_model: Annotated[
        Path | None,
        typer.Option(help="Also write dlib-resnet's points into this artifact's manifest."),
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option(
            help="The run folder that trained the artifact (e.g. runs/v7d/more): its"
            " validation faces, as they were cached, instead of drawing them again.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    cache_dir: CacheDir = Path("cache"),
    workers: Annotated[int, typer.Option(min=1, help="Processes building caches.")] = 2,
) -> None:
    """Operating points (FAR 1e-2, 1e-3, 1e-4) for a shipped model, by its
    recipe's `[calibration] rule`: on the validation faces of the run that
    trained it (--run), or, where that folder is gone, on its recipe's
    validation people drawn again and cached; refused unless the recorded
    calibration is reproduced. Weights and fingerprint are unchanged; galleries
    keep the threshold they were given until `likeness galleries update`."""
    from trainer.recalibrate import recalibrate_artifact, recalibrate_from_run, write_points

    try:
        recipe = load_recipe(recipe_file)
        if run is not None:
            result = recalibrate_from_run(recipe, artifact, RunFolder(run))
            # The run's calibration is what its artifact serves: the model
            # card is written from it and checked against the manifest.
            result.save(RunFolder(run).calibration)
        else:
            result = recalibrate_artifact(recipe, artifact, cache_dir, workers, typer.echo)
    except (RecipeError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    command = (
        f"likeness-train operating-points {recipe_file} --artifact {artifact}"
        + (f" --dlib-model {dlib_model}" if dlib_model else "")
        + (f" --run {run}" if run is not None else f" --cache-dir {cache_dir}")
    )
    # The calibration recorded is the one served now, so a later run of this
    # command checks itself against it.
    note = {"operating_points_command": command, "calibration": result.record()}
    write_points(artifact, result.operating_points, result.far, note)
    measured = sorted({r.source for p in result.operating_points for r in p.rates})
    from trainer.export import CARD_NAME

    card = artifact / CARD_NAME
    if card.exists():
        from trainer.model_card import with_operating_points

        text = (
            f"\nComputed from the shipped weights by `{command}` on"
            + (
                " its run's validation faces"
                if run is not None
                else " the recipe's validation people drawn again"
            )
            + f". Sources measured: {', '.join(measured)}, the only labelled"
            " source(s) this model's recipe holds out people of."
            + "".join(
                f" `{p.name}` on {r.source} rests on {round(r.far * r.impostor_pairs)} of the"
                f" {r.impostor_pairs:,} sampled different-person pairs scoring at or above it."
                for p in result.operating_points[-1:]
                for r in p.rates
            )
            + "\n"
        )
        card.write_text(
            with_operating_points(card.read_text(), result.operating_points, text, result.rule)
        )
    if dlib_model is not None and result.dlib_operating_points:
        write_points(
            dlib_model,
            result.dlib_operating_points,
            result.far,
            {"operating_points_command": command},
        )
    for ours in result.operating_points:
        rates = ", ".join(
            f"{r.source}: TAR {r.tar:.2%} FAR {r.far:.1e} ({r.genuine_pairs} genuine,"
            f" {r.impostor_pairs} impostor pairs of {r.distinct_impostor_pairs} distinct)"
            for r in ours.rates
        )
        typer.echo(f"{ours.name}: threshold {ours.threshold:.4f}; {rates}")
    for theirs in result.dlib_operating_points:
        tar = ", ".join(f"{r.source}: TAR {r.tar:.2%}" for r in theirs.rates)
        typer.echo(f"dlib-resnet {theirs.name}: threshold {theirs.threshold:.4f}; {tar}")


@app.command()
def validate(
    targets: Annotated[
        list[Path],
        typer.Argument(
            help="Finished run folders (or recipes: their last stage), all measured on the "
            "held-out people of the last one and the views of them in its view caches.",
            exists=True,
        ),
    ],
    shipped: Annotated[
        list[Path] | None,
        typer.Option(
            help="A shipped model folder (manifest.json + weights) to measure first, on the "
            "same faces: the model a candidate would replace (the reference of --bootstrap). "
            "Repeatable.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    tta_shift_px: Annotated[
        int | None,
        typer.Option(min=0, max=16, help="Test-time shift views, px (default: the recipe's)."),
    ] = None,
    tta_flip: Annotated[
        bool | None,
        typer.Option("--tta-flip/--no-tta-flip", help="Mirror views (default: the recipe's)."),
    ] = None,
    bootstrap: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also compare every later run with the first: EER and TAR@FAR=1e-3 "
            "differences with 95% intervals from this many paired resamples of the "
            "held-out people (1000 is plenty); 0 = off.",
        ),
    ] = 0,
    consecutive: Annotated[
        bool,
        typer.Option(
            "--consecutive",
            help="With --bootstrap, also compare every model with the one named just before "
            "it (an ablation's arms in order).",
        ),
    ] = False,
    runs: Runs = Path("runs"),
) -> None:
    """Measure finished runs on the held-out training people.

    Every pair of their faces (AUC, EER, TAR at FAR 1e-3 and 1e-2; clean
    photo vs degraded view where views are cached): the figures a model is
    chosen by, never LFW's test people. Sources pooled, then per source
    (cache) when the held-out people come from more than one."""
    from embedder.model import InferenceViews
    from trainer.selection import validate as run_validation
    from trainer.validate import held_out_table, paired_table

    if bootstrap and len(targets) + len(shipped or ()) < 2:
        raise typer.BadParameter("--bootstrap compares models: give two or more")
    resolved = [_target(t, runs, Path("cache")) for t in targets]
    served = resolved[-1][0].recipe.test_views
    views = InferenceViews(
        flip=served.flip if tta_flip is None else tta_flip,
        shift_px=served.shift_px if tta_shift_px is None else tta_shift_px,
    )
    try:
        result = run_validation(
            [run for _, run in resolved], views, bootstrap, shipped or (), consecutive
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="TARGETS") from exc
    typer.echo(held_out_table(result.reports))
    for source, reports in result.by_source.items():
        typer.echo(f"\nheld-out people of source {source} (pairs within it):")
        typer.echo(held_out_table(reports))
    if result.differences:
        typer.echo("")
        typer.echo(paired_table(result.differences))


@app.command("export-litert")
def export_litert(
    model: Annotated[
        Path,
        typer.Option(
            help="A likeness-mobilenet artifact folder (manifest.json + weights).",
            exists=True,
            file_okay=False,
        ),
    ],
) -> None:
    """Add the LiteRT file to an artifact exported before artifacts carried one.

    The embedder then serves it through LiteRT (several times faster on a
    CPU). The fingerprint stays: stored embeddings remain valid."""
    from likeness.errors import FailedPrecondition
    from trainer.export import add_litert

    try:
        manifest = add_litert(model)
    except (FailedPrecondition, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from exc
    typer.echo(f"{manifest.fingerprint}: {model / manifest.extra['litert']} written")


def main() -> None:
    """Entry point of the ``likeness-train`` script."""
    app(prog_name="likeness-train")
