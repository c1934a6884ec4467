"""`python -m rawback`: the same command line as the `rawback` script."""

from rawback.cli import run

run()
