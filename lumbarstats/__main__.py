"""``python -m lumbarstats …`` — the same commands as the ``lumbarstats`` script."""

from lumbarstats.cli import main

main()
