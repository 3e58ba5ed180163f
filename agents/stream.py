"""The agents' batch loop: hand batches to the processor and ack them once written."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from leadflow.agents.processor import Incoming, LeadProcessor
from leadflow.schemas.errors import PermanentStoreError

log = logging.getLogger("leadflow.agents")
# A handler folds a batch at once and returns what completes when the batch is written.
Handler = Callable[[Sequence[Incoming]], Awaitable[Awaitable[None]]]


def release_acks(messages: Sequence[Any], ack: Callable[[Any], Any]) -> None:
    """Ack messages once the store, the stream and the state have them (``Consumer.ack``)."""
    for message in messages:
        try:
            ack(message)
        except (KeyError, ValueError):  # its partition was revoked meanwhile: read again
            log.debug("offset %s of a revoked partition not acked", message.offset)


def incoming(message: Any) -> Incoming:
    return Incoming(message.topic, message.partition, message.offset, message.value)


async def run_batches(
    batches: AsyncIterator[list[Any]],
    handler: Handler,
    processor: LeadProcessor,
    on_fatal: Callable[[str], None],
    ack: Callable[[Any], Any],
    on_batch: Callable[[list[Any]], None] | None = None,
) -> AsyncIterator[int]:
    """Handle batches of Kafka messages from a lane; yields the batch sizes.

    A batch is folded before the next is taken, but written to the store while the next
    ones fold; its offsets are acked only once it is written.
    """
    # Acks are released strictly in batch order: Faust commits the first run of consecutive
    # acked offsets, so a later batch acked first would commit past an unwritten one.
    previous: asyncio.Task[bool] | None = None
    async for messages in batches:
        if on_batch is not None:
            on_batch(messages)
        batch = [incoming(message) for message in messages]
        try:
            written = await handler(batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("batch of %d failed; retrying its events one by one", len(batch))
            written = _one_by_one(batch, handler, processor)
        previous = asyncio.ensure_future(
            _ack_when_written(written, messages, ack, on_fatal, previous)
        )
        yield len(batch)


async def _ack_when_written(
    written: Awaitable[None],
    messages: Sequence[Any],
    ack: Callable[[Any], Any],
    on_fatal: Callable[[str], None],
    previous: asyncio.Task[bool] | None,
) -> bool:
    """Ack ``messages`` once written and once the batch before them is acked; False if not."""
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
    release_acks(messages, ack)
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
