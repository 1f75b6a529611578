"""Recipe files (trainer.recipe) and the ``likeness-train`` command line,
without training: the shipped model's recipe resolves, stage by stage, to
the configuration recorded with each model it shipped; a recipe that does
not declare a model is refused with the file and the key named."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from embedder.model import InferenceViews, ModelConfig
from trainer.cache import CacheSpec
from trainer.cli import app as train_app
from trainer.config import LOSS_KEYS, TrainConfig
from trainer.recipe import RecipeError, Source, load_recipe
from trainer.sources import list_source

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "trainer" / "recipes"
V6 = RECIPES / "v6.toml"
MODELS = ROOT / "embedder" / "models"
#: The default model's manifest, and v6's (still servable, its galleries valid).
SHIPPED = MODELS / "likeness-mobilenet" / "manifest.json"
V6_SHIPPED = MODELS / "likeness-mobilenet-v6" / "manifest.json"
#: Configs recorded in the manifests of the models shipped on the way to v6
#: (copied from git history; the file says which commit each comes from).
RECORDED = json.loads((ROOT / "tests" / "data" / "shipped_stage_configs.json").read_text())
#: The run folders of those records, by the v6 recipe's stage names.
RUN_TO_STAGE = {
    "runs/v2": "base",
    "runs/v3": "finetune",
    "runs/v3-avg": "soup",
    "runs/v4": "views",
    "runs/v7-128": "views-128",
    "runs/v11-rel": "relation",
}


def _recorded(stage: str) -> dict[str, Any]:
    # The v3 model, the mean of two runs, recorded the config of the last of them.
    return dict(RECORDED["stages"]["finetune" if stage == "soup" else stage]["config"])


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A config with its paths reduced to what they name: caches and view
    caches by folder name, initial weights by the stage that wrote them.
    Fields that postdate a record take the value that meant "not used"
    when it was written (no BatchNorm freezing, relation_weight 0, no view
    caches, data seed = seed, no margin head), and a model recorded with "towers": 1 is the
    one network."""
    out = dict(config)
    out["caches"] = [Path(c).name for c in out["caches"]]
    out["view_caches"] = [Path(c).name for c in out.get("view_caches", [])]
    out["model"] = ModelConfig.from_dict(out["model"]).to_dict()
    out.setdefault("freeze_backbone_bn", False)
    out.setdefault("relation_weight", 0.0)
    out.setdefault("data_seed", None)
    for key in ("margin_head", "head_margin", "head_scale", "head_weight"):
        out.setdefault(key, TrainConfig.__dataclass_fields__[key].default)
    init = out.get("init_weights")
    if init is not None:
        parent = str(Path(init).parent)
        out["init_weights"] = RUN_TO_STAGE.get(parent, Path(parent).name)
    else:
        out["init_weights"] = None
    return out


def test_every_stage_of_v6_resolves_to_the_config_recorded_with_its_model(
    tmp_path: Path,
) -> None:
    recipe = load_recipe(V6)
    names = [stage.name for stage in recipe.stages]
    assert names == ["base", "finetune", "soup", "views", "views-128", "relation"]
    for stage in recipe.stages:
        resolved = recipe.config(stage, tmp_path / "cache", tmp_path / "runs" / "v6")
        assert _comparable(resolved.to_dict()) == _comparable(_recorded(stage.name)), stage.name
        # What train() reads back from the run folder is what the recipe gave it.
        assert TrainConfig.from_dict(json.loads(json.dumps(resolved.to_dict()))) == resolved
    # The v3 model was the mean of two runs: the soup stage averages the same two.
    soup = recipe.stage("soup")
    averaged = RECORDED["stages"]["finetune"]["averaged_from"]
    assert soup.average == tuple(RUN_TO_STAGE[run] for run in averaged)


@pytest.mark.parametrize(
    ("recipe_file", "shipped"),
    [(V6, V6_SHIPPED), (RECIPES / "v7d.toml", SHIPPED)],
    ids=["v6", "default"],
)
def test_a_recipe_serves_what_its_shipped_manifest_serves(recipe_file: Path, shipped: Path) -> None:
    recipe = load_recipe(recipe_file)
    manifest = json.loads(shipped.read_text())
    assert recipe.model_id == manifest["model_id"]
    assert recipe.model(recipe.final) == ModelConfig.from_dict(manifest["config"])
    assert recipe.test_views == InferenceViews(
        flip=manifest["flip_tta"], shift_px=manifest["shift_tta_px"]
    )
    assert recipe.far == manifest["calibration"]["far"]


def test_v7_reads_the_celeba_crops_through_their_list_with_padding() -> None:
    recipe = load_recipe(RECIPES / "v7.toml")
    kinds = {source.name: source.kind for source in recipe.sources}
    assert kinds == {
        "lfw-train": "identities",
        "celeba": "listed",
        "utkface-1": "unlabelled",
        "utkface-23": "unlabelled",
    }
    celeba = next(s for s in recipe.sources if s.name == "celeba")
    assert celeba.prefix == "celeba-" and celeba.cache is not None
    # The spec the CelebA cache beside the repository is being built with.
    built_with = CacheSpec(
        size=128, template="dlib", pick_centre=True, teacher=True, pad=0.3, scale=2.0
    )
    from trainer.sources import stage_spec

    assert stage_spec(recipe, celeba, recipe.stages[0]) == built_with


def test_the_dry_run_prints_the_shipped_models_stages_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # From an empty folder: the recipe's data paths (relative) lead nowhere.
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(train_app, ["build", str(V6), "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    steps = lines[lines.index("steps:") + 1 :]
    assert [line.split()[0] for line in steps] == [
        "base",
        "finetune",
        "soup",
        "views",
        "views-128",
        "relation",
        "evaluate",
        "calibrate",
        "export",
    ]
    assert all(" to do " in line for line in steps)
    assert "3600 steps at 112 px" in steps[0] and "2000 steps at 128 px" in steps[5]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_likeness_help_shows_the_service_and_no_training_verb() -> None:
    from likeness_cli import app

    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    listed = result.output
    assert "enroll" in listed and "verify" in listed
    for verb in ("train", "average", "ensemble", "validate", "evaluate", "calibrate"):
        assert f" {verb} " not in listed, verb
    assert "export-litert" not in listed


def test_the_training_entry_point_is_installed_by_the_train_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["likeness-train"] == "trainer.cli:main"
    assert "likeness[embedder]" in project["optional-dependencies"]["train"]
    help_text = CliRunner().invoke(train_app, ["--help"]).output
    for verb in ("build", "evaluate", "calibrate", "validate", "export-litert"):
        assert verb in help_text


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


def _v6_with(old: str, new: str) -> str:
    text = V6.read_text()
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("margin = 0.2\n", "margn = 0.2\n", "unknown key 'margn' in [defaults]"),
        ("margin = 0.2\n", "", "missing key 'margin' in [[stages]] 'base'"),
        ("steps = 4000\n", "steps = 4000.5\n", "[[stages]] 'finetune' steps must be a int"),
        ('kind = "unlabelled"', 'kind = "faces"', "kind 'faces' is not one of"),
        ('init = "soup"', 'init = "relation"', "init 'relation' is not one of"),
        ("shift_px = 4\n", "shift_px = 4\nmirror = true\n", "unknown key 'mirror' in [test_views]"),
        ("[calibration] ", "[calibrate] ", "unknown key 'calibrate' in the top level"),
        (
            "far = 1e-3\n",
            'far = 1e-3\nrule = "lowest"\n',
            "[calibration] rule 'lowest' is none of pooled, strictest-source",
        ),
        ("far = 1e-3\n", "far = 1e-3\nrule = 1\n", "[calibration] rule must be a str"),
        ('average = ["base", "finetune"]', 'average = ["base"]', "two or more earlier stages"),
        ("alpha = 0.35\n", 'alpha = "wide"\n', "[network] alpha must be a float"),
        ("flip = true\n", "flip = 1\n", "[test_views] flip must be a bool"),
        ('name = "relation"', 'name = "views"', "[[stages]] needs distinct names"),
        ('name = "relation"', 'name = "model"', "'name' must be letters"),
        ('name = "relation"', 'name = "../relation"', "'name' must be letters"),
        (
            "margin = 0.2\n",
            'margin = 0.2\nmargin_head = "sphereface"\n',
            "[[stages]] 'base': margin_head 'sphereface' is not one of none, cosface, arcface",
        ),
        (
            "margin = 0.2\n",
            'margin = 0.2\nmargin_head = "arcface"\nhead_margin = 2.0\n',
            "head_margin of arcface must be at least 0 and below 1.571 (radians; got 2)",
        ),
        (
            "margin = 0.2\n",
            'margin = 0.2\nmargin_head = "cosface"\nhead_margin = 1.5\n',
            "head_margin of cosface must be at least 0 and below 1 (a cosine; got 1.5)",
        ),
        (
            "margin = 0.2\n",
            'margin = 0.2\nmargin_head = "cosface"\nhead_weight = 0\n',
            "head_weight must be above 0 with a margin head",
        ),
        (
            "margin = 0.2\n",
            'margin = 0.2\nmargin_head = "cosface"\nhead_scale = -1.0\n',
            "head_scale must be above 0",
        ),
        ("margin = 0.2\n", 'margin = 0.2\nhead_scale = "big"\n', "head_scale must be a float"),
    ],
)
def test_a_recipe_that_does_not_declare_a_model_names_the_file_and_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    bad = _write(tmp_path, _v6_with(old, new))
    with pytest.raises(RecipeError) as caught:
        load_recipe(bad)
    assert str(bad) in str(caught.value)
    assert message in str(caught.value)


def test_the_test_peoples_exclusion_applies_to_every_named_source(tmp_path: Path) -> None:
    folders = tmp_path / "people"
    for person in ("Ann", "Bob"):
        (folders / person).mkdir(parents=True)
        (folders / person / f"{person}_0001.jpg").write_bytes(b"")
        (folders / person / f"{person}_0002.jpg").write_bytes(b"")
    listing = tmp_path / "list.tsv"
    listing.write_text("path\tidentity\nAnn/Ann_0001.jpg\tAnn\nBob/Bob_0001.jpg\tBob\n")
    detection = CacheSpec(teacher=True)
    folders_source = Source("folders", "identities", folders, None, "", None, detection)
    listed_source = Source("listed", "listed", folders, listing, "x-", None, detection)
    kept = list_source(folders_source, {"Bob"})
    assert {p for p, _ in kept.items} == {"Ann"}
    assert (kept.excluded_images, kept.excluded_people, kept.people) == (2, 1, 1)
    listed = list_source(listed_source, {"x-Bob"})
    assert [(p, f.name) for p, f in listed.items] == [("x-Ann", "Ann_0001.jpg")]
    assert (listed.excluded_images, listed.excluded_people) == (1, 1)


def _said(output: str) -> str:
    """A CLI message with the error box's borders and line wrapping undone."""
    return " ".join(output.replace("│", " ").split())


def _build_folder(tmp_path: Path, *runs: str) -> list[Path]:
    """Run folders inside a build folder of the v6 recipe."""
    build = tmp_path / "v6"
    build.mkdir()
    (build / "recipe.toml").write_text(V6.read_text())
    folders = [build / run for run in runs]
    for folder in folders:
        folder.mkdir()
    return folders


def test_validate_refuses_an_unfinished_run(tmp_path: Path) -> None:
    (unfinished,) = _build_folder(tmp_path, "unfinished")
    result = CliRunner().invoke(train_app, ["validate", str(unfinished)])
    assert result.exit_code == 2, result.output
    assert "not a finished run" in result.output and "Traceback" not in result.output
    loose = tmp_path / "loose"
    loose.mkdir()
    result = CliRunner().invoke(train_app, ["validate", str(loose)])
    assert result.exit_code == 2 and "is not a run folder of a build" in _said(result.output)


def test_validate_prints_one_row_per_run_with_the_recipes_views_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.selection
    from trainer.run import RunFolder
    from trainer.validate import HeldOutReport, PairedDifference

    asked: list[tuple[list[Path], InferenceViews, int]] = []
    references: list[list[Path]] = []

    def fake_validate(
        runs: list[RunFolder],
        views: InferenceViews,
        bootstrap: int,
        shipped: list[Path],
        consecutive: bool,
    ) -> trainer.selection.Validation:
        asked.append(([r.path for r in runs], views, bootstrap))
        references.append([*shipped, Path(f"consecutive={consecutive}")])
        differences = [
            PairedDifference(
                str(r.path),
                str(runs[0].path),
                (-0.004, -0.009, 0.001),
                (0.01, -0.02, 0.03),
                0.9,
                0.6,
                50,
                0.95,
            )
            for r in runs[1:]
            if bootstrap
        ]
        reports = [HeldOutReport(str(r.path), 0.99, 0.05, 0.6, 0.8, 10, 90) for r in runs]
        return trainer.selection.Validation(reports, differences)

    monkeypatch.setattr(trainer.selection, "validate", fake_validate)
    first, second = _build_folder(tmp_path, "views", "relation")
    served = InferenceViews(flip=True, shift_px=4)
    result = CliRunner().invoke(train_app, ["validate", str(first), str(second)])
    assert result.exit_code == 0, result.output
    assert asked == [([first, second], served, 0)]
    rows = [line for line in result.stdout.splitlines() if line.startswith(f"| {tmp_path}")]
    assert rows == [f"| {run} | 0.9900 | 5.00% | 60.00% | 80.00% |" for run in (first, second)]
    assert "bootstrap" not in result.stdout
    shifted = CliRunner().invoke(train_app, ["validate", str(first), "--tta-shift-px", "2"])
    assert shifted.exit_code == 0, shifted.output
    assert asked[-1] == ([first], InferenceViews(flip=True, shift_px=2), 0)
    unmirrored = ["validate", str(first), "--no-tta-flip"]
    assert CliRunner().invoke(train_app, unmirrored).exit_code == 0
    assert asked[-1] == ([first], InferenceViews(flip=False, shift_px=4), 0)
    paired = CliRunner().invoke(
        train_app, ["validate", str(first), str(second), "--bootstrap", "50"]
    )
    assert paired.exit_code == 0, paired.output
    assert asked[-1] == ([first, second], served, 50)
    assert (
        f"| {second} | -0.40 [-0.90, +0.10] | 90% | +1.00 [-2.00, +3.00] | 60% |" in paired.stdout
    )
    assert references == [[Path("consecutive=False")]] * 4, "no shipped model unless named"
    alone = CliRunner().invoke(train_app, ["validate", str(first), "--bootstrap", "50"])
    assert alone.exit_code == 2 and "two or more" in alone.output
    assert len(asked) == 4, "a refused command must not measure anything"
    # A candidate against the shipped model: two models, so a bootstrap.
    against = ["validate", "--shipped", str(V6_MODEL), str(second), "--bootstrap", "50"]
    assert CliRunner().invoke(train_app, against).exit_code == 0
    assert (asked[-1], references[-1]) == (
        ([second], served, 50),
        [V6_MODEL, Path("consecutive=False")],
    )
    arms = [*against, str(first), "--consecutive"]
    assert CliRunner().invoke(train_app, arms).exit_code == 0
    assert references[-1] == [V6_MODEL, Path("consecutive=True")]
    negative = CliRunner().invoke(train_app, ["validate", str(first), "--tta-shift-px", "-1"])
    assert negative.exit_code == 2 and "--tta-shift-px" in negative.output


def test_build_refuses_an_unknown_stage_and_a_broken_recipe_without_a_traceback(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(train_app, ["build", str(V6), "--stage", "stage8", "--dry-run"])
    assert result.exit_code == 2 and "no stage 'stage8'" in result.output
    assert "base, finetune, soup" in result.output
    bad = _write(tmp_path, _v6_with("margin = 0.2\n", "margn = 0.2\n"))
    result = CliRunner().invoke(train_app, ["build", str(bad), "--dry-run"])
    assert result.exit_code == 2 and "unknown key 'margn'" in result.output
    assert "Traceback" not in result.output


def test_export_litert_refuses_a_folder_that_is_no_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(train_app, ["export-litert", "--model", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "manifest" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_export_litert_writes_into_the_given_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's wiring; trainer.export.add_litert itself (the LiteRT
    conversion, about 20 s) is tested in tests/test_training.py."""
    import trainer.export
    from embedder.manifest import Manifest

    asked: list[Path] = []

    def fake_add_litert(folder: Path) -> Manifest:
        asked.append(folder)
        return Manifest(
            "m",
            "likeness-mobilenet",
            128,
            112,
            0.5,
            "w.h5",
            {"w.h5": "ab" * 32},
            extra={"litert": "model.tflite"},
        )

    monkeypatch.setattr(trainer.export, "add_litert", fake_add_litert)
    result = CliRunner().invoke(train_app, ["export-litert", "--model", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert asked == [tmp_path]
    assert f"m@{'ab' * 6}: {tmp_path / 'model.tflite'} written" in result.stdout


def test_the_readme_trains_each_model_with_one_command() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Training the model", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert commands == [
        f".venv/bin/likeness-train build trainer/recipes/{recipe.name}"
        for recipe in sorted(RECIPES.glob("*.toml"))
    ]


def test_one_stage_of_a_build_waits_for_the_stage_it_starts_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["build", str(V6), "--stage", "finetune", "--runs", str(tmp_path / "runs")]
    result = CliRunner().invoke(train_app, args)
    assert result.exit_code == 2, result.output
    assert "stage finetune needs stage base first" in _said(result.output)
    assert not (tmp_path / "runs" / "v6" / "finetune").exists()
    assert not (tmp_path / "cache").exists(), "nothing is cached for a stage that cannot start"


V7 = RECIPES / "v7.toml"


def test_v7_declares_the_ablations_three_arms_at_an_equal_budget(tmp_path: Path) -> None:
    """Triplet only, + distillation, + margin head: each arm's stages resolve
    to the same configs but for the loss keys, and only M has the head."""
    recipe = load_recipe(V7)
    assert [arm.name for arm in recipe.arms] == ["T", "D", "M"]
    arms = {arm.name: recipe.with_arm(arm.name) for arm in recipe.arms}
    configs = {
        name: [arm.config(stage, tmp_path / "cache", tmp_path / "runs") for stage in arm.stages]
        for name, arm in arms.items()
    }
    as_written = [
        recipe.config(stage, tmp_path / "cache", tmp_path / "runs") for stage in recipe.stages
    ]
    assert configs["D"] == as_written
    budget = [{k: v for k, v in c.to_dict().items() if k not in LOSS_KEYS} for c in as_written]
    for arm, stages in configs.items():
        assert [
            {k: v for k, v in c.to_dict().items() if k not in LOSS_KEYS} for c in stages
        ] == budget, arm
    t_base, t_finetune = configs["T"]
    assert (t_base.distill_weight, t_finetune.distill_weight, t_finetune.relation_weight) == (
        0,
        0,
        0,
    )
    assert all(not c.uses_margin_head for arm in "TD" for c in configs[arm])
    for cfg in configs["M"]:
        assert (cfg.margin_head, cfg.head_margin, cfg.head_scale) == ("cosface", 0.35, 30.0)
        assert cfg.head_weight == 0.1 and cfg.distill_weight == 1.0
    assert recipe.with_arm("M").name == "v7-M" and recipe.name == "v7"


def test_the_dry_run_lists_the_arms_each_a_build_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(train_app, ["build", str(V7), "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    arms = lines[next(i for i, line in enumerate(lines) if line.startswith("arms")) + 1 :]
    assert [line.split(":")[0].strip() for line in arms if not line.startswith("    ")] == [
        "T",
        "D",
        "M",
    ]
    assert [line.strip() for line in arms if line.strip().startswith("-> ")] == [
        f"-> runs/v7-{arm} (0/5 steps done)" for arm in "TDM"
    ]
    stages = [line.split() for line in arms if line.strip().startswith(("base", "finetune"))]
    assert [(s[0], s[1]) for s in stages] == [("base", "12000"), ("finetune", "4000")] * 3
    assert "    finetune     4000 steps: triplet x1" in arms
    assert (
        "    base         12000 steps: triplet x1 + distillation x1"
        " + cosface head x0.1 (margin 0.35, scale 30)"
    ) in arms
    assert f"    likeness-train build {V7} --arm M" in arms
    one = CliRunner().invoke(train_app, ["build", str(V7), "--dry-run", "--arm", "M"])
    assert one.exit_code == 0, one.output
    assert one.output.splitlines()[0] == f"recipe {V7}, arm M -> runs/v7-M"
    assert "arms (" not in one.output
    unknown = CliRunner().invoke(train_app, ["build", str(V7), "--dry-run", "--arm", "Q"])
    assert unknown.exit_code == 2 and "no arm 'Q' (arms: T, D, M)" in _said(unknown.output)


@pytest.mark.parametrize(
    ("arm", "message"),
    [
        ("steps = 10\n", "[arms.X]: unknown key 'steps': an arm sets loss keys only"),
        ('margin_head = "cosine"\n', "[arms.X] in stage 'base': margin_head 'cosine' is not one"),
        ("head_weight = true\n", "[arms.X] head_weight must be a float"),
    ],
)
def test_an_arm_that_changes_the_budget_or_an_invalid_head_is_refused(
    tmp_path: Path, arm: str, message: str
) -> None:
    bad = _write(tmp_path, V6.read_text() + f"\n[arms.X]\n{arm}")
    with pytest.raises(RecipeError) as caught:
        load_recipe(bad)
    assert str(bad) in str(caught.value) and message in str(caught.value)


def test_validate_prints_each_sources_figures_after_the_pooled_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.selection
    from trainer.run import RunFolder
    from trainer.validate import HeldOutReport

    def fake_validate(
        runs: list[RunFolder],
        views: InferenceViews,
        bootstrap: int,
        shipped: list[Path],
        consecutive: bool,
    ) -> trainer.selection.Validation:
        def reports(eer: float) -> list[HeldOutReport]:
            return [HeldOutReport(str(r.path), 0.99, eer, 0.6, 0.8, 10, 90) for r in runs]

        by_source = {"lfw-train": reports(0.04), "celeba-128": reports(0.07)}
        return trainer.selection.Validation(reports(0.05), [], by_source)

    monkeypatch.setattr(trainer.selection, "validate", fake_validate)
    (run,) = _build_folder(tmp_path, "finetune")
    result = CliRunner().invoke(train_app, ["validate", str(run)])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| ", "held-out"))]
    header = "| weights | AUC | EER | TAR@FAR=1e-3 | TAR@FAR=1e-2 |"
    assert rows == [
        header,
        f"| {run} | 0.9900 | 5.00% | 60.00% | 80.00% |",
        "held-out people of source lfw-train (pairs within it):",
        header,
        f"| {run} | 0.9900 | 4.00% | 60.00% | 80.00% |",
        "held-out people of source celeba-128 (pairs within it):",
        header,
        f"| {run} | 0.9900 | 7.00% | 60.00% | 80.00% |",
    ]


V6_MODEL = V6_SHIPPED.parent


def _from_model(tmp_path: Path, artifact: Path) -> Path:
    """v6's recipe with its first stage started from ``artifact``."""
    return _write(tmp_path, _v6_with('init = "imagenet"', f'init = "model:{artifact}"'))


def test_a_stage_may_start_from_a_shipped_models_weights(tmp_path: Path) -> None:
    recipe = load_recipe(_from_model(tmp_path, V6_MODEL))
    cfg = recipe.config(recipe.stages[0], tmp_path / "cache", tmp_path / "runs")
    assert cfg.init_weights == str(V6_MODEL / "model.weights.h5")
    assert cfg.imagenet_weights is None, "the artifact's weights replace ImageNet's"


def test_a_stage_from_a_model_whose_files_do_not_match_its_manifest_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "manifest.json").write_bytes((V6_MODEL / "manifest.json").read_bytes())
    (artifact / "model.weights.h5").write_bytes(b"not the shipped weights")
    monkeypatch.chdir(tmp_path)
    recipe = _from_model(tmp_path, artifact)
    args = ["build", str(recipe), "--stage", "base", "--runs", str(tmp_path / "runs")]
    result = CliRunner().invoke(train_app, args)
    assert result.exit_code == 2, result.output
    assert "init model" in _said(result.output) and "sha256" in _said(result.output)
    assert not (tmp_path / "cache").exists(), "nothing is cached for a stage that cannot start"
