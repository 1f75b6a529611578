"""The decision commands: verify (1:1), identify (1:N) and compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from likeness.client import FaceSelection
from likeness_cli import _options as opt
from likeness_cli import _output as out
from likeness_cli._exit import ExitCode

_EXIT_HELP = (
    "Exit codes: 0 = {yes}; 1 = {no}; 2 = usage error (e.g. missing image file); "
    "3 = service error (unreachable, key rejected, no face in the image, unknown subject)."
)

Image = Annotated[Path, typer.Argument(help="Image file (JPEG, PNG, WebP or BMP).")]


def _decided(match: bool) -> None:
    raise typer.Exit(int(ExitCode.OK if match else ExitCode.NO_MATCH))


@opt.connected()
def verify(
    subject: Annotated[str, typer.Argument(help="The claimed subject id.")],
    image: Image,
    gallery: opt.Gallery = opt.DEFAULT_GALLERY,
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """1:1: is the face in IMAGE the enrolled SUBJECT?

    Match when the best cosine similarity to the subject's faces reaches the
    gallery's threshold.
    """
    probe = image.read_bytes()
    with connection.client() as client:
        result = client.verify(subject, probe, gallery=gallery)
    if json_output:
        out.emit_json({"subject_id": subject, "gallery": gallery, **out.to_jsonable(result)})
    else:
        rows = [
            ("subject", subject),
            ("decision", out.decision(result.match)),
            ("score", out.score(result.score)),
            ("threshold", out.threshold(result.threshold, result.operating_point)),
            ("best face", result.face_id),
            ("probe face", out.quality(result.probe_quality)),
        ]
        out.stdout().print(out.key_values(f"verify {image.name}", rows))
    _decided(result.match)


@opt.connected()
def identify(
    image: Image,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, max=100, help="Most subjects to list.")
    ] = 5,
    min_score: Annotated[
        float | None,
        typer.Option(
            "--min-score",
            min=-1.0,
            max=1.0,
            help="List candidates scoring at least this (default: the gallery's threshold).",
            show_default=False,
        ),
    ] = None,
    gallery: opt.Gallery = opt.DEFAULT_GALLERY,
    every_face: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Identify every face of the photo (a row per face, largest first); "
            "exit 0 when at least one face is identified.",
        ),
    ] = False,
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """1:N: who, among the enrolled subjects, is the face in IMAGE?

    Open set: the face is "unknown" when no subject reaches the gallery's
    threshold.
    """
    probe = image.read_bytes()
    selection = FaceSelection.ALL if every_face else FaceSelection.DEFAULT
    with connection.client() as client:
        result = client.identify(
            probe, top_k=top_k, min_score=min_score, gallery=gallery, selection=selection
        )
    if json_output:
        out.emit_json({"gallery": gallery, **out.to_jsonable(result)})
    elif every_face:
        threshold = out.threshold(result.threshold, result.operating_point)
        known = sum(not f.unknown for f in result.faces)
        table = out.table(
            f"identify {image.name}: {len(result.faces)} faces, {known} identified "
            f"(threshold {threshold})",
            "#",
            "box (left, top, right, bottom)",
            "subject",
            "score",
        )
        for rank, face in enumerate(result.faces, start=1):
            box = f"{face.box.left}, {face.box.top}, {face.box.right}, {face.box.bottom}"
            if face.unknown or not face.candidates:
                table.add_row(str(rank), box, "[red]unknown[/red]", "")
            else:
                best = face.candidates[0]
                table.add_row(str(rank), box, best.subject_id, out.score(best.score))
        out.stdout().print(table)
        _decided(known > 0)
        return
    else:
        threshold = out.threshold(result.threshold, result.operating_point)
        verdict = (
            f"[red]unknown[/red]: no subject reaches the threshold {threshold}"
            if result.unknown
            else f"[green]identified[/green] as {result.candidates[0].subject_id} "
            f"(threshold {threshold})"
        )
        table = out.table(f"identify {image.name}: {verdict}", "#", "subject", "score", "face")
        for rank, candidate in enumerate(result.candidates, start=1):
            table.add_row(
                str(rank), candidate.subject_id, out.score(candidate.score), candidate.face_id
            )
        out.stdout().print(table)
    _decided(not result.unknown)


@opt.connected()
def compare(
    image_a: Annotated[Path, typer.Argument(help="First image file.")],
    image_b: Annotated[Path, typer.Argument(help="Second image file.")],
    gallery: Annotated[
        str,
        typer.Option(
            "--gallery",
            "-g",
            envvar="LIKENESS_GALLERY",
            help="Use this gallery's threshold (default: the model's calibrated one).",
        ),
    ] = "",
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """Are the faces in IMAGE_A and IMAGE_B the same person? Stores nothing."""
    a = image_a.read_bytes()
    b = image_b.read_bytes()
    with connection.client() as client:
        result = client.compare(a, b, gallery=gallery)
    if json_output:
        out.emit_json(result)
    else:
        rows = [
            ("decision", out.decision(result.match)),
            ("score", out.score(result.score)),
            ("threshold", out.threshold(result.threshold, result.operating_point)),
            (image_a.name, out.quality(result.quality_a)),
            (image_b.name, out.quality(result.quality_b)),
        ]
        out.stdout().print(out.key_values(f"compare {image_a.name} {image_b.name}", rows))
    _decided(result.match)


def register(app: typer.Typer) -> None:
    """Add verify, identify and compare to ``app``."""
    app.command(epilog=_EXIT_HELP.format(yes="match", no="no match"))(verify)
    app.command(epilog=_EXIT_HELP.format(yes="identified", no="unknown"))(identify)
    app.command(epilog=_EXIT_HELP.format(yes="same person", no="different people"))(compare)
