"""The leads of the partitions this worker owns: gauge counts and the SLA deadlines to watch."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable

from agents.fold import Header


class OwnedLeads:
    """Per-partition counts of leads by stage and orphans, and a heap of pending deadlines.

    Updated with each change, rebuilt from the table after a rebalance, so the gauges describe
    exactly the partitions this worker owns (no lead counted twice across workers).
    """

    def __init__(self, partition_of: Callable[[str], int]) -> None:
        self._partition_of = partition_of
        self._headers: dict[str, Header] = {}
        self._stages: dict[int, Counter[str]] = {}
        self._orphans: Counter[int] = Counter()
        self._pending: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def update(self, lead_id: str, header: Header) -> None:
        partition = self._partition_of(lead_id)
        old = self._headers.get(lead_id)
        stages = self._stages.setdefault(partition, Counter())
        if old is not None:
            stages[old.stage or "none"] -= 1
            self._orphans[partition] -= int(old.orphan)
        stages[header.stage or "none"] += 1
        self._orphans[partition] += int(header.orphan)
        self._headers[lead_id] = header
        if header.deadline_us is None:
            self._pending.pop(lead_id, None)
        elif self._pending.get(lead_id) != header.deadline_us:
            self._pending[lead_id] = header.deadline_us
            heapq.heappush(self._heap, (header.deadline_us, lead_id))

    def rebuild(self, partitions: set[int], leads: Iterable[tuple[str, Header]]) -> None:
        """Start over from the table, keeping only leads of ``partitions``."""
        self.__init__(self._partition_of)  # type: ignore[misc]
        for lead_id, header in leads:
            if self._partition_of(lead_id) in partitions:
                self.update(lead_id, header)

    def due(self, now_us: int) -> list[str]:
        """Leads whose pending SLA deadline has passed (each returned once per deadline)."""
        due = []
        while self._heap and self._heap[0][0] < now_us:
            deadline, lead_id = heapq.heappop(self._heap)
            if self._pending.get(lead_id) == deadline:
                del self._pending[lead_id]
                due.append(lead_id)
        return due

    def stage_counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for stages in self._stages.values():
            total.update(stages)
        return total

    @property
    def orphans(self) -> int:
        return sum(self._orphans.values())

    @property
    def pending(self) -> int:
        return len(self._pending)

    def __len__(self) -> int:
        return len(self._headers)
