"""`python -m tools.chaos ...` runs the chaos CLI alone (the same app as `tools chaos ...`)."""

from tools.chaos.cli import main

main()
