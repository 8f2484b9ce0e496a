"""``ctid serve`` tunes the cyclic garbage collector: what exists when serving starts is frozen (full
collections no longer scan it) and the thresholds are raised (bench/README.md, "Garbage collector")."""

from __future__ import annotations

import gc

import pytest

from ctid.cli.serve_cmd import GC_THRESHOLDS, freeze_startup_objects


@pytest.fixture
def restored_collector():
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_objects_alive_at_startup_leave_the_collected_generations(restored_collector):
    long_lived = {"config": [1, 2, 3]}  # a container: tracked by the collector
    assert gc.is_tracked(long_lived)
    assert any(obj is long_lived for obj in gc.get_objects())

    freeze_startup_objects()

    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 0
    assert not any(obj is long_lived for obj in gc.get_objects())  # permanent: never scanned again
    later = {"call": [4, 5, 6]}
    assert any(obj is later for obj in gc.get_objects(generation=0))

