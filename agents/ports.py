"""What the agents need from the layer above them, as types: sending records to Kafka.

The pipeline implements these with the Faust producer and aiokafka record batches; tests
implement them with fakes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

# (partition, key, value): the caller chooses the partition.
Record = tuple[int, bytes | None, bytes]
# (topic, key, value) -> an awaitable delivery; the producer picks the partition.
Send = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[Any]]]
# (topic, [(partition, key, value)]) -> one awaitable delivery per record batch.
SendMany = Callable[[str, Sequence[Record]], Awaitable[list[Any]]]
