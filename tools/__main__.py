"""`python -m tools` runs the CLI (the producer container starts it this way)."""

from tools.cli import main

main()
