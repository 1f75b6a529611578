"""The ``likeness`` command line: serve the services, enroll, verify,
identify, compare, and manage subjects, galleries and API keys. Training
is another command, ``likeness-train`` (trainer.cli).

Each command lives in its own module with a ``register(app)`` function;
adding a command is one module and one entry in ``_COMMANDS``.
"""

from __future__ import annotations

import typer

from likeness_cli import cluster, decide, enroll, galleries, info, keys, serve, subjects
from likeness_cli._exit import EPILOG, HandledGroup

app = typer.Typer(
    name="likeness",
    cls=HandledGroup,
    help="Likeness: face verification and identification over gRPC.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_COMMANDS = (serve, enroll, decide, subjects, galleries, keys, info, cluster)

for _module in _COMMANDS:
    _module.register(app)


def main() -> None:
    """Entry point of the ``likeness`` script."""
    app(prog_name="likeness")
