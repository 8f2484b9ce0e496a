"""Test helpers for the MegaFon connector: the fake tenant server (``fake_server``)."""
