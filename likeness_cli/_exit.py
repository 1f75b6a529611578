"""Exit codes and the one top-level error handler of the CLI.

Commands raise; this module turns what they raise into one line on stderr
and an exit code, so users never see a traceback.
"""

from __future__ import annotations

import enum
import errno
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from likeness.client import (
    DeadlineExceededError,
    LikenessRpcError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)


class ExitCode(enum.IntEnum):
    """Exit codes of every command (see the app's help epilog)."""

    OK = 0
    NO_MATCH = 1
    USAGE = 2
    SERVICE = 3


EPILOG = (
    "Exit codes: 0 = success / match; 1 = no match (verify, compare), unknown "
    "face (identify), or some images rejected (enroll); 2 = usage error (bad "
    "option, missing or unreadable file); 3 = service error (server unreachable, "
    "API key rejected, or the service refused the request: the message says why)."
)


def fail(message: str, code: ExitCode) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit with ``code``."""
    typer.echo(f"error: {_one_line(message)}", err=True)
    raise typer.Exit(int(code))


def describe_rpc_error(exc: LikenessRpcError) -> str:
    """A one-line explanation of a failed call, by exception type."""
    where = exc.target or "the server"
    if isinstance(exc, UnavailableError):
        return f"service at {where} unavailable: {exc.details}"
    if isinstance(exc, UnauthenticatedError):
        return f"API key rejected by {where}: {exc.details} (set --api-key or LIKENESS_API_KEY)"
    if isinstance(exc, PermissionDeniedError):
        return f"permission denied by {where}: {exc.details}"
    if isinstance(exc, DeadlineExceededError):
        return f"no answer from {where} in time: {exc.details}"
    if exc.reason is not None:
        return f"{exc.details} ({exc.code.name}, reason {exc.reason})"
    return f"{exc.details} ({exc.code.name})"


def describe_os_error(exc: OSError) -> str:
    """A one-line explanation of a file error: which file, and why."""
    reason = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return reason


def _one_line(text: str) -> str:
    return " ".join(text.split())


class HandledGroup(TyperGroup):
    """The root command group: maps what commands raise to exit codes.

    LikenessRpcError -> 3 (service error); OSError (missing or unreadable
    file) and invalid settings -> 2 (usage error).
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LikenessRpcError as exc:
            fail(describe_rpc_error(exc), ExitCode.SERVICE)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            fail(f"invalid settings: {problems}", ExitCode.USAGE)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise
            fail(describe_os_error(exc), ExitCode.USAGE)
