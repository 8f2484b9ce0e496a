"""Test kit for plugin authors (and ctid's own tests).

- :mod:`ctid.testing.plugin`: the pytest plugin (``pytest11`` entry point) with the ``ctid_*`` fixtures.
- :mod:`ctid.testing.conformance`: ``ConnectorConformance`` and ``CRMConformance``, the suites every
  connector and CRM plugin runs against itself.
- :mod:`ctid.testing.fakes`: scaffolding for fake upstream servers (fault script, request log, serving).
- :mod:`ctid.testing.kit`: base configuration, webhook poster, hub opener, wall clock on Trio's clock,
  ``closing_all`` for factory fixtures.
- :mod:`ctid.testing.memory`: in-memory plugin storage and event sink for a connector's unit tests.
- :mod:`ctid.testing.daemon`: ``running_daemon`` and ``ServeProcess``; :mod:`ctid.testing.services`:
  PostgreSQL / Redis fixtures for ctid's own tests.
"""
