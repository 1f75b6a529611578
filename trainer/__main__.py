"""``python -m trainer``: the ``likeness-train`` command."""

from trainer.cli import main

main()
