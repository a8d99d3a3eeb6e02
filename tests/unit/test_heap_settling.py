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
    the young ones every GC_GENERATION_0_THRESHOLD net allocations instead of CPython's 700."""
    gc.unfreeze()
    built_at_startup = [object() for _ in range(100)]
    _settle_heap()
    assert gc.get_freeze_count() >= len(built_at_startup)
    assert gc.get_threshold()[0] == GC_GENERATION_0_THRESHOLD > 700
    assert sum(gc.get_count()) < 100, "the generations start empty"


@pytest.mark.usefixtures("restored_collector")
def test_garbage_in_cycles_is_still_collected_within_the_threshold() -> None:
    """The bound on what waits for the collector: a young collection runs once the net tracked allocations
    pass the threshold, and it frees the cycles (which reference counting never frees)."""
    gc.unfreeze()
    _settle_heap()
    young_collections: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            young_collections.append(info["collected"])

    gc.callbacks.append(note)
    try:
        for _ in range(GC_GENERATION_0_THRESHOLD + 1_000):
            cycle: list[object] = []
            cycle.append(cycle)
    finally:
        gc.callbacks.remove(note)
    assert young_collections, "no collection ran past the threshold"
    assert sum(young_collections) >= GC_GENERATION_0_THRESHOLD // 2, "the cycles were not freed"
