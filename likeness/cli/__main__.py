"""``python -m likeness.cli``: the same as the ``likeness`` script."""

from likeness.cli import main

main()
