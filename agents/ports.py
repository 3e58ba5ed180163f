"""What the agents need from the layer above them, as types: sending records to Kafka, and
reading the store's history back.

The pipeline implements these with the Faust producer and aiokafka record batches; tests
implement them with fakes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from leadflow.agents.facts import Fact

# (partition, key, value): the caller chooses the partition.
Record = tuple[int, bytes | None, bytes]
# (topic, key, value) -> an awaitable delivery; the producer picks the partition.
Send = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[Any]]]
# (topic, [(partition, key, value)]) -> one awaitable delivery per record batch.
SendMany = Callable[[str, Sequence[Record]], Awaitable[list[Any]]]


class History(Protocol):
    """The store's lead versions and events (blocking calls: run them off the event loop)."""

    def versions(self, keep: Callable[[str], bool]) -> dict[str, int]:
        """The stored version of every lead ``keep`` accepts."""
        ...

    def unrecorded(self, keep: Callable[[str], bool]) -> list[str]:
        """The stored leads ``keep`` accepts that have no stored events (an older store)."""
        ...

    def facts(self, lead_ids: Sequence[str]) -> dict[str, list[Fact]]:
        """The stored events of each lead, as facts."""
        ...

    def losses(self, keep: Callable[[str], bool]) -> dict[str, dict[str, set[str]]]:
        """The recorded losses of every lead ``keep`` accepts: each event_id another lead
        keeps, with the copy digests of the lead's copies that lost."""
        ...

    def beaten(self, lead_ids: Sequence[str]) -> dict[str, dict[str, set[str]]]:
        """The recorded copies of each lead that lost to another copy of the lead's."""
        ...
