"""The registry's audit log: one JSON object per line, appended per RPC.

Fields: ``time`` (unix seconds), ``who`` (API key id or "anonymous"),
``rpc``, ``gallery``, ``subject`` (when the RPC names one), ``outcome`` ("OK"
or the status code name), ``request_id``, and for decisions ``decision``
("match", "no_match", "unknown") and ``score``. Never embeddings, images or
secrets.

Bounds (the fields are written before the request is validated, so they may
carry whatever an unauthenticated caller sent): every string field is cut to
:data:`FIELD_MAX_CHARS` characters, and a cut field is named in
``truncated``, an object of field name -> original length in characters
(e.g. ``"truncated": {"subject": 7340032}``). A line is at most
:data:`LINE_MAX_BYTES` bytes, newline included (JSON with non-ASCII escaped,
so bytes = characters); a line that would be longer has its string fields cut
to :data:`FIELD_SHORT_CHARS` characters, and failing that emptied.

Rotation: with ``max_bytes`` > 0, a line that would take the file past
``max_bytes`` first renames ``audit.jsonl`` to ``audit.jsonl.1`` (``.1`` to
``.2`` and so on, ``backups`` files kept, the oldest deleted). :meth:`AuditLog.reopen`
(SIGHUP in ``server.main.serve``) reopens the path, for logrotate.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger("likeness.registry.audit")

#: Longest string field written, in characters (longer ones are cut and
#: listed in ``truncated``); as long as the longest valid subject id.
FIELD_MAX_CHARS = 128
#: The field bound used when a line with FIELD_MAX_CHARS fields would pass
#: LINE_MAX_BYTES (possible only with escaped non-ASCII characters).
FIELD_SHORT_CHARS = 32
#: Longest line, bytes, newline included.
LINE_MAX_BYTES = 4096


@dataclass(frozen=True)
class AuditRecord:
    """One audited call (see the module docstring for the fields)."""

    who: str
    rpc: str
    gallery: str | None
    outcome: str
    request_id: str
    subject: str | None = None
    decision: str | None = None
    score: float | None = None


def _bounded(fields: dict[str, Any], limit: int) -> dict[str, Any]:
    """``fields`` with each string cut to ``limit`` characters, and
    ``truncated`` (field -> original length) when one was cut."""
    out: dict[str, Any] = {}
    cut: dict[str, int] = {}
    for name, value in fields.items():
        if isinstance(value, str) and len(value) > limit:
            cut[name] = len(value)
            value = value[:limit]
        out[name] = value
    if cut:
        out["truncated"] = cut
    return out


def encode(record: AuditRecord, now: float | None = None) -> str:
    """The record's line, newline included, at most LINE_MAX_BYTES bytes."""
    fields = {k: v for k, v in asdict(record).items() if v is not None}
    stamp = round(time.time() if now is None else now, 3)
    for limit in (FIELD_MAX_CHARS, FIELD_SHORT_CHARS, 0):
        # ensure_ascii: control characters and non-ASCII are escaped, so a
        # field can neither break the line nor forge another record.
        line = json.dumps({"time": stamp, **_bounded(fields, limit)}, sort_keys=True) + "\n"
        if len(line) <= LINE_MAX_BYTES:
            return line
    # Unreachable with the fields above (their names and numbers are short),
    # kept so the bound holds whatever fields are added later.
    return json.dumps({"time": stamp, "truncated": {"line": len(line)}}) + "\n"


class AuditLog:
    """Appends :class:`AuditRecord` lines to ``path`` (None: audit off),
    creating it with mode 0o600. Thread-safe.

    ``max_bytes``: rotate before a line would take the file past this size,
    bytes (0: never; rotate externally and call :meth:`reopen`). ``backups``:
    rotated files kept, ``path.1`` (newest) to ``path.<backups>``; at least 1.
    """

    def __init__(self, path: Path | None, max_bytes: int = 0, backups: int = 5) -> None:
        if max_bytes < 0 or backups < 1:
            raise ValueError("audit log: max_bytes must be >= 0 and backups >= 1")
        self._lock = threading.Lock()
        self._path = path
        self._max_bytes = max_bytes
        self._backups = backups
        self._out: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._out = self._open(path)

    @staticmethod
    def _open(path: Path) -> TextIO:
        # Owner-only: the log names who did what to which subject.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")

    def write(self, record: AuditRecord) -> None:
        """Append one line (flushed at once, so a crash loses no written record)."""
        if self._out is None:
            return
        line = encode(record)
        with self._lock:
            if self._out is None:
                return
            if self._max_bytes:
                # fstat, not a running count: logrotate's copytruncate may
                # have emptied the file behind our back.
                size = os.fstat(self._out.fileno()).st_size
                if size and size + len(line) > self._max_bytes:
                    self._rotate()
            self._out.write(line)
            self._out.flush()

    def _rotate(self) -> None:
        """Shift path.N-1 -> path.N ... path -> path.1 and start a new file;
        the caller holds ``_lock``. On failure the current file goes on
        growing: no record is lost."""
        assert self._path is not None
        base = str(self._path)
        try:
            Path(f"{base}.{self._backups}").unlink(missing_ok=True)
            for n in range(self._backups - 1, 0, -1):
                older = Path(f"{base}.{n}")
                if older.exists():
                    older.replace(f"{base}.{n + 1}")
            # The open descriptor follows the renamed file until the new one is open.
            self._path.replace(f"{base}.1")
        except OSError:
            log.exception("audit log rotation failed", extra={"path": base})
            return
        self._swap()

    def _swap(self) -> None:
        """Open the path anew, then close the old file (the caller holds ``_lock``)."""
        assert self._path is not None and self._out is not None
        try:
            new = self._open(self._path)
        except OSError:
            log.exception("audit log cannot be reopened", extra={"path": str(self._path)})
            return
        old, self._out = self._out, new
        old.close()

    def reopen(self) -> None:
        """Reopen the path (after logrotate moved the file away; SIGHUP in
        ``server.main.serve``); a no-op when audit is off or closed."""
        with self._lock:
            if self._out is None or self._path is None:
                return
            self._swap()
        log.info("audit log reopened", extra={"path": str(self._path)})

    def close(self) -> None:
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None
