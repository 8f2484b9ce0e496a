"""``python -m ctid_launcher``: the same as the ``ctid-launcher`` command."""

from ctid_launcher.cli import main

raise SystemExit(main())
