"""``python -m relier`` runs the CLI."""

from relier.cli import main

main()
