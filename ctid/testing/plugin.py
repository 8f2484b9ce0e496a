"""pytest plugin registered through the ``pytest11`` entry point: ctid's fixtures for plugin tests."""
