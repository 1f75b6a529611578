"""Clustering, duplicates and the gallery map, end to end: ``likeness
cluster``, ``likeness subjects duplicates`` and ``likeness galleries plot``
through typer's CliRunner against a real Embedder (dlib-resnet backend) and
a real Registry on loopback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from registry_helpers import running_registry
from typer.testing import CliRunner, Result

from embedder.backends import DLIB_MODEL
from embedder.manifest import read_manifest
from likeness import clustering
from likeness.client import FaceSelection, LikenessClient
from likeness.operating_points import find
from likeness_cli import app

pytest_plugins = ["registry_fixtures"]

DATA = Path(__file__).parent / "data"
PEOPLE = ("Albert_Costa", "Calista_Flockhart", "Kurt_Warner", "Rick_Perry")
STRANGER = "Aaron_Tippin_0001.jpg"


@dataclass(frozen=True)
class Services:
    embedder: str
    registry: str


@pytest.fixture(scope="module")
def services(real_embedder: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    data = tmp_path_factory.mktemp("registry")
    with running_registry(data, real_embedder, embedder_timeout_s=10.0, workers=4) as registry:
        yield Services(real_embedder, f"127.0.0.1:{registry.port}")


def run(services: Services, *args: str) -> Result:
    env: dict[str, str | None] = {
        "LIKENESS_REGISTRY_ADDRESS": services.registry,
        "LIKENESS_EMBEDDER_ADDRESS": services.embedder,
        "LIKENESS_API_KEY": None,
        "LIKENESS_GALLERY": None,
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Four people's photos (three each, in nested folders, shuffled names),
    a stranger and an image without a face."""
    folder = tmp_path / "photos"
    (folder / "holiday").mkdir(parents=True)
    for n, person in enumerate(PEOPLE):
        for i in (1, 2, 3):
            target = folder / ("holiday" if i == 2 else "") / f"img_{i}{n}.jpg"
            shutil.copy(DATA / "lfw" / f"{person}_000{i}.jpg", target)
    shutil.copy(DATA / "stranger" / STRANGER, folder / "img_stranger.jpg")
    shutil.copy(DATA / "bad" / "no_face.jpg", folder / "holiday" / "img_noface.jpg")
    return folder


def _truth(file: str) -> str:
    name = Path(file).stem
    return "stranger" if name == "img_stranger" else PEOPLE[int(name[-1])]


def test_cluster_groups_the_photos_by_person(
    services: Services, photos: Path, tmp_path: Path
) -> None:
    out_file = tmp_path / "clusters.json"
    links = tmp_path / "by_person"
    result = run(
        services, "cluster", str(photos), "--out", str(out_file), "--link-into", str(links)
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out_file.read_text())
    # Faces link at the model's strictest point: a folder compares all pairs.
    points, _ = read_manifest(DLIB_MODEL).points
    assert doc["operating_point"] == "far-1e-4"
    assert doc["threshold"] == pytest.approx(find(points, "far-1e-4").threshold)  # type: ignore[union-attr]
    groups = sorted(sorted(_truth(f["file"]) for f in c["faces"]) for c in doc["clusters"])
    # Kurt_Warner_0002 also shows a second, small face in the background
    # (top left), someone else: it matches nobody and stays alone.
    background = [c for c in doc["clusters"] if c["faces"][0]["box"][1] < 0]
    assert [c["size"] for c in background] == [1]
    assert groups == sorted([[p] * 3 for p in PEOPLE] + [["stranger"], ["Kurt_Warner"]])
    assert doc["images_without_faces"] == [
        {"file": str(Path("holiday") / "img_noface.jpg"), "reason": "no face"}
    ]
    face = doc["clusters"][0]["faces"][0]
    assert len(face["box"]) == 4 and face["quality"]["face_size_px"] > 0
    # One folder per cluster, each with links to that person's photos.
    folders = sorted(links.iterdir())
    assert len(folders) == 6
    for folder in folders:
        targets = {p.resolve() for p in folder.iterdir()}
        people = {_truth(str(t)) for t in targets}
        assert len(people) == 1 and all(t.is_file() for t in targets)


def test_cluster_resumes_from_its_cache(services: Services, photos: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "clusters.json"
    assert run(services, "cluster", str(photos), "--out", str(out_file)).exit_code == 0
    cache = out_file.with_name("clusters.json.faces.jsonl")
    lines = cache.read_text().splitlines()
    assert len(lines) == 14  # one per image, the one without a face included
    # A rerun with one new photo embeds that photo only.
    shutil.copy(DATA / "lfw" / "Rick_Perry_0001.jpg", photos / "img_43.jpg")
    assert run(services, "cluster", str(photos), "--out", str(out_file)).exit_code == 0
    added = cache.read_text().splitlines()[len(lines) :]
    assert [json.loads(line)["file"] for line in added] == ["img_43.jpg"]
    doc = json.loads(out_file.read_text())
    assert doc["clusters"][0]["size"] == 4
    assert {_truth(f["file"]) for f in doc["clusters"][0]["faces"]} == {"Rick_Perry"}


def test_cluster_labels_clusters_with_gallery_subjects(
    services: Services, photos: Path, tmp_path: Path
) -> None:
    with LikenessClient(services.registry, services.embedder) as client:
        client.create_gallery("cluster-label")
        client.enroll(
            "albert",
            [(DATA / "lfw" / "Albert_Costa_0001.jpg").read_bytes()],
            gallery="cluster-label",
        )
    out_file = tmp_path / "clusters.json"
    result = run(services, "cluster", str(photos), "--out", str(out_file), "-g", "cluster-label")
    assert result.exit_code == 0, result.output
    labels: dict[str, set[str]] = {}
    for c in json.loads(out_file.read_text())["clusters"]:
        labels.setdefault(c["subject"], set()).update(_truth(f["file"]) for f in c["faces"])
    assert labels == {"albert": {"Albert_Costa"}, "unknown": {*PEOPLE[1:], "stranger"}}


def test_cluster_against_an_unknown_gallery_stops_before_embedding(
    services: Services, photos: Path, tmp_path: Path
) -> None:
    out_file = tmp_path / "clusters.json"
    result = run(services, "cluster", str(photos), "--out", str(out_file), "-g", "nosuch")
    assert result.exit_code == 3
    assert "nosuch" in result.output
    assert not out_file.exists()
    assert not out_file.with_name("clusters.json.faces.jsonl").exists()


def test_cluster_of_a_missing_folder_is_a_usage_error(services: Services, tmp_path: Path) -> None:
    result = run(services, "cluster", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "not a folder" in result.output


@pytest.fixture(scope="module")
def twice_enrolled(services: Services) -> str:
    """A gallery of ten people, Emma Watson enrolled twice (as "emma" with
    two photos and as "watson" with the third)."""
    name = "dups"
    lfw = DATA / "lfw"
    with LikenessClient(services.registry, services.embedder) as client:
        client.create_gallery(name)
        people = sorted({p.stem[:-5] for p in lfw.glob("*.jpg")} - {"Emma_Watson"})
        for person in people:
            images = [(lfw / f"{person}_000{i}.jpg").read_bytes() for i in (1, 2, 3)]
            # Kurt_Warner_0002 has a small second face in the background.
            client.enroll(person.lower(), images, gallery=name, selection=FaceSelection.LARGEST)
        emma = [(lfw / f"Emma_Watson_000{i}.jpg").read_bytes() for i in (1, 2, 3)]
        client.enroll("emma", emma[:2], gallery=name)
        client.enroll("watson", emma[2:], gallery=name)
    return name


def test_find_duplicates_reports_the_person_enrolled_twice(
    services: Services, twice_enrolled: str
) -> None:
    with LikenessClient(services.registry) as client:
        page = client.find_duplicates(gallery=twice_enrolled)
        stats = client.stats(gallery=twice_enrolled, count_duplicates=True)
        plain = client.stats(gallery=twice_enrolled)
        emma = client.get_subject("emma", gallery=twice_enrolled)
    assert [(p.subject_a, p.subject_b) for p in page.pairs] == [("emma", "watson")]
    pair = page.pairs[0]
    assert page.total == 1 and page.next_page_token == ""
    assert pair.score >= page.min_score == stats.gallery.threshold
    assert pair.face_a in {f.face_id for f in emma.faces}
    assert stats.duplicate_pairs == 1 and plain.duplicate_pairs is None
    result = run(services, "subjects", "duplicates", "-g", twice_enrolled, "--json")
    assert result.exit_code == 0, result.output
    assert [(p["subject_a"], p["subject_b"]) for p in json.loads(result.output)] == [
        ("emma", "watson")
    ]


def test_find_duplicates_pages_through_every_pair(services: Services, twice_enrolled: str) -> None:
    with LikenessClient(services.registry) as client:
        everything = client.find_duplicates(gallery=twice_enrolled, min_score=0.8, page_size=1000)
        paged, token = [], ""
        while True:
            page = client.find_duplicates(
                gallery=twice_enrolled, min_score=0.8, page_size=3, page_token=token
            )
            assert len(page.pairs) <= 3 and page.total == everything.total
            paged.extend(page.pairs)
            token = page.next_page_token
            if not token:
                break
    assert everything.total > 3 and paged == list(everything.pairs)
    scores = [p.score for p in paged]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.8
    assert all(p.subject_a < p.subject_b for p in paged)
    assert len({(p.subject_a, p.subject_b) for p in paged}) == len(paged)


def test_find_duplicates_rejects_a_bad_page_token(services: Services, twice_enrolled: str) -> None:
    from likeness.client import InvalidArgumentError

    with LikenessClient(services.registry) as client, pytest.raises(InvalidArgumentError) as err:
        client.find_duplicates(gallery=twice_enrolled, page_token="bogus")
    assert "page_token" in err.value.details


def test_plot_draws_the_gallery_map(
    services: Services, twice_enrolled: str, tmp_path: Path
) -> None:
    from PIL import Image

    target = tmp_path / "map.png"
    result = run(services, "galleries", "plot", twice_enrolled, "--out", str(target))
    assert result.exit_code == 0, result.output
    assert "11 subjects, 30 faces, 1 duplicate pair" in result.output
    with Image.open(target) as image:
        assert image.format == "PNG" and image.size == (1000, 800)
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    colours = {tuple(p) for p in pixels[::7].tolist()}
    assert len(colours) > 50  # points in many colours, not a blank canvas
    red = (pixels[:, 0] > 200) & (pixels[:, 1] < 60) & (pixels[:, 2] < 60)
    assert red.sum() > 50  # the duplicate pair's line and rings


def test_plot_of_a_tiny_gallery_is_a_usage_error(services: Services, tmp_path: Path) -> None:
    with LikenessClient(services.registry, services.embedder) as client:
        client.create_gallery("tiny")
        client.enroll("one", [(DATA / "lfw" / "Rick_Perry_0001.jpg").read_bytes()], gallery="tiny")
    result = run(services, "galleries", "plot", "tiny", "--out", str(tmp_path / "m.png"))
    assert result.exit_code == 2
    assert "at least 3" in result.output
    assert not (tmp_path / "m.png").exists()


def test_chinese_whispers_keeps_unlinked_faces_apart() -> None:
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(6, 64))
    vectors = np.repeat(centres, 5, axis=0) + 0.2 * rng.normal(size=(30, 64))
    lonely = rng.normal(size=(3, 64))
    labels = clustering.cluster(np.vstack([vectors, lonely]), threshold=0.6, k=3)
    assert labels[:30].tolist() == np.repeat(np.arange(6), 5).tolist()
    assert sorted(labels[30:].tolist()) == [6, 7, 8]
