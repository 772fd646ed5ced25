"""Keeps the bench process's own garbage collector out of its timed windows.

The bench process keeps the records of earlier runs and matplotlib's modules. A full
collection of that heap paused its event loop for 40 to 85 ms, in the middle of a
fixed-rate schedule: events due during the pause went out late, and their latency
counted the bench's pause. The peers' enqueue times showed it too: pushing a job to
Redis took 100 ms at the 99th percentile.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Leave the objects built so far out of the collector's scans until the block ends.

    Young collections still run, so garbage made inside the block is still freed.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
