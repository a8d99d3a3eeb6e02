"""The consuming processes' garbage collector settings (`service.cli._settle_heap`)."""

import gc
from collections.abc import Iterator

import pytest

from service.cli import GC_GENERATION_0_THRESHOLD, _settle_heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """Leave the test process's collector as it was."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_settling_freezes_what_was_built_and_collects_the_young_less_often() -> None:
    """Everything alive at startup leaves the collector's generations; later allocations are still collected,
    the young ones every GC_GENERATION_0_THRESHOLD allocations instead of CPython's 700."""
    gc.unfreeze()
    built_at_startup = [object() for _ in range(100)]
    _settle_heap()
    assert gc.get_freeze_count() >= len(built_at_startup)
    assert gc.get_threshold()[0] == GC_GENERATION_0_THRESHOLD > 700
    assert sum(gc.get_count()) < 100, "the generations start empty"
