"""Garbage-collector control for the bulk paths (reading and checking 10^5 rows)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many small objects are made.

    Reading 100,000 rows makes millions of dicts, tuples and rows, none of them in a cycle;
    each full collection on the way would walk all of them again (a third of the time).

    On the way out, the young objects, mostly what was made meanwhile, are moved to the oldest
    generation (``gc.freeze`` then ``gc.unfreeze`` does that without walking them): they live
    as long as the sync, and the young-generation collection that would otherwise come first
    thing after ``gc.enable`` would walk all of them to find nothing (0.1 s for the rows and
    annotations of 100,000 rows). Skipped when the process has frozen objects of its own,
    which ``gc.unfreeze`` would thaw, or had the collector off.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()
