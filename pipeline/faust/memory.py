"""The worker's memory: the garbage collector's pace, and handing freed memory back (glibc)."""

from __future__ import annotations

import ctypes
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("leadflow")

TRIM_SECONDS = 10.0  # how often a worker returns the allocator's free memory
# A batch allocates a few hundred thousand short-lived objects (decoded events, facts, rows):
# the young generation is collected once per 20,000 net allocations, not per 700, so the
# collector runs a few times a batch (figures: README, Performance).
GC_THRESHOLDS = (20_000, 20, 10)


def pace_collector(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Collect young garbage less often (cycles are rare here; reference counts free the rest)."""
    gc.set_threshold(*thresholds)


def malloc_trimmer() -> Callable[[], bool] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none (musl, macOS).

    Fetch buffers, decoded records and store transactions of a batch are freed in full, but
    glibc keeps the freed chunks inside its arenas (one per thread that allocates), so the
    worker's resident memory stays at its highest point. With 150,000 leads in state about
    60 MB of a 250 MB worker was such free space; a trim returns its pages (about 25 MB).
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release() -> bool:
        started = time.perf_counter()
        released = bool(trim(0))
        log.debug("malloc_trim: %.1f ms", (time.perf_counter() - started) * 1000)
        return released

    return release
