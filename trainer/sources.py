"""A recipe's data: what each source lists, which people leave it (LFW's
DevTest people and the recipe's [test_people] lists, from every named
source), and the face caches a stage
trains on, built through trainer.cache (resumable)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from trainer.cache import (
    CacheSpec,
    build_cache,
    cache_exists,
    cache_paths,
    list_images,
    list_listed,
)
from trainer.lfw import devtest_people
from trainer.recipe import Recipe, Source, Stage, view_cache
from trainer.test_people import read_test_people

log = logging.getLogger(__name__)

#: LFW's own images, in the layout of its deep-funneled release.
LFW_IMAGES = "images_deepfunneled"

#: The evaluation cache of LFW's DevTest people, beside the training caches.
LFW_TEST = "lfw-test"


@dataclass(frozen=True)
class Listing:
    """A source's images after the exclusion: ``items`` (person, path),
    person "" for unlabelled faces; how many images and people it left out."""

    source: Source
    items: list[tuple[str, Path]]
    excluded_images: int
    excluded_people: int

    @property
    def people(self) -> int:
        return len({person for person, _ in self.items if person})


def list_source(source: Source, excluded: set[str]) -> Listing:
    """Every image of ``source`` but those of the ``excluded`` people."""
    if source.kind == "listed":
        assert source.listing is not None
        every = list_listed(source.root, source.listing, source.prefix)
    else:
        every = list_images(source.root, source.labelled)
    items = [(person, path) for person, path in every if person not in excluded]
    gone = {person for person, _ in every if person in excluded}
    return Listing(source, items, len(every) - len(items), len(gone))


def excluded_people(recipe: Recipe) -> set[str]:
    """LFW's DevTest people and those of every [test_people] list: they
    never enter training, validation or calibration from any source."""
    return devtest_people(recipe.lfw) | held_out_people(recipe)


def held_out_people(recipe: Recipe) -> set[str]:
    """The people of the recipe's [test_people] lists."""
    people: set[str] = set()
    for _, listing in recipe.test_people:
        people |= read_test_people(listing)
    return people


def stage_caches(recipe: Recipe, stage: Stage, cache_root: Path, workers: int) -> None:
    """Build (or finish) every cache ``stage`` trains on: each source at the
    stage's crop size and template, and its seeded views. A cache of the
    same source at another size lends its teacher descriptors (dlib never
    sees our crop), about 4x faster to build."""
    cfg = recipe.config(stage, cache_root, Path())
    excluded = excluded_people(recipe)
    listings = [list_source(source, excluded) for source in recipe.sources]
    seeds = [None, *range(stage.first_view_seed, stage.first_view_seed + stage.views)]
    for seed in seeds:
        for listing, cache in zip(listings, cfg.caches, strict=True):
            out = _view_of(Path(cache), seed)
            spec = replace(stage_spec(recipe, listing.source, stage), view_seed=seed)
            donor = _teacher_donor(recipe, listing.source, stage, cache_root, seed)
            build_cache(listing.items, out, spec, workers, teacher_from=donor)


def _view_of(cache: Path, seed: int | None) -> Path:
    return cache if seed is None else view_cache(cache, seed)


def stage_spec(recipe: Recipe, source: Source, stage: Stage) -> CacheSpec:
    """How ``source``'s faces are cached for ``stage``."""
    return replace(source.detection, size=stage.input_size, template=recipe.network.template)


def _teacher_donor(
    recipe: Recipe, source: Source, stage: Stage, cache_root: Path, seed: int | None
) -> Path | None:
    own = _view_of(recipe.cache_dir(source, stage.input_size, cache_root), seed)
    for other in sorted({s.input_size for s in recipe.stages} - {stage.input_size}):
        donor = _view_of(recipe.cache_dir(source, other, cache_root), seed)
        if donor != own and cache_exists(donor):
            return donor
    return None


def evaluation_caches(recipe: Recipe, cache_root: Path, workers: int) -> list[Path]:
    """The caches LFW evaluation reads at the final crop size: the sources
    of LFW's own images (pairsDevTrain's people) and its DevTest people
    (built here: the only cache that holds them)."""
    stage = recipe.final
    images = recipe.lfw / LFW_IMAGES
    test = devtest_people(recipe.lfw)
    lfw_sources = [s for s in recipe.sources if s.root == images]
    everyone = {p.name for p in images.iterdir() if p.is_dir()}
    out = cache_root / f"s{stage.input_size}" / LFW_TEST
    # Deep-funneled LFW is centred: a central box where HOG finds no face.
    spec = CacheSpec(
        size=stage.input_size,
        template=recipe.network.template,
        centre_fallback=True,
        teacher=True,
    )
    build_cache(list_images(images, True, everyone - test), out, spec, workers)
    return [recipe.cache_dir(s, stage.input_size, cache_root) for s in lfw_sources] + [out]


@dataclass(frozen=True)
class SourceReport:
    """What was read of a source: images and people listed after the
    exclusion, what the exclusion left out, faces found and cached at the
    final crop size among the listed images (None: not cached yet), and
    the source's terms of use as its recipe states them (None: not stated)."""

    name: str
    kind: str
    images: int
    people: int
    excluded_images: int
    excluded_people: int
    faces: int | None
    terms: str | None = None

    @property
    def found(self) -> float | None:
        """Fraction of the listed images in which a face was found."""
        return None if self.faces is None or not self.images else self.faces / self.images


def data_report(recipe: Recipe, cache_root: Path) -> list[SourceReport]:
    """Per source, what the recipe reads (listing the folders, counting the
    final stage's caches). A cache may hold more than the listing, e.g.
    the faces of test people when it also serves a test set: only faces of
    listed images count."""
    excluded = excluded_people(recipe)
    reports = []
    for source in recipe.sources:
        listing = list_source(source, excluded)
        cache = recipe.cache_dir(source, recipe.final.input_size, cache_root)
        faces = listed_faces(cache, listing) if cache_exists(cache) else None
        reports.append(
            SourceReport(
                name=source.name,
                kind=source.kind,
                images=len(listing.items),
                people=listing.people,
                excluded_images=listing.excluded_images,
                excluded_people=listing.excluded_people,
                faces=faces,
                terms=source.terms,
            )
        )
    return reports


def listed_faces(cache: Path, listing: Listing) -> int:
    """How many of ``cache``'s faces come from an image of ``listing``.
    Paths are compared resolved (from the current folder), so a cache built
    with absolute paths and a recipe's relative ones agree."""
    listed = {path.resolve() for _, path in listing.items}
    return sum(Path(path).resolve() in listed for path in cache_paths(cache).tolist())


@dataclass(frozen=True)
class HeldOutList:
    """A list of test people left out of every source: the ``files`` that
    name them and how many ``people`` they hold."""

    name: str
    files: tuple[Path, ...]
    people: int


def held_out_lists(recipe: Recipe) -> list[HeldOutList]:
    """LFW's View 1 test people, then each [test_people] list of the
    recipe, as the model card names them."""
    lfw = HeldOutList(
        "LFW View 1 test people",
        (recipe.lfw / "peopleDevTest.txt", recipe.lfw / "pairsDevTest.txt"),
        len(devtest_people(recipe.lfw)),
    )
    return [lfw] + [
        HeldOutList(f"[test_people] {name}", (file,), len(read_test_people(file)))
        for name, file in recipe.test_people
    ]
