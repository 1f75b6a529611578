"""``likeness galleries plot``: a 2-D map of a gallery's faces.

Every face's embedding (ExportGallery) is projected to two dimensions by
t-SNE (scikit-learn's ``TSNE``: faces that are near in embedding space stay
near on the map; distances between far groups mean little), coloured by
subject; the face pairs FindDuplicates reports are joined by a red line and
ringed. Both calls need the admin role on the gallery. scikit-learn and
matplotlib come with the ``plot`` extra (``pip install 'likeness[plot]'``).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from likeness.client import DEFAULT_GALLERY, DuplicatePair
from likeness_cli import _options as opt
from likeness_cli import _output as out
from likeness_cli._exit import ExitCode, fail

#: Legend entries drawn at most; a bigger gallery gets colours only.
_LEGEND_MAX = 30
_MIN_FACES = 3


def project(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """(faces, 2) t-SNE coordinates of unit-norm ``vectors`` (faces, dim);
    at least 3 faces. Perplexity: 30, or less for a small gallery (it must
    stay under the number of faces)."""
    from sklearn.manifold import TSNE

    n = vectors.shape[0]
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return np.asarray(tsne.fit_transform(vectors.astype(np.float64)))


def _colours(count: int) -> list[tuple[float, float, float]]:
    # Evenly spaced hues, alternating lightness, so that neighbours differ.
    return [
        colorsys.hls_to_rgb(i / max(count, 1), 0.45 if i % 2 else 0.6, 0.75) for i in range(count)
    ]


def render(
    points: np.ndarray,
    subjects: Sequence[str],
    face_ids: Sequence[str],
    duplicates: Sequence[DuplicatePair],
    title: str,
    path: Path,
) -> None:
    """Draw the map into ``path`` (PNG, 1000x800 pixels; the legend on the
    right, for up to 30 subjects)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(set(subjects))
    colour = dict(zip(names, _colours(len(names)), strict=True))
    where = {face: i for i, face in enumerate(face_ids)}
    fig, ax = plt.subplots(figsize=(10, 8), dpi=100)
    fig.subplots_adjust(left=0.03, right=0.72, bottom=0.03, top=0.94)
    try:
        for name in names:
            rows = [i for i, s in enumerate(subjects) if s == name]
            ax.scatter(points[rows, 0], points[rows, 1], s=36, color=colour[name], label=name)
        for pair in duplicates:
            a, b = where.get(pair.face_a), where.get(pair.face_b)
            if a is None or b is None:
                continue
            ax.plot(points[[a, b], 0], points[[a, b], 1], color="red", linewidth=1.5)
            ax.scatter(
                points[[a, b], 0], points[[a, b], 1], s=160, facecolors="none", edgecolors="red"
            )
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        if len(names) <= _LEGEND_MAX:
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def plot(
    name: Annotated[
        str | None,
        typer.Argument(help="Gallery name (default: --gallery).", show_default=False),
    ] = None,
    output: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path(
        "gallery.png"
    ),
    gallery: opt.Gallery = DEFAULT_GALLERY,
    seed: Annotated[int, typer.Option(help="Random seed of t-SNE.")] = 0,
    *,
    connection: opt.Connection,
) -> None:
    """A 2-D t-SNE map of the gallery's faces, coloured by subject, with the
    duplicate pairs joined in red (admin role)."""
    try:
        import matplotlib  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        fail("plotting needs the plot extra: pip install 'likeness[plot]'", ExitCode.USAGE)
    target = name or gallery
    with connection.client() as client:
        face_list = list(client.export_gallery(target))
        duplicates = list(client.iter_duplicates(gallery=target))
    if len(face_list) < _MIN_FACES:
        fail(
            f"gallery {target!r} has {len(face_list)} faces; a map needs at least {_MIN_FACES}",
            ExitCode.USAGE,
        )
    vectors = np.asarray([f.embedding.values for f in face_list], dtype=np.float32)
    subjects = [f.subject_id for f in face_list]
    points = project(vectors, seed)
    title = (
        f"gallery {target!r}: {out.plural(len(set(subjects)), 'subject')}, "
        f"{out.plural(len(face_list), 'face')}, "
        f"{out.plural(len(duplicates), 'duplicate pair')} (t-SNE)"
    )
    render(points, subjects, [f.face_id for f in face_list], duplicates, title, output)
    out.stdout().print(f"{title}: written to {output}")
