"""``leadflow rebuild`` for tests on a PostgreSQL database that other tests write too."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from leadflow.agents.fold import FoldConfig
from leadflow.pipeline.rebuild import rebuild
from leadflow.sinks.rebuild import Moved, RebuildRefused

WAIT_SECONDS = 30


def rebuild_when_free(
    url: str, config: FoldConfig, now: datetime | None = None, quiet: timedelta = timedelta(0)
) -> Moved:
    """``rebuild``, retried while the writers' lock is taken: advisory locks are per
    PostgreSQL database, so another test's store in the same database can hold it."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            return rebuild(url, config, now, quiet=quiet)
        except RebuildRefused as refused:
            if "a worker is writing" not in str(refused) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
