"""The Faust agents: thin loops that hand batches to the processor and guard the acks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from agents.processor import Incoming, LeadProcessor
from pipeline.errors import PermanentStoreError

log = logging.getLogger("leadflow.agents")
# A handler folds a batch at once and returns what completes when the batch is written.
Handler = Callable[[Sequence[Incoming]], Awaitable[Awaitable[None]]]


def withhold_acks(events: Sequence[Any]) -> None:
    """Make Faust's coming ack of these events a no-op, so their offsets are not committed.

    ``take_events`` acks a batch in a ``finally`` block as soon as the body asks for the next
    batch, even when the body failed or was cancelled. Marking the message acked first makes
    ``Message.ack`` skip the consumer's bookkeeping: the commit stops before this batch, and
    it is consumed again after a restart or rebalance, unless :func:`release_acks` follows.
    """
    for event in events:
        event.message.acked = True


def release_acks(events: Sequence[Any]) -> None:
    """Ack withheld events for real, once the store, the stream and the state have them."""
    for event in events:
        event.message.acked = False
        try:
            event.ack()
        except (KeyError, ValueError):  # its partition was revoked meanwhile: read again
            log.debug("offset %s of a revoked partition not acked", event.message.offset)


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
    """Consume ``stream`` in batches; yields the batch sizes (Faust agents may yield).

    A batch is folded before the next is taken, but written to the store while the next
    ones fold; its offsets are acked only once it is written.
    """
    # Acks are released strictly in batch order: Faust commits the first run of consecutive
    # acked offsets, so a later batch acked first would commit past an unwritten one.
    previous: asyncio.Task[bool] | None = None
    async for events in stream.take_events(batch_size, within=within):
        batch = [incoming(event) for event in events]
        withhold_acks(events)
        try:
            written = await handler(batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("batch of %d failed; retrying its events one by one", len(batch))
            written = _one_by_one(batch, handler, processor)
        previous = asyncio.ensure_future(_ack_when_written(written, events, on_fatal, previous))
        yield len(batch)


async def _ack_when_written(
    written: Awaitable[None],
    events: Sequence[Any],
    on_fatal: Callable[[str], None],
    previous: asyncio.Task[bool] | None,
) -> bool:
    """Ack ``events`` once written and once the batch before them is acked; False if not."""
    try:
        if previous is not None and not await previous:
            return False
        await written
    except asyncio.CancelledError:
        return False
    except PermanentStoreError as exc:
        on_fatal(f"the store refused a write that retrying cannot fix: {exc}")
        return False
    except Exception as exc:
        log.exception("a batch could neither be processed nor dead-lettered")
        on_fatal(f"a batch could not be written: {exc}")
        return False
    release_acks(events)
    return True


async def _one_by_one(batch: list[Incoming], handler: Handler, processor: LeadProcessor) -> None:
    for message in batch:
        try:
            written = await handler([message])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception(
                "event at %s[%d]@%d failed", message.topic, message.partition, message.offset
            )
            await processor.dead_letter_failure(message, exc)
            continue
        await written
