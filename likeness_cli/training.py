"""``likeness train | average | ensemble | validate | evaluate | calibrate``: trainer commands.

The trainer needs the ``trainer`` extra (TensorFlow, dlib); it is imported
inside each command so the rest of the CLI works without it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from trainer.recipe import BASE, TEACHER_DIM, Recipe

Lfw = Annotated[
    Path,
    typer.Option(
        "--lfw",
        help="LFW root: images_deepfunneled/ and the pairs/people files.",
        envvar="LIKENESS_LFW",
        exists=True,
        file_okay=False,
    ),
]
Run = Annotated[Path, typer.Option("--run", help="Run folder (config, checkpoints, results).")]
TtaShift = Annotated[
    int,
    typer.Option(
        "--tta-shift-px",
        min=0,
        max=16,
        help="Test-time views: besides each face and its mirror image, the face shifted by "
        "this many crop pixels right, left, down and up (and their mirrors); 0 = none. "
        "Use the same value for evaluate and calibrate: the exported model serves it.",
    ),
]
TtaFlip = Annotated[
    bool,
    typer.Option(
        "--tta-flip/--no-tta-flip",
        help="Test-time views: also embed each view's mirror image. Use the same choice for "
        "evaluate and calibrate: the exported model serves it.",
    ),
]
CacheDir = Annotated[
    Path, typer.Option("--cache-dir", help="Aligned-face caches (built once, resumable).")
]


def train(
    lfw: Lfw,
    run: Run = Path("runs/v1"),
    cache_dir: CacheDir = Path("cache"),
    unlabelled: Annotated[
        Path | None,
        typer.Option(
            help="Folder of unlabelled face images, used for distillation only.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    imagenet_weights: Annotated[
        Path | None,
        typer.Option(help="Keras-named MobileNetV2 ImageNet weights (.npz).", exists=True),
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Training steps.")] = BASE.steps,
    distill_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the dlib-resnet distillation term; 0 = off.")
    ] = BASE.distill_weight,
    relation_weight: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Weight of pairwise-similarity distillation (the batch's cosines against "
            "dlib-resnet's); 0 = off.",
        ),
    ] = BASE.relation_weight,
    triplet_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the semi-hard triplet term (the core).")
    ] = BASE.triplet_weight,
    margin: Annotated[
        float, typer.Option(min=0.0, help="Triplet margin, squared unit-sphere distance.")
    ] = BASE.margin,
    people_per_batch: Annotated[
        int, typer.Option(min=2, help="P: people per batch for the triplet term (K = 2 each).")
    ] = BASE.people_per_batch,
    extra_per_batch: Annotated[
        int, typer.Option(min=0, help="Faces drawn from all training faces, for distillation.")
    ] = BASE.extra_per_batch,
    learning_rate: Annotated[
        float, typer.Option(min=0.0, help="Peak learning rate (warm-up, then cosine decay).")
    ] = BASE.learning_rate,
    template: Annotated[
        str, typer.Option(help="Crop alignment template: dlib (teacher's view) or arcface.")
    ] = BASE.template,
    alpha: Annotated[
        float,
        typer.Option(
            min=0.1,
            max=1.4,
            help="MobileNetV2 width multiplier (--imagenet-weights must be of the same alpha).",
        ),
    ] = BASE.alpha,
    input_size: Annotated[
        int,
        typer.Option(
            min=32,
            max=256,
            help="Side of the aligned crop, pixels. Caches are built per crop size: give "
            "another size its own --cache-dir.",
        ),
    ] = BASE.input_size,
    dim: Annotated[
        int,
        typer.Option(
            min=2, help="Embedding length (distillation needs dlib's 128; else --distill-weight 0)."
        ),
    ] = BASE.dim,
    init_weights: Annotated[
        Path | None,
        typer.Option(
            help="Start from a trained run's final.weights.h5 (same architecture; a run "
            "at another --input-size is fine) instead of --imagenet-weights.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    freeze_backbone_bn: Annotated[
        bool,
        typer.Option(
            help="Keep the backbone's BatchNorm on its moving statistics (about 2x faster; "
            "for fine-tuning from --init-weights)."
        ),
    ] = BASE.freeze_backbone_bn,
    data_seed: Annotated[
        int | None,
        typer.Option(help="Seed of batches and augmentation (default: the split's seed)."),
    ] = BASE.data_seed,
    views: Annotated[
        int,
        typer.Option(
            min=0,
            help="Seeded views (mirrored, degraded, alignment jittered) of every training "
            "image to cache with the teacher's descriptors of the same view and train on.",
        ),
    ] = BASE.views,
    first_view_seed: Annotated[
        int,
        typer.Option(
            min=1,
            help="Seed of the first of the --views views (a later stage can add fresh views).",
        ),
    ] = BASE.first_view_seed,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop (resumably) after this many minutes.")
    ] = None,
    teacher_from: Annotated[
        Path | None,
        typer.Option(
            help="The --cache-dir of caches built at another --input-size: reuse their "
            "dlib-resnet descriptors (they do not depend on the crop size) instead of "
            "computing them again, which makes a cache build about 4x faster.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Build the face caches and train (or resume) a model into --run.

    The defaults are the shipped model's recipe (its MODEL_CARD.md).

    The people of LFW's View 1 test split never enter training. Rerun the
    same command to resume after an interruption.
    """
    from embedder.align import TEMPLATES
    from trainer.workflow import run_training

    if template not in TEMPLATES:
        raise typer.BadParameter(f"one of {sorted(TEMPLATES)}", param_hint="--template")
    if dim != TEACHER_DIM and distill_weight > 0:
        raise typer.BadParameter(
            f"distillation needs dlib's {TEACHER_DIM}-d embedding: use --dim {TEACHER_DIM}"
            " or --distill-weight 0",
            param_hint="--dim",
        )

    def progress(step: int, total: int, row: dict[str, float]) -> None:
        val = f"  val acc {row['val_accuracy']:.3f}" if "val_accuracy" in row else ""
        relation = f"  relation {row['relation']:.4f}" if row.get("relation") else ""
        typer.echo(
            f"step {step}/{total}  loss {row['loss']:.4f}  triplet {row['triplet']:.4f}  "
            f"distill {row['distill']:.4f}{relation}  {row['images_per_s']:.0f} img/s{val}",
            err=True,
        )

    recipe = Recipe(
        steps=steps,
        triplet_weight=triplet_weight,
        distill_weight=distill_weight,
        relation_weight=relation_weight,
        margin=margin,
        people_per_batch=people_per_batch,
        extra_per_batch=extra_per_batch,
        learning_rate=learning_rate,
        template=template,
        freeze_backbone_bn=freeze_backbone_bn,
        data_seed=data_seed,
        views=views,
        first_view_seed=first_view_seed,
        alpha=alpha,
        input_size=input_size,
        dim=dim,
    )
    try:
        result = run_training(
            lfw,
            cache_dir,
            run,
            unlabelled=unlabelled,
            imagenet_weights=imagenet_weights,
            recipe=recipe,
            init_weights=init_weights,
            max_minutes=max_minutes,
            progress=progress,
            teacher_from=teacher_from,
        )
    except ValueError as exc:
        # Data, caches or a run folder that do not fit the command are the
        # user's to fix: a message, not a traceback.
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"steps done: {result.steps_done}")
    typer.echo(f"training curve: {run / 'training_curve.png'}")


def evaluate(
    lfw: Lfw,
    run: Run = Path("runs/v1"),
    cache_dir: CacheDir = Path("cache"),
    tta_shift_px: TtaShift = 0,
    tta_flip: TtaFlip = True,
) -> None:
    """Evaluate the run's model and dlib-resnet on LFW (View 1 DevTest,
    View 2 for dlib-resnet, identification); prints a markdown table."""
    from trainer.workflow import evaluate as run_evaluation

    table, plot = run_evaluation(lfw, cache_dir, run, run, tta_shift_px, tta_flip)
    typer.echo(table)
    typer.echo(f"ROC/DET plot: {plot}")
    typer.echo(f"figures: {run / 'evaluation.json'}")


def calibrate(
    run: Run = Path("runs/v1"),
    far: Annotated[float, typer.Option(min=1e-6, max=0.5, help="Target false accept rate.")] = 1e-3,
    export: Annotated[
        Path | None, typer.Option(help="Write the model artifact (weights, manifest, card) here.")
    ] = None,
    model_id: Annotated[str, typer.Option(help="Model id in the manifest.")] = "likeness-mnv2",
    dlib_model: Annotated[
        Path | None,
        typer.Option(help="Also write dlib-resnet's calibrated threshold into this artifact."),
    ] = None,
    tta_shift_px: TtaShift = 0,
    tta_flip: TtaFlip = True,
) -> None:
    """Choose the cosine threshold at --far on held-out training people and,
    with --export, ship the run as a served model artifact (serving the
    test-time views it was calibrated with)."""
    from trainer.workflow import calibrate as run_calibration
    from trainer.workflow import export_run

    result = run_calibration(run, far, tta_shift_px=tta_shift_px, tta_flip=tta_flip)
    typer.echo(
        f"threshold at FAR {far:g}: {result.threshold:.4f} "
        f"(dlib-resnet {result.dlib_threshold:.4f})"
    )
    if export is not None:
        command = "likeness " + shlex.join(sys.argv[1:])
        try:
            exported = export_run(run, export, result, command, model_id)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--tta-shift-px / --tta-flip") from exc
        typer.echo(f"exported: {exported}")
    if dlib_model is not None:
        from trainer.export import update_threshold

        note = {"threshold_far": far, "calibration": "held-out LFW training people"}
        update_threshold(dlib_model, result.dlib_threshold, note)
        typer.echo(f"dlib-resnet threshold written to {dlib_model}")


def average(
    runs: Annotated[
        list[Path],
        typer.Option(
            "--from",
            help="A finished run folder; give two or more (the last one's config is kept).",
            exists=True,
            file_okay=False,
        ),
    ],
    run: Run = Path("runs/v1"),
) -> None:
    """Write --run as the weight average of the --from runs (same model,
    caches and held-out people); evaluate and calibrate it like any run."""
    from trainer.average import average_runs

    try:
        out = average_runs(runs, run)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"averaged {len(runs)} runs into {out / 'final.weights.h5'}")


def ensemble(
    runs: Annotated[
        list[Path],
        typer.Option(
            "--from",
            help="A finished single run folder; give two or more, one per tower (the last "
            "one's config and held-out people are kept).",
            exists=True,
            file_okay=False,
        ),
    ],
    run: Run = Path("runs/v1"),
) -> None:
    """Write --run as one model whose towers are the --from runs' networks
    (same architecture, caches and held-out people), its embedding the
    normalised sum of theirs; validate, evaluate and calibrate it like any
    run. Each tower costs a forward pass per view."""
    from trainer.ensemble import ensemble_runs

    try:
        out = ensemble_runs(runs, run)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"joined {len(runs)} runs as the towers of {out / 'final.weights.h5'}")


def validate(
    runs: Annotated[
        list[Path],
        typer.Option(
            "--run",
            help="A finished run folder; give one or more. All are measured on the held-out "
            "people of the last one and on the views of those people in its view caches.",
            exists=True,
            file_okay=False,
        ),
    ],
    tta_shift_px: TtaShift = 0,
    tta_flip: TtaFlip = True,
    bootstrap: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also compare every later --run with the first: EER and TAR@FAR=1e-3 "
            "differences with 95% intervals from this many paired resamples of the "
            "held-out people (1000 is plenty); 0 = off.",
        ),
    ] = 0,
) -> None:
    """Measure finished runs on every pair of held-out training people (AUC,
    EER, TAR at FAR 1e-3 and 1e-2; clean photo vs degraded view where views
    are cached): the figures a model is chosen by, never LFW's test people."""
    from trainer.validate import held_out_table, paired_table
    from trainer.workflow import validate as run_validation

    if bootstrap and len(runs) < 2:
        raise typer.BadParameter("--bootstrap compares runs: give two or more", param_hint="--run")
    try:
        result = run_validation(runs, tta_shift_px, tta_flip, bootstrap)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--run") from exc
    typer.echo(held_out_table(result.reports))
    if result.differences:
        typer.echo("")
        typer.echo(paired_table(result.differences))


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
    """Add the LiteRT file of its weights to a model artifact exported
    before artifacts carried one, so the embedder serves it through LiteRT
    (several times faster on a CPU). The fingerprint stays: stored
    embeddings remain valid."""
    from likeness.errors import FailedPrecondition
    from trainer.export import add_litert

    try:
        manifest = add_litert(model)
    except (FailedPrecondition, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from exc
    typer.echo(f"{manifest.fingerprint}: {model / manifest.extra['litert']} written")


def register(app: typer.Typer) -> None:
    """Add ``train``, ``average``, ``ensemble``, ``validate``, ``evaluate``,
    ``calibrate`` and ``export-litert`` to ``app``."""
    app.command()(train)
    app.command()(average)
    app.command()(ensemble)
    app.command()(validate)
    app.command()(evaluate)
    app.command()(calibrate)
    app.command("export-litert")(export_litert)
