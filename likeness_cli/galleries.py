"""``likeness galleries``: create, update, list, inspect, delete, export and import."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from likeness.client import DEFAULT_GALLERY, Gallery
from likeness_cli import _gallery_plot, _jsonl
from likeness_cli import _options as opt
from likeness_cli import _output as out
from likeness_cli._exit import ExitCode, fail

app = typer.Typer(
    help="Galleries: named sets of subjects bound to one model.", no_args_is_help=True
)

Name = Annotated[str, typer.Argument(help="Gallery name: 1-64 characters of [a-z0-9_-].")]


def _gallery_rows(g: Gallery) -> list[tuple[str, str]]:
    def gate(value: float, unit: str) -> str:
        return "off" if value == 0 else f"{value:g}{unit}"

    return [
        ("model", g.model_fingerprint),
        ("dimension", str(g.dim)),
        ("threshold", out.score(g.threshold)),
        ("operating point", out.point(g.operating_point)),
        ("min eye distance", gate(g.min_face_size_px, " px")),
        ("min sharpness", gate(g.min_sharpness, "")),
        ("max |yaw|", gate(g.max_abs_yaw_deg, "°")),
        ("gates apply to probes", "yes" if g.gate_probes else "no"),
        ("created", out.timestamp(g.created_at)),
    ]


OperatingPointOption = Annotated[
    str,
    typer.Option(
        "--operating-point",
        help="One of the model's operating points by name (`likeness info` lists them), "
        'e.g. "far-1e-4"; default: the model\'s default, "far-1e-3".',
        show_default=False,
    ),
]


@app.command("create")
@opt.connected()
def create(
    name: Name,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=-1.0,
            max=1.0,
            help="Match threshold set by hand, cosine similarity (the operating point "
            '"custom"; not with --operating-point).',
            show_default=False,
        ),
    ] = None,
    min_face_size_px: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Enrolment gate: least eye distance, pixels (0 = off).",
            show_default=False,
        ),
    ] = None,
    min_sharpness: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="Enrolment gate: least Laplacian variance (0 = off).", show_default=False
        ),
    ] = None,
    max_abs_yaw_deg: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=180.0,
            help="Enrolment gate: most |yaw|, degrees (0 = off).",
            show_default=False,
        ),
    ] = None,
    shards: Annotated[
        int, typer.Option(min=0, help="Qdrant backend: shards (0 = server default).")
    ] = 0,
    replication: Annotated[
        int, typer.Option(min=0, help="Qdrant backend: replication factor (0 = default).")
    ] = 0,
    write_consistency: Annotated[
        int, typer.Option(min=0, help="Qdrant backend: write consistency factor (0 = default).")
    ] = 0,
    gate_probes: Annotated[
        bool,
        typer.Option(
            "--gate-probes", help="Apply the quality gates to probes too (verify, identify)."
        ),
    ] = False,
    operating_point: OperatingPointOption = "",
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """Create a gallery bound to the embedder's current model and one of its
    operating points."""
    with connection.client() as client:
        gallery = client.create_gallery(
            name,
            threshold=threshold,
            min_face_size_px=min_face_size_px,
            min_sharpness=min_sharpness,
            max_abs_yaw_deg=max_abs_yaw_deg,
            shard_number=shards,
            replication_factor=replication,
            write_consistency_factor=write_consistency,
            gate_probes=gate_probes,
            operating_point=operating_point,
        )
    if json_output:
        out.emit_json(gallery)
    else:
        out.stdout().print(
            out.key_values(f"created gallery {gallery.name!r}", _gallery_rows(gallery))
        )


@app.command("update")
@opt.connected()
def update(
    name: Name,
    operating_point: Annotated[
        str,
        typer.Option(
            "--operating-point",
            help='The model\'s operating point to move to, e.g. "far-1e-4" (`likeness info` '
            "lists them).",
        ),
    ],
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """Change a gallery's operating point (admin role): verify and identify
    decide at its threshold from the next call; the faces stay as they are."""
    with connection.client() as client:
        gallery = client.update_gallery(name, operating_point=operating_point)
    if json_output:
        out.emit_json(gallery)
    else:
        out.stdout().print(
            out.key_values(f"updated gallery {gallery.name!r}", _gallery_rows(gallery))
        )


@app.command("list")
@opt.connected()
def list_galleries(
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """Every gallery the API key may read."""
    with connection.client() as client:
        galleries = client.list_galleries()
    if json_output:
        out.emit_json(galleries)
        return
    table = out.table(
        f"{len(galleries)} {'gallery' if len(galleries) == 1 else 'galleries'}",
        "name",
        "model",
        "dim",
        "threshold",
        "operating point",
        "created",
    )
    for g in galleries:
        table.add_row(
            g.name,
            g.model_fingerprint,
            str(g.dim),
            out.score(g.threshold),
            out.point(g.operating_point),
            out.timestamp(g.created_at),
        )
    out.stdout().print(table)


@app.command("stats")
@opt.connected()
def stats(
    name: Annotated[
        str | None,
        typer.Argument(help="Gallery name (default: --gallery).", show_default=False),
    ] = None,
    gallery: opt.Gallery = DEFAULT_GALLERY,
    duplicates: Annotated[
        bool,
        typer.Option(
            "--duplicates", help="Also count duplicate subject pairs (slower; admin role)."
        ),
    ] = False,
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """A gallery's configuration and how many subjects and faces it holds."""
    with connection.client() as client:
        result = client.stats(gallery=name or gallery, count_duplicates=duplicates)
    if json_output:
        out.emit_json(result)
        return
    rows = [
        ("subjects", str(result.subjects)),
        ("faces", str(result.faces)),
        ("store", result.store_backend),
        *_gallery_rows(result.gallery),
    ]
    if result.duplicate_pairs is not None:
        rows.insert(2, ("duplicate pairs", str(result.duplicate_pairs)))
    out.stdout().print(out.key_values(f"gallery {result.gallery.name!r}", rows))


@app.command("delete")
@opt.connected()
def delete(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """Delete a gallery with every subject and face in it (asks first unless --yes)."""
    if not yes and not typer.confirm(f"Delete gallery {name!r} and every face in it?"):
        fail("not deleted", ExitCode.USAGE)
    with connection.client() as client:
        deleted = client.delete_gallery(name)
    if json_output:
        out.emit_json({"gallery": name, "faces_deleted": deleted})
    else:
        out.stdout().print(f"deleted gallery {name!r}: {out.plural(deleted, 'face')}")


@app.command("export")
@opt.connected(streaming=True)
def export(
    name: Name,
    file: Annotated[Path, typer.Argument(help="JSON-lines file to write (replaced if it exists).")],
    *,
    connection: opt.Connection,
) -> None:
    """Write every face of a gallery, embeddings included, to FILE (one JSON
    object per line) to move it to another store without re-embedding."""
    partial = file.with_name(file.name + ".partial")
    count = 0
    with connection.client() as client:
        try:
            with partial.open("w", encoding="utf-8") as sink:
                for face in client.export_gallery(name):
                    sink.write(_jsonl.dumps(face) + "\n")
                    count += 1
            partial.replace(file)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
    out.stderr().print(f"exported {out.plural(count, 'face')} of gallery {name!r} to {file}")


@app.command("import")
@opt.connected(streaming=True)
def import_(
    name: Name,
    file: Annotated[Path, typer.Argument(help="JSON-lines file written by `galleries export`.")],
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """Write the faces of FILE into gallery NAME (same model); faces already
    there are skipped. FILE is checked whole before anything is sent."""
    try:
        with file.open(encoding="utf-8") as source:
            count = sum(1 for _ in _jsonl.read(source, str(file)))
    except _jsonl.FormatError as exc:
        fail(str(exc), ExitCode.USAGE)
    with (
        connection.client() as client,
        file.open(encoding="utf-8") as source,
    ):
        result = client.import_gallery(name, _jsonl.read(source, str(file)))
    if json_output:
        out.emit_json({"gallery": name, "read": count, **out.to_jsonable(result)})
    else:
        out.stdout().print(
            f"imported into gallery {name!r}: {out.plural(result.imported, 'face')}, "
            f"{result.skipped} already there"
        )


app.command("plot")(opt.connected()(_gallery_plot.plot))


def register(root: typer.Typer) -> None:
    """Add ``galleries`` to ``root``."""
    root.add_typer(app, name="galleries")
