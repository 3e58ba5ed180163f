"""Faust's fetch loop, with records fetched before a rebalance's seek kept from the streams.

After a rebalance Faust seeks every partition back to its committed offset, but a fetch that
began before that seek can hand out its records after it. Faust's loop delivered them: a
record past the committed offset looked like a gap in the partition, whose offsets Faust
marks acknowledged (so the next commit jumped over them) and whose records, read again
after the seek, it then dropped as older than the last one read. The two-worker failover
test lost events this way. Here such records are set aside, and the partitions are sought
back to their commits once more, so they are read again in order.

The loop is ``faust.transport.consumer.Consumer._drain_messages`` of faust-streaming 0.15.3
(BSD-3-Clause) with that check added; ``install`` is called once by ``create_app``.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

_installed = False


def install() -> None:
    """Replace the consumer's fetch loop and count its seeks (once per process)."""
    global _installed
    from faust.transport.consumer import CONSUMER_FETCHING, Consumer

    if _installed:
        return
    original_seek = Consumer.perform_seek

    async def perform_seek(self: Any) -> None:
        # Odd while a seek runs: a fetch begun then may return records from either side.
        self._leadflow_seeks = getattr(self, "_leadflow_seeks", 0) + 1
        try:
            await original_seek(self)
        finally:
            self._leadflow_seeks += 1

    async def drain_messages(self: Any, fetcher: Any) -> None:
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Any, self)._stopped.is_set
        fetcher_should_stop = cast(Any, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        lanes = getattr(self.app, "lanes", None)
        by_topic = lanes.by_topic if lanes is not None else {}
        on_message_in = self._on_message_in
        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                seeks = getattr(self, "_leadflow_seeks", 0)
                ait = cast(Any, getmany(timeout=1.0))
                await self.sleep(0)
                set_aside = 0
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0
                        acks_enabled = acks_enabled_for(message.topic)
                        if acks_enabled and (
                            seeks % 2 or seeks != getattr(self, "_leadflow_seeks", 0)
                        ):
                            set_aside += 1  # fetched before (or during) a seek
                            continue
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            lane = by_topic.get(message.topic)
                            if lane is None:
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            elif not self.suspend_flow.is_set():
                                on_message_in(tp, offset, message)
                                if not lane.put(message):  # full: wait, unless a rebalance
                                    await self.wait_first(
                                        lane.wait_room(), self.suspend_flow.wait()
                                    )
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev("DROPPED MESSAGE ROFF %r", offset)
                    unset_flag(CONSUMER_FETCHING)
                if set_aside:
                    self.log.info(
                        "%d records fetched before a seek set aside; seeking to the "
                        "committed offsets to read them again",
                        set_aside,
                    )
                    try:
                        await self.perform_seek()
                    except Exception as exc:  # no assignment: the rebalance seeks anyway
                        self.log.warning("seek after setting records aside failed: %r", exc)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Consumer._drain_messages = drain_messages  # type: ignore[method-assign]
    _installed = True
