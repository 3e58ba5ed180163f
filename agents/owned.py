"""The leads of the partitions this worker owns: gauge counts and the SLA deadlines to watch."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable

from leadflow.agents.fold import Header


class OwnedLeads:
    """Per-partition counts of leads by stage and orphans, and a heap of pending deadlines.

    Kept up to date from each change (old header, new header) without holding a copy per
    lead, and rebuilt from the table after a rebalance, so the gauges describe exactly the
    partitions this worker owns (no lead counted twice across workers).
    """

    def __init__(self, partition_of: Callable[[str], int]) -> None:
        self._partition_of = partition_of
        self._stages: dict[int, Counter[str]] = {}
        self._orphans: Counter[int] = Counter()
        self._pending: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def update(
        self, lead_id: str, old: Header | None, new: Header, partition: int | None = None
    ) -> None:
        """Count a lead's change; ``partition`` is the lead's, when the caller knows it."""
        if partition is None:
            partition = self._partition_of(lead_id)
        stages = self._stages.setdefault(partition, Counter())
        if old is not None:
            stages[old.stage or "none"] -= 1
            self._orphans[partition] -= int(old.orphan)
        stages[new.stage or "none"] += 1
        self._orphans[partition] += int(new.orphan)
        if new.deadline_us is None:
            self._pending.pop(lead_id, None)
        elif self._pending.get(lead_id) != new.deadline_us:
            self._pending[lead_id] = new.deadline_us
            heapq.heappush(self._heap, (new.deadline_us, lead_id))

    def rebuild(self, partitions: set[int], leads: Iterable[tuple[str, Header]]) -> None:
        """Start over from the table, keeping only leads of ``partitions``."""
        self._stages, self._orphans, self._pending, self._heap = {}, Counter(), {}, []
        for lead_id, header in leads:
            if self._partition_of(lead_id) in partitions:
                self.update(lead_id, None, header)

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
