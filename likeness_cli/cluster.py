"""``likeness cluster``: find the people in a folder of unlabelled photos.

Every face of every image is embedded by the Embedder, then the faces are
grouped by Chinese Whispers over the cosine graph at the threshold of the
model's strictest operating point (likeness.operating_points.strictest; a
folder compares every pair of its faces); likeness.clustering documents the
algorithm and its knobs.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from likeness import clustering, operating_points
from likeness.client import Embedding, LikenessClient, ModelInfo
from likeness.operating_points import OperatingPoint
from likeness_cli import _options as opt
from likeness_cli import _output as out
from likeness_cli._cluster_faces import FoundFace, ImageOutcome, all_faces, embed_folder, matrix
from likeness_cli._exit import ExitCode, fail

UNKNOWN = "unknown"
#: Faces per cluster sent to Identify by --gallery (the best quality first).
_LABEL_PROBES = 5


@dataclass(frozen=True)
class _Cluster:
    faces: tuple[FoundFace, ...]
    subject: str | None = None
    score: float | None = None


def _quality_key(face: FoundFace) -> float:
    return -(face.quality or {}).get("face_size_px", 0.0)


def _group(faces: Sequence[FoundFace], labels: Sequence[int]) -> list[_Cluster]:
    groups: dict[int, list[FoundFace]] = {}
    for face, label in zip(faces, labels, strict=True):
        groups.setdefault(int(label), []).append(face)
    # Largest first; ties by first file, so that the numbering is stable.
    ordered = sorted(groups.values(), key=lambda g: (-len(g), g[0].file, g[0].box))
    return [_Cluster(tuple(g)) for g in ordered]


def _label(
    client: LikenessClient, clusters: list[_Cluster], gallery: str, fp: str
) -> list[_Cluster]:
    """Each cluster with the gallery subject its faces match most often
    (ties: best score), or "unknown"."""
    labelled = []
    for c in clusters:
        votes: Counter[str] = Counter()
        best: dict[str, float] = {}
        for face in sorted(c.faces, key=_quality_key)[:_LABEL_PROBES]:
            result = client.identify(Embedding(face.vector, fp), top_k=1, gallery=gallery)
            if not result.unknown and result.candidates:
                top = result.candidates[0]
                votes[top.subject_id] += 1
                best[top.subject_id] = max(best.get(top.subject_id, -1.0), top.score)
        if votes:
            subject = max(votes, key=lambda s: (votes[s], best[s]))
            labelled.append(_Cluster(c.faces, subject, best[subject]))
        else:
            labelled.append(_Cluster(c.faces, UNKNOWN, None))
    return labelled


def _linking_point(info: ModelInfo, threshold: float | None) -> OperatingPoint:
    """The point whose threshold links two faces: ``threshold`` when given
    (custom), else the model's strictest point, else its default threshold."""
    if threshold is not None:
        return operating_points.custom(threshold)
    point = operating_points.strictest(info.operating_points)
    return point if point is not None else operating_points.custom(info.default_threshold)


def _document(
    clusters: Sequence[_Cluster],
    outcomes: Sequence[ImageOutcome],
    root: Path,
    point: OperatingPoint,
) -> dict[str, Any]:
    return {
        "folder": str(root),
        "threshold": point.threshold,
        "operating_point": point.name,
        "faces": sum(len(c.faces) for c in clusters),
        "clusters": [
            {
                "id": i,
                "size": len(c.faces),
                **({} if c.subject is None else {"subject": c.subject, "score": c.score}),
                "faces": [
                    {"file": f.file, "box": list(f.box), "quality": f.quality} for f in c.faces
                ],
            }
            for i, c in enumerate(clusters)
        ],
        "images_without_faces": [
            {"file": o.file, "reason": o.error} for o in outcomes if not o.faces
        ],
    }


def _link(clusters: Sequence[_Cluster], root: Path, into: Path) -> None:
    """A folder per cluster (``0000``, or ``0000-<subject>``) of symlinks to
    the source photos (one per photo, however many of its faces)."""
    into.mkdir(parents=True, exist_ok=True)
    for i, c in enumerate(clusters):
        name = f"{i:04d}" if c.subject is None else f"{i:04d}-{c.subject}"
        folder = into / name.replace(os.sep, "_")
        folder.mkdir(exist_ok=True)
        for file in dict.fromkeys(f.file for f in c.faces):
            link = folder / file.replace(os.sep, "__")
            if not link.is_symlink():
                link.symlink_to((root / file).resolve())


def _registry_client(address: str, connection: opt.Connection) -> LikenessClient:
    return LikenessClient(
        address,
        api_key=connection.api_key or None,
        tls=connection.root_cert if connection.root_cert is not None else connection.tls,
        timeout_s=connection.timeout_s,
    )


def cluster(
    folder: Annotated[Path, typer.Argument(help="Folder of photos (searched recursively).")],
    output: Annotated[
        Path, typer.Option("--out", "-o", help="JSON file of the clusters to write.")
    ] = Path("clusters.json"),
    link_into: Annotated[
        Path | None,
        typer.Option("--link-into", help="Write a folder per cluster of links to the photos."),
    ] = None,
    gallery: Annotated[
        str | None,
        typer.Option(
            "--gallery",
            "-g",
            help="Label each cluster with the subject of this gallery it matches, or "
            "'unknown' (Identify with embedding probes: needs the admin role on it).",
        ),
    ] = None,
    registry: opt.Registry = opt.DEFAULT_REGISTRY,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Cosine similarity linking two faces (default: the threshold of the "
            "model's strictest operating point, e.g. far-1e-4; its verification default "
            "where it has none: see docs/BENCHMARKS.md#clustering)."
        ),
    ] = None,
    neighbours: Annotated[
        int, typer.Option(min=1, max=1000, help="Neighbours kept per face.")
    ] = clustering.DEFAULT_K,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Images in flight at once.")] = 4,
    cache: Annotated[
        Path | None,
        typer.Option(help="Resumable cache of embedded faces (default: OUT + '.faces.jsonl')."),
    ] = None,
    *,
    connection: opt.Connection,
) -> None:
    """Group the faces of every photo under FOLDER by person.

    Faces are linked when their cosine similarity reaches the threshold, then
    grouped by Chinese Whispers; a face that matches nobody is a cluster of
    one. An interrupted run resumes from the cache.
    """
    if not folder.is_dir():
        fail(f"{folder}: not a folder", ExitCode.USAGE)
    cache_file = cache if cache is not None else output.with_name(output.name + ".faces.jsonl")
    if gallery is not None:
        # Fail fast, before embedding, on an unknown gallery or a rejected key.
        with _registry_client(registry, connection) as reg:
            reg.stats(gallery=gallery)
    with connection.client() as client:
        info = client.info()
        point = _linking_point(info, threshold)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=out.stderr(),
        ) as progress:
            task = progress.add_task("embedding", total=None)
            outcomes = embed_folder(
                client,
                folder,
                cache_file,
                workers=workers,
                on_total=lambda n: progress.update(task, total=n),
                on_done=lambda: progress.advance(task),
            )
    faces = list(all_faces(outcomes))
    labels = clustering.cluster(matrix(faces, info.dim), point.threshold, k=neighbours)
    clusters = _group(faces, labels.tolist())
    if gallery is not None:
        with _registry_client(registry, connection) as reg:
            clusters = _label(reg, clusters, gallery, info.model_fingerprint)
    document = _document(clusters, outcomes, folder, point)
    output.write_text(json.dumps(document, indent=2) + "\n")
    if link_into is not None:
        _link(clusters, folder, link_into)
    out.stdout().print(
        f"{out.plural(len(faces), 'face')} in {out.plural(len(outcomes), 'image')}: "
        f"{out.plural(len(clusters), 'cluster')} "
        f"({sum(1 for c in clusters if len(c.faces) == 1)} singletons); "
        f"{len(document['images_without_faces'])} images without a face; written to {output}"
    )


def register(app: typer.Typer) -> None:
    """Add ``cluster`` to ``app``."""
    app.command("cluster")(opt.connected(embedder=True)(cluster))
