"""``python -m looksync ...``: the ``looksync`` command (same commands, options and output)."""

from looksync.cli import main

main(prog_name="looksync")
