"""The faces of ``likeness cluster``: every face of every image under a
folder, embedded by the Embedder, with a resumable cache.

The cache is a JSON-lines file, one line per image file (its path relative
to the folder, size and modification time, and its faces or why it has
none), appended as each image is done: a rerun after an interruption embeds
only the images that are not in it, or that changed since.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from likeness.client import (
    FaceSelection,
    InvalidArgumentError,
    LikenessClient,
    NotFoundError,
    ResourceExhaustedError,
)
from likeness_cli._enroll_plan import IMAGE_SUFFIXES

_CACHE_VERSION = 1
# Errors that concern one image; any other stops the run.
_ITEM_ERRORS = (InvalidArgumentError, NotFoundError, ResourceExhaustedError)


@dataclass(frozen=True)
class FoundFace:
    """One face of one image: ``box`` (left, top, right, bottom) in image
    pixels, right/bottom exclusive; ``quality`` as likeness.v1.Quality
    (field name -> value) or None; ``vector`` unit-norm."""

    file: str
    box: tuple[int, int, int, int]
    quality: dict[str, float] | None
    vector: tuple[float, ...]


@dataclass(frozen=True)
class ImageOutcome:
    """An image's faces, or ``error`` (``no face``, ``bad image``, ...)."""

    file: str
    size: int
    mtime_ns: int
    faces: tuple[FoundFace, ...]
    error: str = ""


def scan(root: Path) -> list[Path]:
    """Image files under ``root``, recursively, sorted; hidden entries
    skipped. NotADirectoryError when ``root`` is no folder."""
    if not root.is_dir():
        raise NotADirectoryError(20, "not a folder", str(root))
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _to_line(outcome: ImageOutcome) -> str:
    return json.dumps(
        {
            "v": _CACHE_VERSION,
            "file": outcome.file,
            "size": outcome.size,
            "mtime_ns": outcome.mtime_ns,
            "error": outcome.error,
            "faces": [
                {"box": list(f.box), "quality": f.quality, "vector": list(f.vector)}
                for f in outcome.faces
            ],
        }
    )


def _from_line(data: dict[str, Any]) -> ImageOutcome:
    file = str(data["file"])
    faces = tuple(
        FoundFace(file, tuple(f["box"]), f["quality"], tuple(f["vector"])) for f in data["faces"]
    )
    return ImageOutcome(file, int(data["size"]), int(data["mtime_ns"]), faces, str(data["error"]))


def load_cache(path: Path) -> dict[str, ImageOutcome]:
    """The outcomes already in the cache, by relative file; a torn last line
    (an interrupted write) is ignored."""
    found: dict[str, ImageOutcome] = {}
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if data.get("v") == _CACHE_VERSION:
            outcome = _from_line(data)
            found[outcome.file] = outcome
    return found


def _embed_one(client: LikenessClient, root: Path, path: Path) -> ImageOutcome:
    stat = path.stat()
    file = str(path.relative_to(root))
    try:
        result = client.embed(path.read_bytes(), FaceSelection.ALL)
    except OSError:
        return ImageOutcome(file, stat.st_size, stat.st_mtime_ns, (), "unreadable file")
    except NotFoundError:
        return ImageOutcome(file, stat.st_size, stat.st_mtime_ns, (), "no face")
    except _ITEM_ERRORS as exc:
        return ImageOutcome(file, stat.st_size, stat.st_mtime_ns, (), f"bad image: {exc.details}")
    faces = tuple(
        FoundFace(
            file,
            (f.box.left, f.box.top, f.box.right, f.box.bottom),
            None if f.quality is None else vars(f.quality).copy(),
            tuple(f.embedding.values),
        )
        for f in result.faces
    )
    return ImageOutcome(file, stat.st_size, stat.st_mtime_ns, faces)


def embed_folder(
    client: LikenessClient,
    root: Path,
    cache: Path,
    *,
    workers: int,
    on_total: Callable[[int], None],
    on_done: Callable[[], None],
) -> list[ImageOutcome]:
    """Every image under ``root`` embedded (``workers`` requests in flight),
    reusing and extending ``cache``; sorted by file."""
    files = scan(root)
    known = load_cache(cache)
    outcomes: dict[str, ImageOutcome] = {}
    todo: list[Path] = []
    for path in files:
        rel = str(path.relative_to(root))
        stat = path.stat()
        hit = known.get(rel)
        if hit is not None and (hit.size, hit.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            outcomes[rel] = hit
        else:
            todo.append(path)
    on_total(len(todo))
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a") as sink, ThreadPoolExecutor(max_workers=workers) as pool:
        pending = [pool.submit(_embed_one, client, root, p) for p in todo]
        try:
            for future in as_completed(pending):
                outcome = future.result()
                sink.write(_to_line(outcome) + "\n")
                sink.flush()
                outcomes[outcome.file] = outcome
                on_done()
        finally:
            for future in pending:
                future.cancel()
    return [outcomes[k] for k in sorted(outcomes)]


def all_faces(outcomes: Sequence[ImageOutcome]) -> Iterator[FoundFace]:
    """The faces of the outcomes, in order."""
    for outcome in outcomes:
        yield from outcome.faces


def matrix(faces: Sequence[FoundFace], dim: int) -> np.ndarray:
    """The faces' vectors as a (faces, dim) float32 array."""
    if not faces:
        return np.zeros((0, dim), dtype=np.float32)
    return np.asarray([f.vector for f in faces], dtype=np.float32)
