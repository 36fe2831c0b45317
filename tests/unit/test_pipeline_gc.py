"""The run's collector policy: thresholds while a run streams, retained records frozen until it ends."""

from __future__ import annotations

import gc

from generator.pipeline import GC_THRESHOLD, retain, tuned_gc


def test_retain_freezes_until_the_outermost_block_ends_and_restores_thresholds() -> None:
    before_threshold = gc.get_threshold()
    before_frozen = gc.get_freeze_count()
    kept = [[i] for i in range(1000)]  # live, tracked records a run would keep
    with tuned_gc():
        assert gc.get_threshold() == GC_THRESHOLD
        retain()
        assert gc.get_freeze_count() >= before_frozen + len(kept)
        with tuned_gc():  # evaluate() nests inside run()
            retain()
        assert gc.get_freeze_count() >= before_frozen + len(kept)  # the inner block keeps them
    assert gc.get_freeze_count() == 0  # given back to the collector when the run ends
    assert gc.get_threshold() == before_threshold


def test_retain_outside_a_run_does_nothing() -> None:
    frozen = gc.get_freeze_count()
    retain()
    assert gc.get_freeze_count() == frozen
