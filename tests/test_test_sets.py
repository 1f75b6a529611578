"""The second test set's evaluation (trainer.test_sets): figures of every
same/different pair of hand-made embeddings, LFW pairsDevTest rows from a
tiny LFW folder, the held-out people's faces picked from a shared cache, and
the ``likeness-train test-sets`` command refusing what it cannot measure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from trainer.cli import app as train_app
from trainer.data import FaceData
from trainer.test_sets import (
    all_pairs,
    all_pairs_report,
    devtest_report,
    held_out_faces,
    markdown_table,
    pair_report,
)

ROOT = Path(__file__).resolve().parent.parent


def _unit(rows: list[list[float]]) -> np.ndarray:
    v = np.array(rows, dtype=np.float64)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_every_pair_of_the_faces_is_scored_once() -> None:
    a, b, same = all_pairs(np.array(["x", "y", "x", "z"]))
    assert list(zip(a.tolist(), b.tolist(), strict=True)) == [
        (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)
    ]  # fmt: skip
    assert same.tolist() == [False, True, False, False, False, False]


def test_separated_people_score_perfectly() -> None:
    # Three people, two faces each, near their own axis.
    emb = _unit([[1, 0.1, 0], [1, -0.1, 0], [0, 1, 0.1], [0, 1, -0.1], [0.1, 0, 1], [-0.1, 0, 1]])
    people = np.array(["a", "a", "b", "b", "c", "c"])
    row = all_pairs_report("synthetic", "hand", emb, people)
    assert (row.people, row.faces, row.same_pairs, row.different_pairs) == (3, 6, 3, 12)
    assert row.accuracy == 1.0 and row.auc == 1.0 and row.eer == 0.0
    assert row.tar_at_far_1e3 == row.tar_at_far_1e4 == 1.0
    assert row.rank1 == 1.0


def test_overlapping_scores_give_the_hand_counted_figures() -> None:
    # Scores: same pairs 0.9, 0.5; different pairs 0.6, 0.1, 0.0, -0.2.
    scores = np.array([0.9, 0.5, 0.6, 0.1, 0.0, -0.2] * 5)
    same = np.array([True, True, False, False, False, False] * 5)
    emb = _unit([[1, 0], [0.9, 0.1], [0, 1], [0.1, 1]])
    row = pair_report("hand", "scores", scores, same, emb, np.array(["a", "a", "b", "b"]))
    # AUC: of the 2 x 4 (same, different) orderings, only 0.5 < 0.6 is wrong.
    assert row.auc == pytest.approx(7 / 8)
    # No threshold accepts a same pair while accepting no different pair but 0.9.
    assert row.tar_at_far_1e3 == row.tar_at_far_1e4 == pytest.approx(0.5)
    assert 0.0 < row.eer <= 0.5
    # The best single threshold decides 5 of 6 right; thresholds chosen on
    # other folds can do no better.
    assert 2 / 3 <= row.accuracy <= 5 / 6 + 1e-9
    assert (row.same_pairs, row.different_pairs) == (10, 20)
    table = markdown_table([row])
    assert "| hand | scores | 2 / 4 | 10 / 20 |" in table and "87.5" not in table
    assert table.endswith("| n/a |"), "no served threshold given, none reported"


def test_the_rates_at_a_served_threshold_count_pairs_at_or_above_it() -> None:
    # Same pairs 0.9, 0.5; different pairs 0.6, 0.1, 0.0, -0.2 (five times).
    scores = np.array([0.9, 0.5, 0.6, 0.1, 0.0, -0.2] * 5)
    same = np.array([True, True, False, False, False, False] * 5)
    emb = _unit([[1, 0], [0.9, 0.1], [0, 1], [0.1, 1]])
    people = np.array(["a", "a", "b", "b"])
    row = pair_report("hand", "scores", scores, same, emb, people, served=0.6)
    # 0.9 passes and 0.5 does not; of the different pairs only 0.6 (at the threshold).
    assert (row.served_threshold, row.tar_at_served, row.far_at_served) == (0.6, 0.5, 0.25)
    assert markdown_table([row]).endswith("| 0.6000: 50.00% / 2.5e-01 |")


def test_a_set_without_different_pairs_is_refused() -> None:
    emb = _unit([[1, 0], [1, 0.1]])
    with pytest.raises(ValueError, match="both same-person and different-person"):
        all_pairs_report("one person", "hand", emb, np.array(["a", "a"]))


def _faces(people: list[str], paths: list[str], emb: np.ndarray) -> FaceData:
    n = len(people)
    return FaceData(
        crops=np.zeros((n, 4, 4, 3), np.uint8),
        landmarks=np.zeros((n, 68, 2), np.float32),
        person=np.array(people),
        path=np.array(paths),
        teacher=emb.astype(np.float32),
    )


def test_devtest_rows_score_the_listed_pairs_of_cached_faces(tmp_path: Path) -> None:
    (tmp_path / "pairsDevTest.txt").write_text(
        "2\nAnn 1 2\nBob 1 2\nAnn 1 Bob 1\nAnn 2 Bob 2\nAnn 1 Cy 1\n"
    )
    people = ["Ann", "Ann", "Bob", "Bob"]
    paths = ["x/Ann/Ann_0001.jpg", "x/Ann/Ann_0002.jpg", "x/Bob/Bob_0001.jpg", "x/Bob/Bob_0002.jpg"]
    emb = _unit([[1, 0.1], [1, -0.1], [0.1, 1], [-0.1, 1]])
    row = devtest_report("hand", emb, _faces(people, paths, emb), tmp_path)
    # Cy was never cached: their pair is left out.
    assert (row.same_pairs, row.different_pairs) == (2, 2)
    assert row.auc == 1.0 and row.rank1 == 1.0 and row.test_set == "LFW pairsDevTest"


def test_the_held_out_faces_are_picked_from_a_cache_of_everyone(tmp_path: Path) -> None:
    people = ["celeba-1", "celeba-2", "celeba-3", "celeba-1"]
    np.savez(
        tmp_path / "shard-00000.npz",
        person=np.array(people),
        path=np.array([f"{i}.jpg" for i in range(4)]),
        crop=np.zeros((4, 4, 4, 3), np.uint8),
        landmarks=np.zeros((4, 68, 2), np.float32),
        teacher=np.eye(4, 128, dtype=np.float32),
    )
    faces = held_out_faces(tmp_path, {"celeba-1", "celeba-3", "celeba-9"})
    assert faces.person.tolist() == ["celeba-1", "celeba-3", "celeba-1"]
    assert faces.path.tolist() == ["0.jpg", "2.jpg", "3.jpg"]
    with pytest.raises(ValueError, match="no face of the 1 listed people"):
        held_out_faces(tmp_path, {"celeba-9"})


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (["--test-people", "nope"], "names no [test_people] list 'nope'"),
        (["--source", "nope"], "has no source 'nope'"),
        (["--artifact", "{tmp}"], "holds no manifest.json"),
        (["--dlib-model", "{tmp}"], "holds no manifest.json"),
    ],
)
def test_the_command_refuses_an_unknown_list_source_or_model_folder(
    tmp_path: Path, option: list[str], said: str
) -> None:
    recipe = ROOT / "trainer" / "recipes" / "v7.toml"
    args = ["test-sets", str(recipe), "--runs", str(tmp_path), "--cache-dir", str(tmp_path)]
    option = [o.format(tmp=tmp_path) for o in option]
    result = CliRunner().invoke(train_app, [*args, *option])
    assert result.exit_code != 0
    assert said in " ".join(result.output.replace("│", " ").split())
    assert "Traceback" not in result.output
