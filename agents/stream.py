"""The Faust agents: thin loops that hand batches to the processor and guard the acks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from agents.processor import Incoming, LeadProcessor
from pipeline.errors import PermanentStoreError

log = logging.getLogger("leadflow.agents")
Handler = Callable[[Sequence[Incoming]], Awaitable[None]]


def withhold_acks(events: Sequence[Any]) -> None:
    """Make Faust's coming ack of these events a no-op, so their offsets are never committed.

    ``take_events`` acks a batch in a ``finally`` block, even when the body failed or was
    cancelled mid-write. Marking the message acked first makes ``Message.ack`` skip the
    consumer's bookkeeping, so the commit stops before this batch and it is consumed again
    after a restart or rebalance.
    """
    for event in events:
        event.message.acked = True


def incoming(event: Any) -> Incoming:
    message = event.message
    return Incoming(message.topic, message.partition, message.offset, message.value)


async def run_batches(
    stream: Any,
    handler: Handler,
    processor: LeadProcessor,
    on_fatal: Callable[[str], None],
    batch_size: int,
    within: float,
) -> AsyncIterator[int]:
    """Consume ``stream`` in batches; yields the batch sizes (Faust agents may yield)."""
    async for events in stream.take_events(batch_size, within=within):
        batch = [incoming(event) for event in events]
        try:
            await handler(batch)
        except asyncio.CancelledError:
            withhold_acks(events)
            raise
        except PermanentStoreError as exc:
            withhold_acks(events)
            on_fatal(f"the store refused a write that retrying cannot fix: {exc}")
            return
        except Exception:
            log.exception("batch of %d failed; retrying its events one by one", len(batch))
            if not await _one_by_one(batch, handler, processor):
                withhold_acks(events)
                on_fatal("a batch could neither be processed nor dead-lettered")
                return
        yield len(batch)


async def _one_by_one(batch: list[Incoming], handler: Handler, processor: LeadProcessor) -> bool:
    for message in batch:
        try:
            await handler([message])
        except (asyncio.CancelledError, PermanentStoreError):
            raise
        except Exception as exc:
            log.exception(
                "event at %s[%d]@%d failed", message.topic, message.partition, message.offset
            )
            try:
                await processor.dead_letter_failure(message, exc)
            except PermanentStoreError:
                raise
            except Exception:
                log.exception("could not dead-letter the failing event")
                return False
    return True
