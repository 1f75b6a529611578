"""The model card (MODEL_CARD.md of an exported artifact), written from the
recipe, the data actually read (trainer.sources.SourceReport) and the
figures measured, never from fixed text about the data. :func:`run_card` is
the one rendering of a run's card, used by the export and by
``likeness-train model-card`` (:func:`rewrite_card`), which re-renders a
shipped card without touching its weights."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embedder.manifest import sha256_file
from embedder.model import InferenceViews
from likeness.operating_points import OperatingPoint
from trainer.calibrate import POOLED, RULE_TEXT, Calibration
from trainer.export import CARD_NAME
from trainer.recipe import Recipe, Stage, init_artifact, verified_artifact
from trainer.run import RunFolder
from trainer.sources import HeldOutList, SourceReport, data_report, held_out_lists
from trainer.test_sets import TestSetRow, markdown_table, read_rows

_TEMPLATE_NOTES = {
    "dlib": ": the field of view of dlib's face chip, so the student sees what its teacher saw",
    "arcface": ": the common ArcFace 112 px template",
}

#: Terms that restrict a source's use to non-commercial purposes, the most
#: restrictive the recipes state.
_NON_COMMERCIAL = re.compile(r"non-?commercial", re.IGNORECASE)

_KIND_NOTES = {
    "identities": "identity folders",
    "listed": "a listed folder (path and identity per line)",
    "unlabelled": "unlabelled faces, distillation only, never as identities",
}


#: A run's calibration and LFW evaluation rows (:func:`run_figures`).
RunFigures = tuple[Calibration, list[dict[str, Any]]]


def run_figures(run: RunFolder) -> RunFigures:
    """The run's calibration and LFW evaluation (empty when not evaluated).
    Raises ValueError when it was evaluated with other test-time views than
    it was calibrated with."""
    calibration = Calibration.load(run.calibration)
    evaluation = json.loads(run.evaluation.read_text()) if run.evaluation.exists() else []
    if evaluation:
        ours = evaluation[0]
        evaluated = InferenceViews(flip=ours["tta_flip"], shift_px=ours["tta_shift_px"])
        if evaluated != calibration.views:
            raise ValueError(
                f"{run.path} was evaluated with {evaluated} but calibrated with"
                f" {calibration.views}: evaluate it again"
            )
    return calibration, evaluation


def run_card(
    recipe: Recipe,
    run: RunFolder,
    sources: Sequence[SourceReport],
    figures: RunFigures | None = None,
) -> str:
    """The card of ``run``'s final weights: the recipe, the data read
    (``sources``), the test people left out, the run's calibration and
    evaluation (``figures``, read by :func:`run_figures` when not given),
    and its test sets when ``likeness-train test-sets`` wrote them. Raises
    ValueError as :func:`run_figures` and for unreadable test-set rows."""
    calibration, evaluation = figures if figures is not None else run_figures(run)
    tests = read_rows(run.test_sets) if run.test_sets.exists() else []
    return model_card(recipe, sources, calibration, evaluation, held_out_lists(recipe), tests)


def rewrite_card(recipe: Recipe, run: RunFolder, artifact: Path, cache_root: Path) -> Path:
    """Render the card of ``run`` (the recipe's final stage) again into
    ``artifact``, the data counted afresh from the caches under
    ``cache_root``; no other file of the artifact changes. Raises ValueError
    unless the artifact's files match its manifest and its fingerprint is
    that of the run's final weights (a card never describes other weights),
    and when the artifact serves other operating points than the run's."""
    if not run.finished:
        raise ValueError(f"{run.path} has no final weights: the build is not finished")
    manifest = verified_artifact(artifact)
    expected = f"{recipe.model_id}@{sha256_file(run.final_weights)[:12]}"
    if manifest.fingerprint != expected:
        raise ValueError(
            f"{artifact} holds {manifest.fingerprint}, not the build's final weights"
            f" {expected} ({run.final_weights}): its card would describe other weights"
        )
    figures = run_figures(run)
    calibration = figures[0]
    if manifest.operating_points and manifest.operating_points != calibration.operating_points:
        raise ValueError(
            f"{artifact} serves other operating points than {run.calibration} holds:"
            " its card would state other thresholds"
        )
    card = run_card(recipe, run, data_report(recipe, cache_root), figures)
    path = artifact / CARD_NAME
    path.write_text(card)
    return path


def model_card(
    recipe: Recipe,
    sources: Sequence[SourceReport],
    calibration: Calibration,
    evaluation: Sequence[dict[str, Any]],
    held_out: Sequence[HeldOutList] = (),
    test_sets: Sequence[TestSetRow] = (),
) -> str:
    """The card's markdown: ``held_out`` the test-people lists left out of
    every source, ``test_sets`` the rows of ``likeness-train test-sets``
    (no "Test sets" section without them)."""
    m = recipe.network
    size = recipe.final.input_size
    template_note = _TEMPLATE_NOTES.get(m.template, "")
    rows = "\n".join(
        f"| {e['backend']} | {e['devtest_accuracy']:.2%} "
        f"| {e['devtest_accuracy_val_threshold']:.2%} | {e['devtest_auc']:.4f} "
        f"| {e['devtest_tar_at_far_1e3']:.2%} | {e['rank1']:.2%} |"
        for e in evaluation
    )
    data_rows = "\n".join(_source_row(s) for s in sources)
    points = operating_points_text(calibration.operating_points, rule=calibration.rule)
    stages = "\n".join(f"{i}. {_stage_text(recipe, s)}" for i, s in enumerate(recipe.stages, 1))
    return f"""# Model card: {recipe.model_id}

**What it does.** Maps an aligned face crop ({size}x{size} px, RGB)
and its 68 landmarks to a {m.dim}-d unit vector; cosine similarity >=
{calibration.threshold:.4f} means "same person" (calibrated at FAR = {calibration.far:g} on
{calibration.validation_faces} faces of held-out training people). {views_text(calibration.views)}

**Files.** `model.weights.h5`: the Keras weights (their sha256 makes the
fingerprint). `model.tflite`: the same network as a LiteRT flatbuffer, which
the embedder serves (several times faster on a CPU; the same embeddings to
float32 rounding). Both are hashed in `manifest.json`.

**Architecture.** MobileNetV2 (alpha {m.alpha}) with a global depthwise
convolution head, plus a landmark branch (136 -> 128 -> 64) fused before the
embedding layer. Crops are aligned to the `{m.template}` template
(embedder/align.py){template_note}.

{_data_text(recipe, held_out, calibration)}

| source | kind | images | people | left out (test people) | faces found | terms |
|---|---|---|---|---|---|---|
{data_rows}

**Training** (recipe `{recipe.file.name}`; rebuild with `likeness-train build {recipe.file}`):

{stages}

**Evaluation** (LFW View 1 pairsDevTest; the protocol's threshold comes from
pairsDevTrain, whose people this model was trained on, which biases it upwards;
the second column uses the threshold best on held-out training people; rank-1
over the test people with one enrolled image each):

| backend | DevTest (DevTrain thr.) | DevTest (held-out thr.) | AUC | TAR@FAR=1e-3 | rank-1 |
|---|---|---|---|---|---|
{rows}

{_test_sets_text(test_sets)}{points}{_limits_text(recipe, sources)}"""


def _data_text(recipe: Recipe, held_out: Sequence[HeldOutList], calibration: Calibration) -> str:
    """The Data paragraph: what left every source, and the validation people."""
    lists = "\n".join(
        f"- {h.name}: {' and '.join(f'`{f}`' for f in h.files)}, {h.people:,} people"
        for h in held_out
    )
    left_out = (
        f"\n\nLeft out of every source, never trained, validated or calibrated on:\n\n{lists}"
        if held_out
        else ""
    )
    s = recipe.final.settings
    return f"""**Data** (as read by the build; faces found at {recipe.final.input_size} px, counted
among the listed images only).{left_out}

Validation people: a seeded {s["val_fraction"]:.0%} of the remaining people with two or
more images (split seed {s["seed"]}), held out of training; the model was chosen on
them (`likeness-train validate`) and its thresholds calibrated on them
({calibration.validation_faces} faces)."""


def _test_sets_text(rows: Sequence[TestSetRow]) -> str:
    """The card's "Test sets" section (empty without rows)."""
    if not rows:
        return ""
    return f"""**Test sets (measured once, after the model was chosen)** by `likeness-train
test-sets`, never used to choose or tune it; their people are left out of every
source. Accuracy by 10-fold cross-validation on each set's own pairs (a set of
all pairs of its faces is mostly different-person pairs, which dominate its
accuracy: the pair counts are in the table); TAR at each FAR read off the
set's own pairs; TAR and FAR at the served threshold are what a gallery at
that threshold would see:

{markdown_table(rows)}

"""


def _limits_text(recipe: Recipe, sources: Sequence[SourceReport]) -> str:
    """The card's "Limits" section: the terms that bind the model's use
    first, then what was not measured."""
    terms = ", ".join(f'{s.name} "{s.terms or "not stated"}"' for s in sources)
    binding = [s for s in sources if s.terms and _NON_COMMERCIAL.search(s.terms)]
    if binding:
        names = ", ".join(s.name for s in binding)
        strictest = "; ".join(sorted({str(s.terms) for s in binding}))
        bound = (
            "This model's use is bound by the most restrictive terms of its training"
            f" sources, those of {names}: **{strictest}**"
        )
    else:
        bound = (
            "This model's use is bound by the most restrictive terms of its training"
            " sources; a source whose terms are not stated binds it by whatever terms its"
            " owners set"
        )
    inherited = _inherited_text(recipe)
    return f"""**Limits.** {bound}. Terms per source: {terms}.{inherited}
LFW is a research benchmark of mostly frontal, well-lit celebrity photos; it
says little about children, strong poses, low light or demographic
differentials, none of which was measured here. Use a threshold calibrated on
your own population before deciding anything that matters about a person.
"""


def _inherited_text(recipe: Recipe) -> str:
    """Weights a stage starts from that were trained on other data."""
    starts = []
    for stage in recipe.stages:
        artifact = init_artifact(stage.init)
        if artifact is not None:
            starts.append(f"the model `{artifact}` (its own card lists the data it was trained on)")
        elif stage.init == "imagenet":
            starts.append(f"ImageNet-trained weights (`{recipe.imagenet_weights}`)")
    if not starts:
        return ""
    return (
        f" Training started from {' and '.join(starts)}: the terms of the data those"
        " weights were trained on bind this model too."
    )


def _source_row(s: SourceReport) -> str:
    people = str(s.people) if s.kind != "unlabelled" else "-"
    left_out = f"{s.excluded_images} images of {s.excluded_people} people"
    found = f"{s.faces} ({s.found:.1%})" if s.faces is not None and s.found is not None else "-"
    return (
        f"| {s.name} | {_KIND_NOTES[s.kind]} | {s.images} | {people} | {left_out} | {found}"
        f" | {s.terms or 'not stated'} |"
    )


def _stage_text(recipe: Recipe, stage: Stage) -> str:
    if stage.average:
        parts = ", ".join(f"`{p}`" for p in stage.average)
        return f"`{stage.name}`: the element-wise mean of the final weights of {parts}."
    s = stage.settings
    terms = [f"triplet (semi-hard, margin {s['margin']:.2f}, weight {s['triplet_weight']})"]
    if s["distill_weight"] > 0:
        terms.append(f"distillation from dlib-resnet (weight {s['distill_weight']})")
    if s["relation_weight"] > 0:
        terms.append(f"pairwise-similarity distillation (weight {s['relation_weight']})")
    init = {"imagenet": "ImageNet weights", "random": "random weights"}.get(
        stage.init, f"`{stage.init}`"
    )
    frozen = "; backbone BatchNorm frozen" if s["freeze_backbone_bn"] else ""
    views = (
        f"; {stage.views} seeded views of every training image (trainer.views), each with"
        " the teacher's descriptor of that view, joined the data"
        if stage.views
        else ""
    )
    return (
        f"`{stage.name}`: from {init}, {stage.input_size} px crops, {s['steps']} steps of"
        f" {s['people_per_batch']} people x {s['images_per_person']} images plus"
        f" {s['extra_per_batch']} faces; {', '.join(terms)}; AdamW, peak learning rate"
        f" {s['learning_rate']}, warm-up then cosine decay{frozen}{views}."
    )


def operating_points_text(
    points: Sequence[OperatingPoint], note: str = "", rule: str = POOLED
) -> str:
    """The card's "Operating points" section (empty without points): each
    point's threshold with the TAR and FAR it gave on each held-out source,
    and the pairs they rest on, chosen by ``rule`` (trainer.calibrate.RULES);
    ``note`` (markdown) follows the table."""
    if not points:
        return ""
    rows = "\n".join(
        f"| `{p.name}` | {p.threshold:.4f} | {r.source} | {r.tar:.2%} | {r.far:.1e}"
        f" | {r.people} people, {r.faces} faces | {r.genuine_pairs:,} | {r.impostor_pairs:,}"
        f" ({r.distinct_impostor_pairs:,} distinct) |"
        for p in points
        for r in p.rates
    )
    return f"""**Operating points** (a gallery picks one by name; thresholds calibrated on
held-out training people by the rule `{rule}`: {RULE_TEXT[rule]};
served to 4 decimals, the TAR and FAR measured
at the served threshold on the same pairs, so they describe the calibration
set, not unseen photos, and the FAR may differ from the target by the pairs
the rounding moves; different-person pairs are sampled with repetition from
the distinct ones):

| name | threshold | source | TAR | FAR | measured on | same-person pairs | different-person pairs |
|---|---|---|---|---|---|---|---|
{rows}
{note}
"""


def with_operating_points(
    card: str, points: Sequence[OperatingPoint], note: str = "", rule: str = POOLED
) -> str:
    """``card`` (markdown) with its operating-points section replaced by, or
    inserted before "**Limits.**" as, :func:`operating_points_text`."""
    start = card.find("**Operating points**")
    limits = card.find("**Limits.**")
    if limits < 0:
        raise ValueError("the model card has no **Limits.** section to insert before")
    head = card[: start if 0 <= start < limits else limits]
    return head + operating_points_text(points, note, rule) + card[limits:]


def views_text(views: InferenceViews) -> str:
    """The test-time views in words."""
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
