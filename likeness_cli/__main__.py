"""``python -m likeness_cli``: the same as the ``likeness`` script."""

from likeness_cli import main

main()
