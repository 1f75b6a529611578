"""``likeness subjects``: list, show and delete enrolled subjects."""

from __future__ import annotations

from typing import Annotated

import typer

from likeness.client import DEFAULT_GALLERY
from likeness_cli import _options as opt
from likeness_cli import _output as out

app = typer.Typer(help="Enrolled subjects of a gallery.", no_args_is_help=True)

SubjectId = Annotated[str, typer.Argument(help="Subject id.")]


@app.command("list")
@opt.connected()
def list_subjects(
    gallery: opt.Gallery = DEFAULT_GALLERY,
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """Every subject of the gallery with its number of faces, ordered by id."""
    with connection.client() as client:
        subjects = list(client.iter_subjects(gallery=gallery))
    if json_output:
        out.emit_json(subjects)
        return
    table = out.table(
        f"gallery {gallery!r}: {out.plural(len(subjects), 'subject')}", "subject", "faces"
    )
    for s in subjects:
        table.add_row(s.subject_id, str(s.face_count))
    out.stdout().print(table)


@app.command("show")
@opt.connected()
def show_subject(
    subject: SubjectId,
    gallery: opt.Gallery = DEFAULT_GALLERY,
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """A subject's faces (id, time of enrolment in UTC, quality) and metadata."""
    with connection.client() as client:
        found = client.get_subject(subject, gallery=gallery)
    if json_output:
        out.emit_json(found)
        return
    table = out.table(
        f"{found.subject_id} ({gallery}): {out.plural(len(found.faces), 'face')}; "
        f"metadata: {out.metadata(found.metadata)}",
        "face",
        "enrolled",
        "quality",
    )
    for face in found.faces:
        table.add_row(face.face_id, out.timestamp(face.created_at), out.quality(face.quality))
    out.stdout().print(table)


@app.command("delete")
@opt.connected()
def delete_subject(
    subject: SubjectId,
    gallery: opt.Gallery = DEFAULT_GALLERY,
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """Delete a subject and all its faces: identify never returns it again."""
    with connection.client() as client:
        deleted = client.delete_subject(subject, gallery=gallery)
    if json_output:
        out.emit_json({"subject_id": subject, "gallery": gallery, "faces_deleted": deleted})
    else:
        out.stdout().print(
            f"deleted {subject} from gallery {gallery!r}: {out.plural(deleted, 'face')}"
        )


@app.command("delete-face")
@opt.connected()
def delete_face(
    face_id: Annotated[str, typer.Argument(help="Face id (see `subjects show`).")],
    gallery: opt.Gallery = DEFAULT_GALLERY,
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """Delete one enrolled face."""
    with connection.client() as client:
        subject = client.delete_face(face_id, gallery=gallery)
    if json_output:
        out.emit_json({"face_id": face_id, "subject_id": subject, "gallery": gallery})
    else:
        out.stdout().print(f"deleted face {face_id} of {subject} from gallery {gallery!r}")


@app.command("duplicates")
@opt.connected()
def duplicates(
    gallery: opt.Gallery = DEFAULT_GALLERY,
    min_score: Annotated[
        float | None,
        typer.Option(
            min=-1.0, max=1.0, help="Cosine similarity a pair must reach (default: the gallery's)."
        ),
    ] = None,
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """Pairs of different subjects whose faces match: one person enrolled
    twice, or two people the model confuses. Best score first; admin role."""
    with connection.client() as client:
        pairs = list(client.iter_duplicates(gallery=gallery, min_score=min_score))
    if json_output:
        out.emit_json(pairs)
        return
    table = out.table(
        f"gallery {gallery!r}: {out.plural(len(pairs), 'duplicate pair')}",
        "subject",
        "subject",
        "score",
        "faces",
    )
    for p in pairs:
        table.add_row(p.subject_a, p.subject_b, out.score(p.score), f"{p.face_a} {p.face_b}")
    out.stdout().print(table)


def register(root: typer.Typer) -> None:
    """Add ``subjects`` to ``root``."""
    root.add_typer(app, name="subjects")
