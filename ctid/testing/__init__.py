"""Test kit for plugin authors: fixtures and conformance checks (pytest plugin ``ctid.testing.plugin``)."""
