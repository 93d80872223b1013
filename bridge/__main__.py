"""`python -m bridge` runs the annobridge command."""

from bridge.cli import main

main()
