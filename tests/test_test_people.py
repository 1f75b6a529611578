"""Held-out test people (trainer.test_people): the committed CelebA list is
what its seeded rule draws, in the documented format, and no source of the
v7 recipe yields a listed person."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from trainer.cache import CacheSpec
from trainer.data import FaceData, without_people
from trainer.recipe import Source, load_recipe
from trainer.sources import excluded_people, list_source
from trainer.test_people import (
    CELEBA_COUNT,
    CELEBA_MIN_PHOTOS,
    CELEBA_PREFIX,
    CELEBA_SEED,
    listed_identities,
    read_test_people,
    select_test_people,
)

ROOT = Path(__file__).resolve().parent.parent
CELEBA_LIST = ROOT / "trainer" / "data" / "celeba-test-people.txt"


def test_the_draw_keeps_people_with_two_photos_and_ignores_the_lists_order() -> None:
    # Person "p<i>" has i photos: p0 none, p1 one, the rest two or more.
    identities = [f"p{i}" for i in range(12) for _ in range(i)]
    chosen = select_test_people(identities, 5, seed=3, prefix="x-")
    assert len(chosen) == 5 and chosen == sorted(chosen)
    assert all(p.startswith("x-p") for p in chosen)
    assert "x-p1" not in chosen
    shuffled = identities[:]
    random.Random(0).shuffle(shuffled)
    assert select_test_people(shuffled, 5, seed=3, prefix="x-") == chosen
    assert select_test_people(identities, 5, seed=4, prefix="x-") != chosen
    # Every qualifying person: p2..p11.
    assert select_test_people(identities, 10, seed=3) == sorted(f"p{i}" for i in range(2, 12))


def test_the_draw_refuses_more_people_than_qualify() -> None:
    with pytest.raises(ValueError, match="10 have 2"):
        select_test_people([f"p{i}" for i in range(12) for _ in range(i)], 11, seed=1)


def test_the_committed_list_states_its_rule_and_is_what_the_rule_draws(tmp_path: Path) -> None:
    text = CELEBA_LIST.read_text(encoding="utf-8")
    comments = [line for line in text.splitlines() if line.startswith("#")]
    said = " ".join(comments)
    assert f"seed {CELEBA_SEED}" in said and f"{CELEBA_MIN_PHOTOS} or more photos" in said
    people = read_test_people(CELEBA_LIST)
    rows = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(people) == len(rows) == CELEBA_COUNT
    assert rows == sorted(rows)
    assert all(p.startswith(CELEBA_PREFIX) and p[len(CELEBA_PREFIX) :].isdigit() for p in people)
    # The same rule on a synthetic identities file in the shared list's format.
    listing = tmp_path / "identities.tsv"
    body = [f"img/{i:06d}.jpg\t{i % 40 + 1}" for i in range(100)] + ["img/x.jpg\t999"]
    listing.write_text("path\tidentity\n" + "\n".join(body) + "\n")
    identities = listed_identities(listing)
    assert len(identities) == 101
    drawn = select_test_people(identities, 20, CELEBA_SEED, CELEBA_PREFIX)
    assert len(drawn) == 20 and "celeba-999" not in drawn
    assert drawn == select_test_people(identities, 20, CELEBA_SEED, CELEBA_PREFIX)


def test_no_source_of_v7_yields_a_listed_test_person(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = load_recipe(ROOT / "trainer" / "recipes" / "v7.toml")
    assert dict(recipe.test_people) == {"celeba": Path("trainer/data/celeba-test-people.txt")}
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr("trainer.sources.devtest_people", lambda _root: {"Lfw_Person"})
    excluded = excluded_people(recipe)
    celeba = read_test_people(CELEBA_LIST)
    assert excluded == celeba | {"Lfw_Person"}
    # Each v7 source, pointed at a small synthetic folder holding two test
    # people and one training person, keeps only the training person.
    test_a, test_b = sorted(celeba)[:2]
    folders = tmp_path / "folders"
    for person in ("Lfw_Person", test_a, "kept"):
        (folders / person).mkdir(parents=True)
        (folders / person / "1.jpg").write_bytes(b"")
    listing = tmp_path / "list.tsv"
    bare = [p[len(CELEBA_PREFIX) :] for p in (test_a, test_b)]
    listing.write_text(f"a.jpg\t{bare[0]}\nb.jpg\t{bare[1]}\nc.jpg\t7777777\n")
    for source in recipe.sources:
        root = folders if source.kind != "listed" else tmp_path
        local = Source(
            source.name,
            source.kind,
            root,
            listing if source.listing else None,
            source.prefix,
            None,
            CacheSpec(teacher=True),
        )
        yielded = {person for person, _ in list_source(local, excluded).items}
        assert not yielded & excluded, source.name
        if source.kind != "unlabelled":
            assert yielded == ({"celeba-7777777"} if source.listing else {"kept"})


def test_a_shared_cache_loses_the_test_peoples_faces_before_training() -> None:
    people = np.array(["celeba-1", "celeba-2", "", "celeba-1", "celeba-3"])
    data = FaceData(
        crops=np.arange(5, dtype=np.uint8).reshape(5, 1, 1, 1),
        landmarks=np.zeros((5, 68, 2), np.float32),
        person=people,
        path=np.array([f"{i}.jpg" for i in range(5)]),
        teacher=np.arange(5 * 128, dtype=np.float32).reshape(5, 128),
    )
    kept = without_people(data, {"celeba-1", "celeba-9"})
    assert kept.person.tolist() == ["celeba-2", "", "celeba-3"]
    assert kept.path.tolist() == ["1.jpg", "2.jpg", "4.jpg"]
    assert kept.teacher is not None and kept.teacher[:, 0].tolist() == [128.0, 256.0, 512.0]
    assert without_people(data, set()) is data
