"""Stands in for the browser in end-to-end tests (``BROWSER="python browser_recorder.py %s"``):
appends each URL it is asked to open to ``$RECORDER_FILE``."""

import os
import sys

with open(os.environ["RECORDER_FILE"], "a", encoding="utf-8") as out:
    out.write(sys.argv[1] + "\n")
