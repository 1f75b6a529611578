"""Recipe files: one TOML file per model (trainer/recipes/), declaring it end
to end: the network, the data sources, each training stage, the test-time
views and the calibration. A stage's keys are the declared fields of
trainer.config.TrainConfig, by the same names; the recipe resolves the rest
(caches, initial weights), so the file's values reach the training loop as
they are. Paths in a recipe are relative to the folder the build runs in
(the repository root). No heavy imports.

Layout (every key is documented in trainer/recipes/README.md)::

    model_id = "..."                  # the exported model's id
    [network]                         # embedder.model.ModelConfig but input_size
    [lfw]                             # root: its DevTest people leave every source
    [test_people]                     # optional: name = list file; they leave every source
    [[sources]]                       # name, kind, root; kind-specific keys
    [defaults]                        # stage keys every stage takes unless it sets them
    [[stages]]                        # name, init or average, stage keys
    [test_views]                      # embedder.model.InferenceViews
    [calibration]                     # far, seed; optional rule (trainer.calibrate.RULES)
    [arms.<name>]                     # optional: an ablation's arms, loss keys only
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedder.model import InferenceViews, ModelConfig
from trainer.cache import CacheSpec
from trainer.calibrate import POOLED, RULES
from trainer.config import LOSS_KEYS, TrainConfig, declared_fields, margin_head_problem
from trainer.run import BuildFolder

if TYPE_CHECKING:
    from embedder.manifest import Manifest

#: Source kinds: identity folders ``<person>/<image>``, a folder plus a
#: ``path<TAB>identity`` list (trainer.cache.list_listed), or a flat folder of
#: unlabelled faces (distillation only).
KINDS = ("identities", "listed", "unlabelled")

#: How a stage starts when ``init`` names no earlier stage.
INITS = ("imagenet", "random")

#: ``init = "model:<folder>"`` starts a stage from a shipped artifact's
#: weights (a ``likeness-mobilenet`` folder: manifest.json + its weights,
#: sha256-checked before training), e.g. the model a new one refines.
MODEL_INIT = "model:"


def init_artifact(init: str) -> Path | None:
    """The artifact folder a stage's ``init`` names, or None."""
    return Path(init.removeprefix(MODEL_INIT)) if init.startswith(MODEL_INIT) else None


def verified_artifact(folder: Path) -> Manifest:
    """The manifest of the model artifact in ``folder``, its files checked
    against their sha256. Raises ValueError (the trainer's error for data
    that does not fit) when it is missing or a file does not match."""
    from embedder.manifest import load_manifest
    from likeness.errors import FailedPrecondition

    try:
        return load_manifest(folder)
    except FailedPrecondition as exc:
        raise ValueError(str(exc)) from None


#: CacheSpec fields a source may set: how its faces are found. The rest
#: follow from the stage (size, template, view seed) or are always on (teacher).
_DETECTION = ("centre_fallback", "pick_centre", "upsample", "pad", "scale")
_SOURCE_KEYS = {"name": True, "kind": True, "root": True, "list": False, "prefix": False}
_SOURCE_KEYS |= {"cache": False, "terms": False} | dict.fromkeys(_DETECTION, False)
#: Stage keys that are not TrainConfig fields: they shape its resolved fields.
_STAGE_SHAPE = {"input_size": True, "views": True, "first_view_seed": True}


#: Stage names: each is a folder of the build.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class RecipeError(ValueError):
    """A recipe file that does not declare a model: names the file and the key."""


@dataclass(frozen=True)
class Source:
    """A named data source. ``listing`` is the ``path<TAB>identity`` file of a
    "listed" source, its people named ``prefix`` + identity; ``cache`` a
    folder already holding this source's faces (trainer.cache format) to use
    instead of building one; ``detection`` how faces are found (its size,
    template and view seed are the stage's); ``terms`` the terms of use of
    its data as the copy read states them (None: the recipe states none),
    which the model card lists: they bind the model's use; they change no
    cache and no stage's config."""

    name: str
    kind: str
    root: Path
    listing: Path | None
    prefix: str
    cache: Path | None
    detection: CacheSpec
    terms: str | None = None

    @property
    def labelled(self) -> bool:
        return self.kind != "unlabelled"


@dataclass(frozen=True)
class Stage:
    """A training stage (``init``: "imagenet", "random", an earlier stage's
    name or ``model:<artifact folder>``) or, with ``average``, the
    element-wise mean of earlier stages' final weights (trainer.average).
    ``settings`` are its TrainConfig keys, defaults applied; ``views`` seeded
    views per training image, seeds ``first_view_seed`` onwards
    (trainer.views)."""

    name: str
    init: str
    input_size: int
    views: int
    first_view_seed: int
    settings: Mapping[str, Any]
    average: tuple[str, ...] = ()


@dataclass(frozen=True)
class Arm:
    """One arm of an ablation: the recipe with ``settings`` (loss keys only,
    trainer.config.LOSS_KEYS) set in every training stage, so every arm
    trains the same network on the same data, batches, steps, schedule and
    seeds: an equal budget. ``about`` says what the arm is."""

    name: str
    about: str
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe file (see the module docstring)."""

    file: Path
    model_id: str
    network: ModelConfig
    imagenet_weights: Path | None
    lfw: Path
    sources: tuple[Source, ...]
    stages: tuple[Stage, ...]
    test_views: InferenceViews
    far: float
    calibration_seed: int
    #: How the served thresholds are chosen (trainer.calibrate.RULES).
    calibration_rule: str = POOLED
    #: Held-out test people lists (trainer.test_people), by name: their
    #: people leave every source, like LFW's DevTest people.
    test_people: tuple[tuple[str, Path], ...] = ()
    #: The ablation's arms ([arms.<name>]), in file order.
    arms: tuple[Arm, ...] = ()
    #: The arm this recipe is (:meth:`with_arm`), or None: the file as written.
    arm: str | None = None

    @property
    def name(self) -> str:
        """The build folder's name: the file's, and the arm's after a dash."""
        return self.file.stem if self.arm is None else f"{self.file.stem}-{self.arm}"

    def with_arm(self, name: str) -> Recipe:
        """This recipe as arm ``name``: its loss keys set in every training
        stage. Raises RecipeError for an arm the file does not declare."""
        arms = {a.name: a for a in self.arms}
        if name not in arms:
            known = ", ".join(arms) or "none"
            raise RecipeError(f"{self.file}: no arm {name!r} (arms: {known})")
        if self.arm is not None:
            raise RecipeError(f"{self.file}: already arm {self.arm!r}")
        settings = arms[name].settings
        stages = tuple(
            s if s.average else replace(s, settings={**s.settings, **settings}) for s in self.stages
        )
        return replace(self, stages=stages, arm=name)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise RecipeError(f"{self.file}: no stage {name!r} (stages: {self._stage_names()})")

    def _stage_names(self) -> str:
        return ", ".join(s.name for s in self.stages)

    def model(self, stage: Stage) -> ModelConfig:
        return replace(self.network, input_size=stage.input_size)

    def cache_dir(self, source: Source, size: int, cache_root: Path) -> Path:
        """Where ``source``'s faces at ``size`` px are cached."""
        return source.cache or cache_root / f"s{size}" / source.name

    def config(self, stage: Stage, cache_root: Path, runs: Path) -> TrainConfig:
        """The stage's full training configuration: caches under
        ``cache_root``, an earlier stage's weights from its run folder under
        ``runs``, a build folder. An average stage's is the
        config of the last stage it averages."""
        if stage.average:
            return self.config(self.stage(stage.average[-1]), cache_root, runs)
        caches = [self.cache_dir(s, stage.input_size, cache_root) for s in self.sources]
        seeds = range(stage.first_view_seed, stage.first_view_seed + stage.views)
        views = [view_cache(c, seed) for seed in seeds for c in caches]
        return TrainConfig(
            caches=tuple(str(c) for c in caches),
            view_caches=tuple(str(v) for v in views),
            model=self.model(stage),
            imagenet_weights=(str(self.imagenet_weights) if stage.init == "imagenet" else None),
            init_weights=_init_weights(stage.init, runs),
            **stage.settings,
        )


def _init_weights(init: str, runs: Path) -> str | None:
    if init in INITS:
        return None
    artifact = init_artifact(init)
    if artifact is not None:
        from embedder.manifest import read_manifest

        return str(artifact / read_manifest(artifact).weights)
    return str(BuildFolder(runs).stage(init).final_weights)


def view_cache(cache: Path, seed: int) -> Path:
    """The cache of the seeded views (trainer.views) of ``cache``'s images."""
    return cache.with_name(f"{cache.name}-view{seed}")


def load_recipe(file: Path) -> Recipe:
    """Parse and check a recipe file. Raises RecipeError naming the file and
    the key for a missing, unknown or ill-typed key, an unknown source kind
    or stage, or a stage that starts from a later one."""
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"{file}: {exc}") from None
    top = _table(raw, "the top level", file)
    tables = ("network", "lfw", "sources", "defaults", "stages", "test_views", "calibration")
    _check(
        top,
        "the top level",
        file,
        {**dict.fromkeys(("model_id", *tables), True), "test_people": False, "arms": False},
    )
    network = _table(top["network"], "[network]", file)
    model_keys = {f.name: True for f in fields(ModelConfig) if f.name != "input_size"}
    _check(network, "[network]", file, {**model_keys, "imagenet_weights": False})
    lfw = _table(top["lfw"], "[lfw]", file)
    _check(lfw, "[lfw]", file, {"root": True})
    views = _table(top["test_views"], "[test_views]", file)
    _check(views, "[test_views]", file, {f.name: True for f in fields(InferenceViews)})
    calibration = _table(top["calibration"], "[calibration]", file)
    _check(calibration, "[calibration]", file, {"far": True, "seed": True, "rule": False})
    rule = _typed(calibration.get("rule", POOLED), str, "[calibration] rule", file)
    if rule not in RULES:
        raise RecipeError(f"{file}: [calibration] rule {rule!r} is none of {', '.join(RULES)}")
    defaults = _table(top["defaults"], "[defaults]", file)
    stage_keys = {**declared_fields(), **_STAGE_SHAPE}
    _check(defaults, "[defaults]", file, dict.fromkeys(stage_keys, False))
    sources = tuple(_source(t, i, file) for i, t in enumerate(_tables(top, "sources", file)))
    stages: list[Stage] = []
    for i, table in enumerate(_tables(top, "stages", file)):
        stages.append(_stage(table, i, defaults, stage_keys, stages, file))
    if len({s.name for s in sources}) < len(sources) or not sources:
        raise RecipeError(f"{file}: [[sources]] needs one or more sources of distinct names")
    if len({s.name for s in stages}) < len(stages):
        raise RecipeError(f"{file}: [[stages]] needs distinct names")
    imagenet = network.pop("imagenet_weights", None)
    if imagenet is None and any(s.init == "imagenet" for s in stages):
        raise RecipeError(f"{file}: missing key 'imagenet_weights' in [network]")
    arms = _arms(top.get("arms", {}), stages, file)
    return Recipe(
        file=file,
        model_id=_typed(top["model_id"], str, "model_id", file),
        network=ModelConfig(
            **_typed_fields(ModelConfig, network, "[network]", file),
            input_size=stages[-1].input_size,
        ),
        imagenet_weights=Path(imagenet) if imagenet is not None else None,
        lfw=Path(_typed(lfw["root"], str, "[lfw] root", file)),
        sources=sources,
        stages=tuple(stages),
        test_views=InferenceViews(**_typed_fields(InferenceViews, views, "[test_views]", file)),
        far=float(calibration["far"]),
        calibration_seed=_typed(calibration["seed"], int, "[calibration] seed", file),
        calibration_rule=rule,
        test_people=_test_people(top.get("test_people", {}), file),
        arms=arms,
    )


def _arms(raw: Any, stages: list[Stage], file: Path) -> tuple[Arm, ...]:
    """The [arms.<name>] tables: loss keys only, each valid in every stage."""
    arms = []
    for name, value in _table(raw, "[arms]", file).items():
        where = f"[arms.{name}]"
        if not _NAME.fullmatch(name):
            raise RecipeError(f"{file}: {where}: an arm's name must be letters, digits, '-' or '_'")
        table = _table(value, where, file)
        keys = [k for k in table if k != "about"]
        other = [k for k in keys if k not in LOSS_KEYS]
        if other:
            raise RecipeError(
                f"{file}: {where}: unknown key {other[0]!r}: an arm sets loss keys only"
                f" ({', '.join(sorted(LOSS_KEYS))}), so every arm has the same budget"
            )
        about = _typed(table.get("about", ""), str, f"{where} about", file)
        settings = _typed_fields(TrainConfig, {k: table[k] for k in keys}, where, file)
        for stage in stages:
            problem = margin_head_problem({**stage.settings, **settings})
            if problem and not stage.average:
                raise RecipeError(f"{file}: {where} in stage {stage.name!r}: {problem}")
        arms.append(Arm(name, about, settings))
    return tuple(arms)


def _test_people(raw: Any, file: Path) -> tuple[tuple[str, Path], ...]:
    table = _table(raw, "[test_people]", file)
    return tuple(
        (name, Path(_typed(value, str, f"[test_people] {name}", file)))
        for name, value in table.items()
    )


def _source(raw: Any, index: int, file: Path) -> Source:
    where = f"[[sources]] #{index + 1}"
    table = _table(raw, where, file)
    _check(table, where, file, _SOURCE_KEYS)
    where = f"[[sources]] {table['name']!r}"
    kind = table["kind"]
    if kind not in KINDS:
        raise RecipeError(f"{file}: {where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if (kind == "listed") != ("list" in table):
        raise RecipeError(f"{file}: {where}: key 'list' belongs to kind 'listed' and only to it")
    detection = {k: table[k] for k in _DETECTION if k in table}
    try:
        spec = CacheSpec(teacher=True, **detection)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"{file}: {where}: {exc}") from None
    return Source(
        name=str(table["name"]),
        kind=kind,
        root=Path(table["root"]),
        listing=Path(table["list"]) if "list" in table else None,
        prefix=str(table.get("prefix", "")),
        cache=Path(table["cache"]) if "cache" in table else None,
        detection=spec,
        terms=_terms(table, where, file),
    )


def _terms(table: dict[str, Any], where: str, file: Path) -> str | None:
    if "terms" not in table:
        return None
    terms = _typed(table["terms"], str, f"{where} terms", file).strip()
    if not terms:
        raise RecipeError(f"{file}: {where}: 'terms' is empty: state them or leave the key out")
    return str(terms)


def _stage(
    raw: Any,
    index: int,
    defaults: dict[str, Any],
    stage_keys: dict[str, bool],
    earlier: list[Stage],
    file: Path,
) -> Stage:
    table = _table(raw, f"[[stages]] #{index + 1}", file)
    where = f"[[stages]] {table.get('name', f'#{index + 1}')!r}"
    name = table.get("name")
    # A stage's name is its run folder's, and "imagenet"/"random" start a stage.
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (*INITS, "model"):
        raise RecipeError(
            f"{file}: {where}: 'name' must be letters, digits, '-' or '_', and not"
            f" {', '.join((*INITS, 'model'))}"
        )
    if "average" in table:
        _check(table, where, file, {"name": True, "average": True})
        names = {s.name: s for s in earlier}
        parts = tuple(str(p) for p in table["average"])
        if len(parts) < 2 or any(p not in names for p in parts):
            raise RecipeError(f"{file}: {where}: 'average' takes two or more earlier stages")
        # The mean has the network and schedule of the last stage it averages.
        return replace(names[parts[-1]], name=str(table["name"]), average=parts)
    merged = {**defaults, **table}
    required = {**{k: v for k, v in stage_keys.items() if v}, "name": True, "init": True}
    _check(merged, where, file, {**dict.fromkeys(stage_keys, False), **required})
    init = str(merged["init"])
    if init not in INITS and init not in {s.name for s in earlier} and not init_artifact(init):
        raise RecipeError(
            f"{file}: {where}: init {init!r} is not one of {', '.join(INITS)},"
            f" an earlier stage nor {MODEL_INIT}<artifact folder>"
        )
    settings = _typed_fields(
        TrainConfig, {k: merged[k] for k in declared_fields() if k in merged}, where, file
    )
    problem = margin_head_problem(settings)
    if problem:
        raise RecipeError(f"{file}: {where}: {problem}")
    return Stage(
        name=str(merged["name"]),
        init=str(merged["init"]),
        input_size=_typed(merged["input_size"], int, f"{where} input_size", file),
        views=_typed(merged["views"], int, f"{where} views", file),
        first_view_seed=_typed(merged["first_view_seed"], int, f"{where} first_view_seed", file),
        settings=settings,
    )


def _typed_fields(cls: Any, table: Mapping[str, Any], where: str, file: Path) -> dict[str, Any]:
    """``table``'s values checked against the types of ``cls``'s fields of
    the same names (an int is a fine float)."""
    types = {f.name: str(f.type) for f in fields(cls)}
    return {key: _coerce(value, types[key], f"{where} {key}", file) for key, value in table.items()}


def _coerce(value: Any, annotation: str, where: str, file: Path) -> Any:
    kinds = {"int": int, "float": float, "bool": bool, "str": str, "int | None": int}
    kind = kinds[annotation]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return _typed(value, kind, where, file)


def _typed(value: Any, kind: type, where: str, file: Path) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RecipeError(f"{file}: {where} must be a {kind.__name__}, not {value!r}")
    return value


def _table(value: Any, where: str, file: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecipeError(f"{file}: {where} must be a table")
    return dict(value)


def _tables(top: dict[str, Any], key: str, file: Path) -> list[Any]:
    value = top[key]
    if not isinstance(value, list) or not value:
        raise RecipeError(f"{file}: [[{key}]] must be one or more tables")
    return value


def _check(table: Mapping[str, Any], where: str, file: Path, keys: Mapping[str, bool]) -> None:
    """Raise RecipeError for a key of ``table`` that is not in ``keys``, or
    one that ``keys`` marks required (True) and ``table`` lacks."""
    for key in sorted(table):
        if key not in keys:
            known = ", ".join(sorted(keys))
            raise RecipeError(f"{file}: unknown key {key!r} in {where} (known: {known})")
    for key in sorted(k for k, required in keys.items() if required):
        if key not in table:
            raise RecipeError(f"{file}: missing key {key!r} in {where}")
