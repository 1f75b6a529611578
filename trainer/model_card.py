"""The model card (MODEL_CARD.md of an exported artifact), written from the
recipe, the data actually read (trainer.sources.SourceReport) and the
figures measured, never from fixed text about the data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from embedder.model import InferenceViews
from likeness.operating_points import OperatingPoint
from trainer.calibrate import Calibration
from trainer.recipe import Recipe, Stage
from trainer.sources import SourceReport

_TEMPLATE_NOTES = {
    "dlib": ": the field of view of dlib's face chip, so the student sees what its teacher saw",
    "arcface": ": the common ArcFace 112 px template",
}

_KIND_NOTES = {
    "identities": "identity folders",
    "listed": "a listed folder (path and identity per line)",
    "unlabelled": "unlabelled faces, distillation only, never as identities",
}


def model_card(
    recipe: Recipe,
    sources: list[SourceReport],
    calibration: Calibration,
    evaluation: list[dict[str, Any]],
) -> str:
    """The card's markdown."""
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
    points = operating_points_text(calibration.operating_points)
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

**Data** (as read by the build; LFW's View 1 test people, {recipe.lfw}/peopleDevTest.txt
and pairsDevTest.txt, were left out of every source; faces found at {size} px):

| source | kind | images | people | left out (test people) | faces found |
|---|---|---|---|---|---|
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

{points}**Limits.** LFW is a research benchmark of mostly frontal, well-lit celebrity
photos; it says little about children, strong poses, low light or
demographic differentials, none of which was measured here. Each source's
terms of use bind this model's use. Use a threshold calibrated on your own
population before deciding anything that matters about a person.
"""


def _source_row(s: SourceReport) -> str:
    people = str(s.people) if s.kind != "unlabelled" else "-"
    left_out = f"{s.excluded_images} images of {s.excluded_people} people"
    found = f"{s.faces} ({s.found:.1%})" if s.faces is not None and s.found is not None else "-"
    return f"| {s.name} | {_KIND_NOTES[s.kind]} | {s.images} | {people} | {left_out} | {found} |"


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


def operating_points_text(points: Sequence[OperatingPoint], note: str = "") -> str:
    """The card's "Operating points" section (empty without points): each
    point's threshold with the TAR and FAR it gave on each held-out source,
    and the pairs they rest on; ``note`` (markdown) follows the table."""
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
held-out training people and served to 4 decimals, the TAR and FAR measured
at the served threshold on the same pairs, so they describe the calibration
set, not unseen photos, and the FAR may differ from the target by the pairs
the rounding moves; different-person pairs are sampled with repetition from
the distinct ones):

| name | threshold | source | TAR | FAR | measured on | same-person pairs | different-person pairs |
|---|---|---|---|---|---|---|---|
{rows}
{note}
"""


def with_operating_points(card: str, points: Sequence[OperatingPoint], note: str = "") -> str:
    """``card`` (markdown) with its operating-points section replaced by, or
    inserted before "**Limits.**" as, :func:`operating_points_text`."""
    start = card.find("**Operating points**")
    limits = card.find("**Limits.**")
    if limits < 0:
        raise ValueError("the model card has no **Limits.** section to insert before")
    head = card[: start if 0 <= start < limits else limits]
    return head + operating_points_text(points, note) + card[limits:]


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
