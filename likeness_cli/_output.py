"""Rendering of results: rich tables for people, JSON for scripts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from likeness.client import Quality
from likeness.operating_points import OperatingPoint


def stdout() -> Console:
    """A console on stdout (results)."""
    return Console(highlight=False)


def stderr() -> Console:
    """A console on stderr (progress, notes)."""
    return Console(stderr=True, highlight=False)


def emit_json(value: Any) -> None:
    """Print ``value`` (dataclasses and mappings, nested) as one JSON document."""
    typer.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=True))


def to_jsonable(value: Any) -> Any:
    """Plain JSON values of dataclasses, mappings and sequences."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def table(title: str, *columns: str) -> Table:
    """A table with a header row; at least as wide as its title (which may
    hold rich markup), so that the title never wraps."""
    out = Table(title=title, title_justify="left", min_width=len(Text.from_markup(title).plain))
    for column in columns:
        out.add_column(column, overflow="fold")
    return out


def key_values(title: str, rows: Sequence[tuple[str, str]]) -> Table:
    """A two-column table of labelled values."""
    out = Table(
        title=title,
        show_header=False,
        title_justify="left",
        min_width=len(Text.from_markup(title).plain),
    )
    out.add_column(style="bold")
    out.add_column(overflow="fold")
    for key, value in rows:
        out.add_row(key, value)
    return out


def plural(count: int, noun: str) -> str:
    """ "1 face", "2 faces"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def score(value: float) -> str:
    return f"{value:.3f}"


def point(value: OperatingPoint | None) -> str:
    """An operating point in words: "far-1e-3 (FAR 0.001)", "custom"; "-"
    from a server older than operating points."""
    if value is None:
        return "-"
    return value.name if value.far == 0 else f"{value.name} (FAR {value.far:g})"


def threshold(value: float, in_force: OperatingPoint | None) -> str:
    """A threshold with the operating point it comes from: "0.681 (far-1e-3)"."""
    return score(value) if in_force is None else f"{score(value)} ({in_force.name})"


def decision(match: bool) -> str:
    return "[green]MATCH[/green]" if match else "[red]NO MATCH[/red]"


def quality(value: Quality | None) -> str:
    """A short summary of a face's quality ("-" when unknown)."""
    if value is None:
        return "-"
    return (
        f"eyes {value.face_size_px:.0f} px, sharpness {value.sharpness:.0f}, "
        f"yaw {value.yaw_deg:+.0f}°, pitch {value.pitch_deg:+.0f}°, roll {value.roll_deg:+.0f}°"
    )


def timestamp(unix_s: float) -> str:
    """Unix seconds as an ISO-8601 UTC time ("-" for 0)."""
    if unix_s <= 0:
        return "-"
    return dt.datetime.fromtimestamp(unix_s, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def metadata(values: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"
