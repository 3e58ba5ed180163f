"""Table recovery reads each changelog partition to its true end, within a time bound.

Written for faust-streaming 0.15.3. Faust recovers a table by reading its changelog up to
the end offsets the broker lists (``AIOKafkaConsumerThread._highwaters``). Apache Kafka
lists the offset after the last record; Tansu (the embedded broker) lists the base offset
of the last record batch plus one, which falls short of the other records of that batch.
The patched method passes the listed ends to the app's ``end_probe``
(``leadflow.pipeline.kafka.topics.true_end_offsets``), which reads each partition's last
batch: it confirms Kafka's listed ends unchanged and returns Tansu's true ends. The probe
runs in a thread pool of its own and is awaited at most ``end_probe_seconds`` (an app
attribute, ``PROBE_SECONDS`` by default); past that the listed ends stand, with a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from leadflow.pipeline.faust.patches.pins import require

WRITTEN_FOR = {"faust-streaming": "0.15.3"}
PROBE_SECONDS = 15.0

# The true end offsets of some partitions, given the ends the broker listed.
EndProbe = Callable[[dict[Any, int]], dict[Any, int]]

log = logging.getLogger(__name__)
_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="leadflow-end-probe")
_installed = False


def install() -> None:
    """Make ``_highwaters`` return the probed ends (once per process)."""
    global _installed
    require("highwaters", WRITTEN_FOR)
    from faust.transport.drivers import aiokafka as driver

    if _installed:
        return
    original = driver.AIOKafkaConsumerThread._highwaters

    async def highwaters(self: Any, partitions: Any) -> Any:
        listed = await original(self, partitions)
        probe: EndProbe | None = getattr(self.app, "end_probe", None)
        if probe is None or not any(listed.values()):
            return listed  # nothing to confirm: Faust's own answer, as it is
        seconds = getattr(self.app, "end_probe_seconds", PROBE_SECONDS)
        return await probe_within(probe, dict(listed), seconds)

    driver.AIOKafkaConsumerThread._highwaters = highwaters  # type: ignore[method-assign]
    _installed = True


async def probe_within(probe: EndProbe, ends: dict[Any, int], seconds: float) -> dict[Any, int]:
    """The probed ends, or the listed ``ends`` if the probe takes more than ``seconds``."""
    future = asyncio.get_running_loop().run_in_executor(_executor, probe, ends)
    try:
        return await asyncio.wait_for(future, seconds)
    except TimeoutError:
        log.warning("end probe gave no answer in %gs; recovering to the listed ends", seconds)
        return ends
