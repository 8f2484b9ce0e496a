"""Allow ``python -m ctid``."""

from ctid.cli import main

main()
