"""``likeness enroll``: image files in, enrolled faces out, resumable."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from likeness.client import (
    DEFAULT_GALLERY,
    FailedPreconditionError,
    InvalidArgumentError,
    LikenessClient,
    LikenessRpcError,
    NotFoundError,
    Reason,
    ResourceExhaustedError,
)
from likeness_cli import _options as opt
from likeness_cli import _output as out
from likeness_cli._enroll_plan import Item, idempotency_key, items_of, scan_tree
from likeness_cli._exit import ExitCode, fail

# Errors that concern one request's images; any other error (unreachable
# server, rejected key, ...) would fail every request, so it stops the run.
_ITEM_ERRORS = (
    InvalidArgumentError,
    NotFoundError,
    FailedPreconditionError,
    ResourceExhaustedError,
)


class _Status(enum.Enum):
    ENROLLED = "enrolled"
    SKIPPED = "already enrolled"
    FAILED = "failed"


@dataclass(frozen=True)
class _Outcome:
    """What happened to one image file."""

    subject_id: str
    file: Path
    status: _Status
    reason: str = ""
    detail: str = ""


@dataclass
class _Report:
    outcomes: list[_Outcome] = field(default_factory=list)
    duplicates: set[tuple[str, str, float]] = field(default_factory=set)


#: The label of each refusal reason the server may give an image.
_REASON_LABELS: dict[str, str] = {
    Reason.NO_FACE: "no face",
    Reason.MULTIPLE_FACES: "several faces",
    Reason.FACE_TOO_SMALL: "face too small",
    Reason.FACE_TOO_BLURRY: "face too blurry",
    Reason.POSE_TOO_LARGE: "head turned too far",
    Reason.MODEL_MISMATCH: "model mismatch",
    Reason.IMAGE_UNREADABLE: "bad image",
    Reason.IMAGE_TOO_LARGE: "image too large",
    Reason.IMAGE_TOO_SMALL: "image too small",
}


def _reason(exc: LikenessRpcError) -> str:
    # Decided on the machine-readable reason, never on the message text (the
    # detail column carries the message); a server that sent no reason gets
    # a label from its status code.
    if exc.reason is not None:
        return _REASON_LABELS.get(exc.reason, exc.reason.lower().replace("_", " "))
    if isinstance(exc, NotFoundError):
        return "no face"
    if isinstance(exc, FailedPreconditionError):
        return "refused (several faces or low quality)"
    if isinstance(exc, ResourceExhaustedError):
        return "too large or server busy"
    return "bad image"


@dataclass(frozen=True)
class _Job:
    client: LikenessClient
    gallery: str
    metadata: Mapping[str, str]

    def run(self, item: Item) -> _Report:
        report = _Report()
        try:
            image = item.file.read_bytes()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            report.outcomes.append(
                _Outcome(item.subject_id, item.file, _Status.FAILED, "unreadable file", reason)
            )
            return report
        try:
            result = self.client.enroll(
                item.subject_id,
                [image],
                metadata=self.metadata,
                idempotency_key=idempotency_key(self.gallery, item.subject_id, image),
                gallery=self.gallery,
            )
        except _ITEM_ERRORS as exc:
            report.outcomes.append(
                _Outcome(item.subject_id, item.file, _Status.FAILED, _reason(exc), exc.details)
            )
            return report
        status = _Status.SKIPPED if result.replayed else _Status.ENROLLED
        report.outcomes.append(_Outcome(item.subject_id, item.file, status))
        report.duplicates.update(
            (item.subject_id, d.subject_id, round(d.score, 3)) for d in result.possible_duplicates
        )
        return report


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- img/s" if speed is None else f"{speed:.1f} img/s", style="cyan")


def _parse_metadata(pairs: Sequence[str]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--meta expects KEY=VALUE, got {pair!r}", ExitCode.USAGE)
        metadata[key] = value
    return metadata


def _plan(subject: str | None, images: Sequence[Path], from_dir: Path | None) -> list[Item]:
    if from_dir is not None:
        if subject is not None or images:
            fail("give either SUBJECT IMAGE... or --from-dir DIR, not both", ExitCode.USAGE)
        items = scan_tree(from_dir)
        if not items:
            fail(f"{from_dir}: no <subject>/<image> files found", ExitCode.USAGE)
        return items
    if subject is None or not images:
        fail("give SUBJECT and at least one IMAGE, or --from-dir DIR", ExitCode.USAGE)
    for path in images:
        if not path.is_file():
            fail(f"{path}: no such file", ExitCode.USAGE)
    return items_of(subject, images)


def _run(job: _Job, plan: Sequence[Item], workers: int, progress: Progress) -> _Report:
    task = progress.add_task("enrolling", total=len(plan))
    report = _Report()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="enroll")
    try:
        pending = [pool.submit(job.run, item) for item in plan]
        for future in as_completed(pending):
            part = future.result()
            report.outcomes.extend(part.outcomes)
            report.duplicates |= part.duplicates
            progress.advance(task)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return report


def _print_summary(report: _Report, gallery: str) -> None:
    counts = {s: sum(1 for o in report.outcomes if o.status is s) for s in _Status}
    subjects = len({o.subject_id for o in report.outcomes if o.status is not _Status.FAILED})
    console = out.stdout()
    console.print(
        out.key_values(
            f"enroll into gallery {gallery!r}",
            [
                ("subjects", str(subjects)),
                ("images enrolled", str(counts[_Status.ENROLLED])),
                ("already enrolled", str(counts[_Status.SKIPPED])),
                ("failed", str(counts[_Status.FAILED])),
            ],
        )
    )
    failed = sorted(
        (o for o in report.outcomes if o.status is _Status.FAILED),
        key=lambda o: (o.subject_id, str(o.file)),
    )
    if failed:
        table = out.table("failures", "subject", "file", "reason", "detail")
        for o in failed:
            table.add_row(o.subject_id, str(o.file), o.reason, o.detail)
        console.print(table)
    if report.duplicates:
        table = out.table(
            "possible duplicates (another subject matches a new face)",
            "subject",
            "matches subject",
            "score",
        )
        for subject_id, other, score in sorted(report.duplicates):
            table.add_row(subject_id, other, out.score(score))
        console.print(table)


def _json_summary(report: _Report, gallery: str) -> dict[str, object]:
    def files(status: _Status) -> list[dict[str, str]]:
        return [
            {"subject_id": o.subject_id, "file": str(o.file)}
            for o in report.outcomes
            if o.status is status
        ]

    return {
        "gallery": gallery,
        "enrolled": files(_Status.ENROLLED),
        "already_enrolled": files(_Status.SKIPPED),
        "failed": [
            {
                "subject_id": o.subject_id,
                "file": str(o.file),
                "reason": o.reason,
                "detail": o.detail,
            }
            for o in report.outcomes
            if o.status is _Status.FAILED
        ],
        "possible_duplicates": [
            {"subject_id": s, "matches": other, "score": score}
            for s, other, score in sorted(report.duplicates)
        ],
    }


@opt.connected()
def enroll(
    subject: Annotated[
        str | None,
        typer.Argument(
            help="Subject id (1-128 printable ASCII characters, no spaces).", show_default=False
        ),
    ] = None,
    images: Annotated[
        list[Path] | None,
        typer.Argument(help="Image files of SUBJECT, one face each.", show_default=False),
    ] = None,
    from_dir: Annotated[
        Path | None,
        typer.Option(
            "--from-dir",
            help="Enroll every <subject>/<image> file under this folder (LFW layout); "
            "each sub-folder's name is the subject id.",
            show_default=False,
        ),
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option(
            "--meta",
            "-m",
            help="KEY=VALUE stored with the subject (repeatable); replaces earlier metadata.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="Requests in flight at once.")
    ] = 4,
    gallery: opt.Gallery = DEFAULT_GALLERY,
    json_output: opt.Json = False,
    *,
    connection: opt.Connection,
) -> None:
    """Enroll faces: SUBJECT IMAGE..., or every subject of --from-dir DIR.

    Each image must show exactly one face. One request per image, --workers
    of them at a time. A rerun skips the images an earlier run enrolled
    (each request's idempotency key is derived from gallery, subject and
    image content), so an interrupted run can simply be started again; it
    does not change the metadata of those images.
    """
    metadata = _parse_metadata(meta or [])
    plan = _plan(subject, images or [], from_dir)
    with connection.client() as client:
        # Fail fast, before the progress bar, on an unreachable server, a
        # rejected key or an unknown gallery (which every request would
        # otherwise report as NOT_FOUND, like an image without a face). The
        # default gallery is created by the first enrolment.
        if gallery == DEFAULT_GALLERY:
            client.list_galleries()
        else:
            client.stats(gallery=gallery)
        job = _Job(client, gallery, metadata)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=out.stderr()) as progress:
            report = _run(job, plan, workers, progress)
    if json_output:
        out.emit_json(_json_summary(report, gallery))
    else:
        _print_summary(report, gallery)
    failed = any(o.status is _Status.FAILED for o in report.outcomes)
    raise typer.Exit(int(ExitCode.NO_MATCH if failed else ExitCode.OK))


_EPILOG = (
    "Exit codes: 0 = every image enrolled (or enrolled before); 1 = some images "
    "were rejected (listed with their reason: no face, several faces, face too small, face "
    "too blurry, head turned too far, bad image, image too large, unreadable file); "
    "2 = usage error; 3 = service error "
    "(the run stops; rerun to resume)."
)


def register(app: typer.Typer) -> None:
    """Add ``enroll`` to ``app``."""
    app.command(epilog=_EPILOG)(enroll)
