"""Operating points: the trainer's calibration at several FARs (one
definition with the served threshold), the manifest that ships them and
its checks, and the shipped artifacts' points."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from embedder.manifest import read_manifest
from likeness.errors import FailedPrecondition
from likeness.operating_points import CUSTOM, OperatingPoint, custom, point_name, strictest
from trainer.calibrate import FARS, IMPOSTOR_PAIRS, STRICTEST_SOURCE, operating_points
from trainer.evaluate import calibrate_threshold
from trainer.metrics import sample_pairs, threshold_at_far

pytest_plugins = ["registry_fixtures"]

MODELS = Path(__file__).resolve().parents[1] / "embedder" / "models"


def _faces(people: int, per_person: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings: each person's faces scattered around a random centre."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((people, 16))
    labels = np.repeat(np.arange(people), per_person).astype(str)
    emb = centres[np.repeat(np.arange(people), per_person)] + 0.8 * rng.standard_normal(
        (people * per_person, 16)
    )
    return emb / np.linalg.norm(emb, axis=1, keepdims=True), labels


def test_names_follow_the_far() -> None:
    assert [point_name(f) for f in FARS] == ["far-1e-2", "far-1e-3", "far-1e-4"]
    assert point_name(2e-3) == "far-2e-3"


def test_points_tighten_with_the_far_and_the_served_one_is_the_calibrated_threshold() -> None:
    emb, people = _faces(40, 5, seed=1)
    sources = np.where(np.arange(len(people)) < 100, "a", "b")
    points = operating_points(emb, people, sources, FARS, seed=7)
    assert [p.name for p in points] == ["far-1e-2", "far-1e-3", "far-1e-4"]
    thresholds = [p.threshold for p in points]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == 3
    # One definition: the point at 1e-3 is the threshold the model serves.
    assert points[1].threshold == round(calibrate_threshold(emb, people, 1e-3, seed=7), 4)
    for p in points:
        assert [r.source for r in p.rates] == ["a", "b"]
        # Cross-source pairs count in the pooled threshold, in no source's rates.
        assert 0 < sum(r.impostor_pairs for r in p.rates) < IMPOSTOR_PAIRS
        for r in p.rates:
            assert r.people == 20 and r.faces == 100
            assert r.genuine_pairs == 20 * 10
            assert r.distinct_impostor_pairs == (100 * 99 - 20 * 5 * 4) // 2
    # A stricter point accepts fewer genuine pairs.
    assert points[0].rates[0].tar >= points[1].rates[0].tar >= points[2].rates[0].tar


def test_the_pooled_rates_are_what_the_pairs_give() -> None:
    emb, people = _faces(30, 4, seed=2)
    sources = np.full(len(people), "only")
    (point,) = operating_points(emb, people, sources, (1e-2,), seed=3)
    sims = emb @ emb.T
    same = people[:, None] == people[None, :]
    upper = np.triu(np.ones_like(same), k=1).astype(bool)
    expected_tar = np.mean(sims[same & upper] >= point.threshold)
    assert point.rates[0].tar == pytest.approx(expected_tar)


def _two_sources(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source "easy": people far apart; source "hard": fewer faces whose
    people look alike (their centres close), as LFW's few look-alike
    celebrities sit beside CelebA's many."""
    rng = np.random.default_rng(seed)
    easy, easy_people = _faces(60, 5, seed=seed)
    shared = rng.standard_normal(16)
    centres = shared + 0.35 * rng.standard_normal((20, 16))
    hard = centres[np.repeat(np.arange(20), 5)] + 0.25 * rng.standard_normal((100, 16))
    hard /= np.linalg.norm(hard, axis=1, keepdims=True)
    emb = np.vstack([easy, hard])
    people = np.r_[
        np.char.add("e", easy_people), np.char.add("h", np.repeat(np.arange(20), 5).astype(str))
    ]
    sources = np.r_[np.full(300, "easy"), np.full(100, "hard")]
    return emb, people, sources


def test_the_strictest_source_rule_serves_the_largest_per_source_threshold() -> None:
    """Round 5 of v7-rule.md: the target FAR holds on each source, not only
    on the pooled pairs the source with the most faces rules."""
    emb, people, sources = _two_sources(seed=4)
    pooled = operating_points(emb, people, sources, (1e-2,), seed=5)[0]
    (point,) = operating_points(emb, people, sources, (1e-2,), seed=5, rule=STRICTEST_SOURCE)
    own = {}
    for name in ("easy", "hard"):
        inside = sources == name
        a, b, same = sample_pairs(people[inside], n_different=IMPOSTOR_PAIRS, seed=5)
        scores = np.sum(emb[inside][a] * emb[inside][b], axis=1)
        own[name] = threshold_at_far(scores, same, 1e-2)
    assert point.threshold == round(max(own.values()), 4) == round(own["hard"], 4)
    rates = {r.source: r for r in point.rates}
    # Each source's rates are on its own drawn pairs, and it meets the target.
    assert all(r.impostor_pairs == IMPOSTOR_PAIRS for r in rates.values())
    assert rates["hard"].far <= 1e-2 + 1e-4 and rates["easy"].far <= 1e-2
    # Pooled, the hard source's look-alikes are let through far above it.
    assert pooled.threshold < point.threshold
    assert {r.source: r for r in pooled.rates}["hard"].far > 2e-2


def test_the_strictest_source_rule_leaves_out_a_source_of_one_person() -> None:
    emb, people, sources = _two_sources(seed=6)
    sources = sources.copy()
    sources[people == "h0"] = "alone"
    (point,) = operating_points(emb, people, sources, (1e-2,), seed=5, rule=STRICTEST_SOURCE)
    assert [r.source for r in point.rates] == ["easy", "hard"]


def test_an_unknown_rule_is_refused() -> None:
    emb, people = _faces(10, 3, seed=1)
    with pytest.raises(ValueError, match="unknown calibration rule 'lowest'"):
        operating_points(emb, people, np.full(30, "a"), FARS, seed=1, rule="lowest")


def _manifest_copy(tmp_path: Path, **changes: object) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(MODELS / "likeness-mobilenet", folder, ignore=shutil.ignore_patterns("*.h5"))
    raw = json.loads((folder / "manifest.json").read_text())
    raw.update(changes)
    (folder / "manifest.json").write_text(json.dumps(raw))
    return folder


#: Where each shipped model's points were calibrated: the default model on
#: the validation people of both labelled sources pooled (issue 22), v6 and
#: dlib-resnet on held-out LFW training people.
CALIBRATION_SOURCES = {
    "likeness-mobilenet": {"celeba-128", "lfw-train"},
    "likeness-mobilenet-v6": {"lfw-train"},
    "dlib-resnet": {"lfw-train"},
}


@pytest.mark.parametrize("name", sorted(CALIBRATION_SOURCES))
def test_the_shipped_models_carry_three_points_with_their_default_threshold(name: str) -> None:
    manifest = read_manifest(MODELS / name)
    points, default = manifest.points
    assert [p.name for p in points] == ["far-1e-2", "far-1e-3", "far-1e-4"]
    assert default == "far-1e-3"
    chosen = next(p for p in points if p.name == default)
    assert chosen.threshold == manifest.default_threshold
    for point in points:
        assert {r.source for r in point.rates} == CALIBRATION_SOURCES[name]
        assert all(r.impostor_pairs > 0 and r.genuine_pairs > 0 for r in point.rates)


@pytest.mark.parametrize(
    ("name", "fingerprint", "threshold"),
    [
        ("likeness-mobilenet", "likeness-mnv2-a035-128-v7d@1bafbdf443b4", 0.7184),
        ("likeness-mobilenet-v6", "likeness-mnv2-a035-128-v6-tta10@77b5269a7486", 0.6812),
    ],
)
def test_each_shipped_model_keeps_its_fingerprint_and_served_threshold(
    name: str, fingerprint: str, threshold: float
) -> None:
    """Galleries are bound to a fingerprint: a changed file under the same
    folder would orphan every gallery enrolled with it."""
    manifest = read_manifest(MODELS / name)
    assert manifest.fingerprint == fingerprint
    assert manifest.default_threshold == threshold


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"default_operating_point": "far-1e-5"}, "not among"),
        ({"default_threshold": 0.7}, "is not the threshold"),
    ],
)
def test_a_manifest_with_inconsistent_points_is_refused(
    tmp_path: Path, change: dict[str, object], words: str
) -> None:
    with pytest.raises(FailedPrecondition, match=words):
        read_manifest(_manifest_copy(tmp_path, **change))


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda ps: [*ps, ps[0]], "unique"),
        (lambda ps: [{**ps[0], "threshold": 1.5}, *ps[1:]], r"not in \[-1, 1\]"),
        (lambda ps: [{**ps[0], "name": CUSTOM}, *ps[1:]], "reserved"),
        (lambda ps: [{k: v for k, v in ps[0].items() if k != "far"}, *ps[1:]], "far"),
    ],
)
def test_malformed_points_are_refused(tmp_path: Path, edit: object, words: str) -> None:
    raw = json.loads((MODELS / "likeness-mobilenet" / "manifest.json").read_text())
    points = edit(raw["operating_points"])  # type: ignore[operator]
    with pytest.raises(FailedPrecondition, match=words):
        read_manifest(_manifest_copy(tmp_path, operating_points=points))


def test_a_manifest_without_points_serves_its_threshold_as_custom(tmp_path: Path) -> None:
    folder = _manifest_copy(tmp_path)
    raw = json.loads((folder / "manifest.json").read_text())
    del raw["operating_points"], raw["default_operating_point"]
    (folder / "manifest.json").write_text(json.dumps(raw))
    points, default = read_manifest(folder).points
    assert default == CUSTOM
    assert [(p.name, p.threshold) for p in points] == [(CUSTOM, raw["default_threshold"])]


def test_the_embedder_reports_its_manifests_points(real_embedder: str) -> None:
    """A real Embedder (dlib-resnet) over gRPC: Info lists the manifest's
    points with their rates and names the default."""
    import grpc

    from likeness.operating_points import from_proto
    from likeness.v1 import embedder_pb2, embedder_pb2_grpc

    with grpc.insecure_channel(real_embedder) as channel:
        info = embedder_pb2_grpc.EmbedderStub(channel).Info(embedder_pb2.InfoRequest(), timeout=10)
    points, default = read_manifest(MODELS / "dlib-resnet").points
    assert info.default_operating_point == default == "far-1e-3"
    served = [from_proto(p) for p in info.operating_points]
    assert [p.name for p in served] == [p.name for p in points]
    for got, want in zip(served, points, strict=True):
        assert got.threshold == pytest.approx(want.threshold, abs=1e-6)  # float32
        assert got.rates[0].tar == pytest.approx(want.rates[0].tar)
        assert got.rates[0].impostor_pairs == want.rates[0].impostor_pairs
    assert info.default_threshold == pytest.approx(points[1].threshold)


def test_the_strictest_point_is_the_lowest_calibrated_far() -> None:
    points = [
        OperatingPoint("far-1e-2", 1e-2, 0.51),
        OperatingPoint("far-1e-4", 1e-4, 0.76),
        OperatingPoint("far-1e-3", 1e-3, 0.65),
    ]
    assert strictest(points) == points[1]
    assert strictest([custom(0.7)]) is None, "a hand-set threshold has no FAR to compare"
    assert strictest([]) is None


def test_points_from_a_run_folder_are_refused_for_another_runs_weights(tmp_path: Path) -> None:
    """`likeness-train operating-points --run`: the run must be the one whose
    weights the artifact ships, or the points would describe another model."""
    from typer.testing import CliRunner

    from trainer.cli import app as train_app

    artifact = tmp_path / "model"
    shutil.copytree(MODELS / "likeness-mobilenet", artifact)
    before = (artifact / "manifest.json").read_text()
    run = tmp_path / "run"
    run.mkdir()
    (run / "final.weights.h5").write_bytes(b"other weights")
    recipe = Path(__file__).resolve().parents[1] / "trainer" / "recipes" / "v7d.toml"
    result = CliRunner().invoke(
        train_app,
        ["operating-points", str(recipe), "--artifact", str(artifact), "--run", str(run)],
    )
    assert result.exit_code == 1
    assert "its final weights are not the ones" in result.output
    assert (artifact / "manifest.json").read_text() == before
    assert not (run / "calibration.json").exists()


def test_the_default_models_default_point_holds_its_far_on_each_held_out_source() -> None:
    """Round 5 of v7-rule.md: the served default is chosen so its target FAR
    holds on every validation source, not only on the pooled pairs."""
    manifest = read_manifest(MODELS / "likeness-mobilenet")
    assert manifest.extra["calibration"]["rule"] == STRICTEST_SOURCE
    points, default = manifest.points
    chosen = next(p for p in points if p.name == default)
    assert {r.source for r in chosen.rates} == {"celeba-128", "lfw-train"}
    for r in chosen.rates:
        # Within one different-person pair of the target on 200,000 drawn.
        assert r.far <= chosen.far + 1 / r.impostor_pairs, r.source
