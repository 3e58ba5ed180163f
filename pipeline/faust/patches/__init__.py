"""Replacements of faust-streaming and aiokafka internals, one module per patch.

Each module names the upstream versions it was written for and refuses to install on any
other (``pins.require``); ``install`` installs them all, once per process, but for
``monitor``, a replacement of Faust's Prometheus monitor that ``monitor.setup`` gives each app.
"""

from __future__ import annotations

from leadflow.pipeline.faust.patches import (
    drain,
    fetch_wait,
    highwaters,
    reset_policy,
    undecodable,
)


def install(*, fetch_max_wait_ms: int) -> None:
    """Install every patch; raises ``PatchVersionError`` if an upstream version differs."""
    fetch_wait.install(fetch_max_wait_ms)
    highwaters.install()
    reset_policy.install()
    drain.install()
    undecodable.install()
