"""``python -m medsight`` runs the command line."""

from medsight.cli.main import main

main()
