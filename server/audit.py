"""The registry's audit log: one JSON object per line, appended per RPC.

Fields: ``time`` (unix seconds), ``who`` (API key id or "anonymous"),
``rpc``, ``gallery``, ``subject`` (when the RPC names one), ``outcome`` ("OK"
or the status code name), ``request_id``, and for decisions ``decision``
("match", "no_match", "unknown") and ``score``. Never embeddings, images or
secrets.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO


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


class AuditLog:
    """Appends :class:`AuditRecord` lines to ``path`` (None: audit off),
    creating it with mode 0o600. Thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._out: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Owner-only: the log names who did what to which subject.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._out = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, record: AuditRecord) -> None:
        """Append one line (flushed at once, so a crash loses no written record)."""
        if self._out is None:
            return
        fields = {k: v for k, v in asdict(record).items() if v is not None}
        line = json.dumps({"time": round(time.time(), 3), **fields}, sort_keys=True)
        with self._lock:
            if self._out is not None:
                self._out.write(line + "\n")
                self._out.flush()

    def close(self) -> None:
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None
