"""Record batches the consumer cannot decode become one dead-letter record each, not a crash.

aiokafka decodes a fetched partition's batches lazily, in ``PartitionRecords``, while
Faust's fetch loop iterates ``getmany``: a batch with an unknown codec, a bad CRC or a
corrupt compressed body raises there, out of the fetch loop, and stops the worker. Here a
batch whose CRC or body fails (its body is decompressed whole before its first record)
yields a single record at its first offset whose value is an ``Undecodable``, which
``classify`` turns into a dead letter; a record that fails later in a batch yields one at
the batch's last offset instead. Skipped offsets are never delivered, so Faust's gap
handling acknowledges them, and the fetch position moves past the batch.

Written for aiokafka 0.14.0: ``install`` wraps ``aiokafka.consumer.fetcher.PartitionRecords``
(once per process) and refuses another version.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from leadflow.pipeline.faust.patches.pins import require
from leadflow.schemas.classify import Undecodable

WRITTEN_FOR = {"aiokafka": "0.14.0"}

_installed = False


@dataclass(frozen=True, slots=True)
class UndecodableRecord:
    """Stands for a whole batch: aiokafka's ``ConsumerRecord`` reads these attributes."""

    offset: int
    timestamp: int
    value: Undecodable
    timestamp_type: int = 0
    key: None = None
    checksum: None = None
    headers: tuple[tuple[str, bytes], ...] = field(default=())


class GuardedBatch:
    """One fetched record batch whose records are all decoded before the first is given."""

    def __init__(self, batch: Any) -> None:
        self._batch = batch
        self._crc_ok = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def validate_crc(self) -> bool:
        # A bad CRC is this batch's problem alone: it is reported as the batch's record.
        self._crc_ok = bool(self._batch.validate_crc())
        return True

    def __next__(self) -> Any:  # control batches are read with next() by aiokafka
        return next(self._batch)

    def __iter__(self) -> Iterator[Any]:
        if not self._crc_ok:
            yield self._stand_in("its CRC does not match its content")
            return
        try:
            step = iter(self._batch).__next__  # decompresses the whole body
            first = step()
        except StopIteration:
            return
        except Exception as exc:  # any failure to decode belongs to this batch alone
            yield self._stand_in(_describe(exc))
            return
        yield first
        try:
            yield from iter(step, None)  # C-level iteration: no Python frame per record
        except Exception as exc:
            yield self._stand_in(_describe(exc), rest_only=True)

    def _stand_in(self, why: str, rest_only: bool = False) -> UndecodableRecord:
        last = self._batch.next_offset - 1
        first = getattr(self._batch, "base_offset", last)
        timestamp = getattr(self._batch, "first_timestamp", -1)
        if rest_only:
            # At the batch's last offset: past every record already handed out.
            error = (
                f"a record of the batch at offsets {first}..{last} could not be decoded "
                f"({why}); the batch's records from there on are skipped"
            )
            return UndecodableRecord(last, timestamp, Undecodable(error))
        error = (
            f"the record batch at offsets {first}..{last} could not be decoded ({why}); "
            f"its {last - first + 1} record(s) are skipped"
        )
        return UndecodableRecord(first, timestamp, Undecodable(error))


def _describe(exc: Exception) -> str:
    text, name = str(exc), type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"


class GuardedRecords:
    """A fetched partition's batches, each handed out as a ``GuardedBatch``."""

    def __init__(self, records: Any) -> None:
        self._records = records

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> GuardedBatch | None:
        batch = self._records.next_batch()
        return None if batch is None else GuardedBatch(batch)


def install() -> None:
    """Make aiokafka's fetcher decode through ``GuardedRecords`` (once per process)."""
    global _installed
    require("undecodable batch", WRITTEN_FOR)
    from aiokafka.consumer.fetcher import PartitionRecords

    if _installed:
        return
    original_init = PartitionRecords.__init__

    def init(self: Any, tp: Any, records: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, tp, GuardedRecords(records), *args, **kwargs)

    PartitionRecords.__init__ = init
    _installed = True
