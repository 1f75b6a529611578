"""The model card (trainer.model_card) and ``likeness-train model-card``,
without training: a tiny build folder of synthetic files (LFW layout, a
listed source, caches of path arrays, a finished run's figures, an exported
artifact whose weights are arbitrary bytes). The card states each source's
terms and the most restrictive of them, counts only faces of listed images,
names every test-people list left out and the validation people, shows the
test sets when they were measured, and is re-rendered only into an artifact
that holds the build's final weights."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedder.manifest import Manifest, read_manifest, sha256_file, write_manifest
from likeness.operating_points import OperatingPoint
from trainer.calibrate import Calibration
from trainer.cli import app as train_app
from trainer.export import CARD_NAME, WEIGHTS_NAME
from trainer.model_card import run_card
from trainer.recipe import RecipeError, load_recipe
from trainer.run import BuildFolder, RunFolder
from trainer.sources import data_report
from trainer.test_sets import TestSetRow as Row

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "trainer" / "recipes"

#: LFW people: Dev is the View 1 test person, the others train.
LFW_PEOPLE = {"Ann": 2, "Bob": 3, "Dev": 2}
#: CelebA-like listed crops: identity -> photos; "9" is a test person.
CELEBA = {"1": 3, "2": 2, "3": 2, "9": 2}
CELEBA_TERMS = "non-commercial research use only"


def _recipe_text(root: Path, extra_source: str = "") -> str:
    return f"""model_id = "card-test-model"
[network]
alpha = 0.35
dim = 128
landmark_branch = true
template = "dlib"
[lfw]
root = "{root / "lfw"}"
[test_people]
celeba = "{root / "celeba-test-people.txt"}"
[[sources]]
name = "lfw-train"
kind = "identities"
root = "{root / "lfw" / "images_deepfunneled"}"
terms = "none stated with the copy read"
[[sources]]
name = "celeba"
kind = "listed"
root = "{root / "celeba"}"
list = "{root / "celeba" / "identities.tsv"}"
prefix = "celeba-"
terms = "{CELEBA_TERMS}"
{extra_source}
[defaults]
input_size = 32
views = 0
first_view_seed = 1
steps = 10
people_per_batch = 2
images_per_person = 2
extra_per_batch = 2
margin = 0.2
triplet_weight = 1.0
distill_weight = 1.0
relation_weight = 0.0
learning_rate = 1e-3
warmup_steps = 1
weight_decay = 5e-5
val_fraction = 0.25
seed = 4321
freeze_backbone_bn = false
checkpoint_every = 10
eval_every = 100
[[stages]]
name = "tune"
init = "random"
[test_views]
flip = true
shift_px = 0
[calibration]
far = 1e-3
seed = 7
"""


def _shard(cache: Path, people: list[str], paths: list[str]) -> None:
    """A cache of path and person arrays only: all data_report reads."""
    cache.mkdir(parents=True)
    (cache / "spec.json").write_text(json.dumps({"size": 32, "template": "dlib"}))
    np.savez(cache / "shard-00000.npz", person=np.array(people), path=np.array(paths))


@dataclass(frozen=True)
class Tiny:
    root: Path
    recipe_file: Path
    build: BuildFolder
    cache: Path

    @property
    def run(self) -> RunFolder:
        return self.build.stage("tune")


@pytest.fixture
def tiny(tmp_path: Path) -> Tiny:
    lfw = tmp_path / "lfw"
    for person, n in LFW_PEOPLE.items():
        (lfw / "images_deepfunneled" / person).mkdir(parents=True)
        for i in range(1, n + 1):
            (lfw / "images_deepfunneled" / person / f"{person}_{i:04d}.jpg").write_bytes(b"x")
    (lfw / "peopleDevTest.txt").write_text("1\nDev\t2\n")
    (lfw / "pairsDevTest.txt").write_text("1\nDev\t1\t2\n")
    celeba = tmp_path / "celeba"
    celeba.mkdir()
    rows = ["path\tidentity"]
    for identity, n in CELEBA.items():
        for i in range(n):
            name = f"{identity}_{i}.jpg"
            (celeba / name).write_bytes(b"x")
            rows.append(f"{name}\t{identity}")
    (celeba / "identities.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "celeba-test-people.txt").write_text("# held out\nceleba-9\n")
    recipe_file = tmp_path / "card.toml"
    recipe_file.write_text(_recipe_text(tmp_path))
    cache = tmp_path / "cache"
    # LFW: a face in 4 of Ann's and Bob's 5 photos (relative paths, as a
    # recipe's), and in one of Dev's, cached before Dev was a test person.
    lfw_paths = [
        lfw / "images_deepfunneled" / p / f"{p}_{i:04d}.jpg"
        for p, i in (("Ann", 1), ("Ann", 2), ("Bob", 1), ("Bob", 3), ("Dev", 1))
    ]
    rel = [os.path.relpath(p) for p in lfw_paths]
    _shard(cache / "s32" / "lfw-train", ["Ann", "Ann", "Bob", "Bob", "Dev"], rel)
    # CelebA: one cache of every person, the test person's 2 faces too
    # (absolute paths), and no face in one photo of identity 1.
    found = [(i, n) for i, n in (("1", 0), ("1", 1), ("2", 0), ("2", 1), ("3", 0), ("3", 1))]
    found += [("9", 0), ("9", 1)]
    _shard(
        cache / "s32" / "celeba",
        [f"celeba-{i}" for i, _ in found],
        [str(celeba / f"{i}_{n}.jpg") for i, n in found],
    )
    build = BuildFolder(tmp_path / "runs" / "card")
    run = build.stage("tune")
    run.path.mkdir(parents=True)
    build.recipe.write_text(recipe_file.read_text())
    run.final_weights.write_bytes(b"the final weights")
    calibration = Calibration(
        far=1e-3, threshold=0.61234, dlib_threshold=0.92, validation_faces=4, tta_shift_px=0
    )
    run.calibration.write_text(json.dumps(asdict(calibration)))
    evaluation = {
        "backend": "likeness-mobilenet",
        "devtest_accuracy": 0.9,
        "devtest_accuracy_val_threshold": 0.85,
        "devtest_auc": 0.95,
        "devtest_tar_at_far_1e3": 0.5,
        "rank1": 0.7,
        "tta_flip": True,
        "tta_shift_px": 0,
    }
    run.evaluation.write_text(json.dumps([evaluation]))
    _export(build, run.final_weights, "card-test-model")
    return Tiny(tmp_path, recipe_file, build, cache)


def _export(build: BuildFolder, weights: Path, model_id: str, points: bool = False) -> None:
    """An artifact of ``weights`` as export_model writes it (no LiteRT file)."""
    build.artifact.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, build.artifact / WEIGHTS_NAME)
    point = OperatingPoint("far-1e-3", 1e-3, 0.6123)
    manifest = Manifest(
        model_id=model_id,
        backend="likeness-mobilenet",
        dim=128,
        input_size=32,
        default_threshold=0.6123,
        weights=WEIGHTS_NAME,
        files={WEIGHTS_NAME: sha256_file(build.artifact / WEIGHTS_NAME)},
        operating_points=(point,) if points else (),
        default_operating_point="far-1e-3" if points else "",
    )
    write_manifest(build.artifact, manifest)
    (build.artifact / CARD_NAME).write_text("# the card as exported\n")


def _rows() -> list[Row]:
    common = {"same_pairs": 10, "different_pairs": 90, "accuracy_std": 0.01, "eer": 0.05}
    return [
        Row(
            test_set="LFW pairsDevTest",
            backend="likeness-mobilenet",
            people=12,
            faces=34,
            accuracy=0.954,
            auc=0.9911,
            tar_at_far_1e3=0.688,
            tar_at_far_1e4=0.612,
            rank1=0.7807,
            served_threshold=0.6123,
            tar_at_served=0.786,
            far_at_served=0.002,
            **common,
        ),
        Row(
            test_set="CelebA held-out (1 people listed)",
            backend="dlib-resnet",
            people=1,
            faces=2,
            accuracy=0.999,
            auc=0.9948,
            tar_at_far_1e3=0.9009,
            tar_at_far_1e4=0.7361,
            rank1=0.9094,
            **common,
        ),
    ]


def _card(tiny: Tiny) -> str:
    recipe = load_recipe(tiny.recipe_file)
    return run_card(recipe, tiny.run, data_report(recipe, tiny.cache))


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(train_app, ["model-card", *args])
    return result.exit_code, " ".join(result.output.replace("│", " ").split())


def test_a_source_states_its_terms_as_a_string_or_not_at_all(tiny: Tiny) -> None:
    recipe = load_recipe(tiny.recipe_file)
    assert [s.terms for s in recipe.sources] == ["none stated with the copy read", CELEBA_TERMS]
    for value, said in (("3", "terms must be a str"), ('"  "', "'terms' is empty")):
        text = tiny.recipe_file.read_text().replace(f'terms = "{CELEBA_TERMS}"', f"terms = {value}")
        bad = tiny.root / "bad.toml"
        bad.write_text(text)
        with pytest.raises(RecipeError, match=said):
            load_recipe(bad)
    without = tiny.root / "without.toml"
    without.write_text(tiny.recipe_file.read_text().replace(f'terms = "{CELEBA_TERMS}"\n', ""))
    assert load_recipe(without).sources[1].terms is None


@pytest.mark.parametrize("name", ["v6", "v7", "v7c", "v7d"])
def test_every_source_of_the_shipped_recipes_states_its_terms(name: str) -> None:
    for source in load_recipe(RECIPES / f"{name}.toml").sources:
        assert source.terms, f"{name}: {source.name}"
        if "celeba" in source.name or "utkface" in str(source.root):
            assert source.terms == "non-commercial research use only", source.name


def test_faces_found_counts_only_cached_faces_of_listed_images(tiny: Tiny) -> None:
    lfw, celeba = data_report(load_recipe(tiny.recipe_file), tiny.cache)
    # Dev's cached face left with Dev; Ann and Bob have 5 photos, 4 faces.
    assert (lfw.images, lfw.people, lfw.faces) == (5, 2, 4)
    assert (lfw.excluded_images, lfw.excluded_people) == (2, 1)
    # The cache holds the test person's 2 faces too: they do not count.
    assert (celeba.images, celeba.people, celeba.faces) == (7, 3, 6)
    assert celeba.found == pytest.approx(6 / 7)
    assert (celeba.terms, lfw.terms) == (CELEBA_TERMS, "none stated with the copy read")


def test_the_card_names_the_test_people_left_out_and_the_validation_people(tiny: Tiny) -> None:
    card = _card(tiny)
    lfw = tiny.root / "lfw"
    assert (
        f"- LFW View 1 test people: `{lfw / 'peopleDevTest.txt'}` and"
        f" `{lfw / 'pairsDevTest.txt'}`, 1 people" in card
    )
    assert f"- [test_people] celeba: `{tiny.root / 'celeba-test-people.txt'}`, 1 people" in card
    assert "a seeded 25% of the remaining people with two or\nmore images (split seed 4321)" in (
        card
    )
    assert "calibrated on them\n(4 faces)" in card
    assert "| celeba | a listed folder (path and identity per line) | 7 | 3 |" in card
    assert f"| 2 images of 1 people | 6 (85.7%) | {CELEBA_TERMS} |" in card


def test_the_limits_name_the_most_restrictive_terms_and_every_sources(tiny: Tiny) -> None:
    limits = _card(tiny).split("**Limits.**")[1]
    assert (
        "bound by the most restrictive terms of its training sources, those of celeba:"
        f" **{CELEBA_TERMS}**" in " ".join(limits.split())
    )
    assert 'lfw-train "none stated with the copy read", celeba "non-commercial' in limits
    # Without any non-commercial source, no source is singled out; an
    # unstated one says so.
    text = tiny.recipe_file.read_text().replace(f'terms = "{CELEBA_TERMS}"\n', "")
    tiny.recipe_file.write_text(text)
    card = _card(tiny)
    assert "| 6 (85.7%) | not stated |" in card
    limits = " ".join(card.split("**Limits.**")[1].split())
    assert "those of" not in limits and "whatever terms its owners set" in limits
    assert 'celeba "not stated"' in limits
    assert "Training started from" not in limits
    # Weights trained elsewhere bring their data's terms along.
    tiny.recipe_file.write_text(text.replace('init = "random"', 'init = "model:models/older"'))
    limits = " ".join(_card(tiny).split("**Limits.**")[1].split())
    assert "Training started from the model `models/older`" in limits


def test_the_test_sets_section_appears_only_once_they_were_measured(tiny: Tiny) -> None:
    assert "Test sets" not in _card(tiny)
    tiny.run.test_sets.write_text(json.dumps([asdict(r) for r in _rows()]))
    card = _card(tiny)
    assert "**Test sets (measured once, after the model was chosen)**" in card
    assert (
        "| LFW pairsDevTest | likeness-mobilenet | 12 / 34 | 10 / 90 | 95.40% ± 1.00% | 0.9911"
        " | 5.00% | 68.80% | 61.20% | 78.07% | 0.6123: 78.60% / 2.0e-03 |" in card
    )
    assert "| 90.09% | 73.61% | 90.94% | n/a |" in card
    # Before the operating points and the limits, where the export puts them.
    assert card.index("Test sets") < card.index("**Limits.**")
    tiny.run.test_sets.write_text('{"not": "rows"}')
    with pytest.raises(ValueError, match="not the rows of likeness-train test-sets"):
        _card(tiny)


def test_the_command_rewrites_only_the_card_of_the_builds_own_weights(tiny: Tiny) -> None:
    tiny.run.test_sets.write_text(json.dumps([asdict(r) for r in _rows()]))
    artifact = tiny.build.artifact
    before = {p.name: p.read_bytes() for p in artifact.iterdir() if p.name != CARD_NAME}
    runs, cache = str(tiny.root / "runs"), str(tiny.cache)
    code, output = _invoke(str(tiny.recipe_file), "--runs", runs, "--cache-dir", cache)
    assert code == 0, output
    card = (artifact / CARD_NAME).read_text()
    assert card == _card(tiny)
    assert "**Test sets" in card and "| 6 (85.7%) |" in card
    assert {p.name: p.read_bytes() for p in artifact.iterdir() if p.name != CARD_NAME} == before
    # The build folder works as well, and --artifact names another copy.
    other = tiny.root / "shipped"
    shutil.copytree(artifact, other)
    (other / CARD_NAME).write_text("old")
    code, output = _invoke(
        str(tiny.build.path), "--cache-dir", cache, "--artifact", str(other), "--runs", runs
    )
    assert code == 0, output
    assert (other / CARD_NAME).read_text().startswith("# Model card: card-test-model")


def test_the_card_is_not_hashed_so_the_fingerprint_stays() -> None:
    for folder in ("likeness-mobilenet", "likeness-mobilenet-v6"):
        manifest = read_manifest(ROOT / "embedder" / "models" / folder)
        assert CARD_NAME not in manifest.files and WEIGHTS_NAME in manifest.files


def test_the_command_refuses_an_artifact_of_other_weights(tiny: Tiny) -> None:
    args = ["--runs", str(tiny.root / "runs"), "--cache-dir", str(tiny.cache)]
    other = tiny.root / "other.weights.h5"
    other.write_bytes(b"other weights")
    _export(tiny.build, other, "card-test-model")
    code, output = _invoke(str(tiny.recipe_file), *args)
    expected = f"card-test-model@{sha256_file(tiny.run.final_weights)[:12]}"
    assert code == 2 and f"not the build's final weights {expected}" in output
    assert "Traceback" not in output
    assert (tiny.build.artifact / CARD_NAME).read_text() == "# the card as exported\n"
    # The same weights under another model id are another model.
    _export(tiny.build, tiny.run.final_weights, "another-model")
    code, output = _invoke(str(tiny.recipe_file), *args)
    assert code == 2 and "its card would describe other weights" in output
    # Weights that no longer match the manifest's hash.
    _export(tiny.build, tiny.run.final_weights, "card-test-model")
    (tiny.build.artifact / WEIGHTS_NAME).write_bytes(b"tampered")
    code, output = _invoke(str(tiny.recipe_file), *args)
    assert code == 2 and "has sha256" in output
    # Served operating points the run's calibration does not hold.
    _export(tiny.build, tiny.run.final_weights, "card-test-model", points=True)
    code, output = _invoke(str(tiny.recipe_file), *args)
    assert code == 2 and "serves other operating points" in output
    # An unfinished build.
    tiny.run.final_weights.unlink()
    code, output = _invoke(str(tiny.recipe_file), *args)
    assert code == 2 and "has no final weights" in output
    assert (tiny.build.artifact / CARD_NAME).read_text() == "# the card as exported\n"
