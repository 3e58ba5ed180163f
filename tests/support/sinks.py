"""A batch of golden snapshots and a write observer, for the store-writer tests."""

from __future__ import annotations

from datetime import UTC, datetime

from leadflow.agents.fold import fold
from leadflow.schemas.classify import DeadLetter, Rejection
from leadflow.schemas.errors import StoreError
from tests.support.golden import config_of, facts_of, load_scenarios

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def batch() -> tuple[list, list[DeadLetter]]:
    snapshots = [fold(s.lead_id, facts_of(s), config_of(s), s.now) for s in load_scenarios()]
    letter = DeadLetter.of(b"{", Rejection("invalid_json", "x"), "marketing-leads", 0, 7, NOW)
    return snapshots, [letter]


class Recorder:
    """A write observer that keeps what it was told."""

    def __init__(self) -> None:
        self.retries: list[str] = []
        self.commits: list[tuple[int, int]] = []
        self.failures: list[StoreError] = []

    def retrying(self, error: StoreError, delay: float) -> None:
        self.retries.append(str(error))

    def written(self, seconds: float, snapshots: int, letters: int) -> None:
        self.commits.append((snapshots, letters))

    def failed(self, error: StoreError) -> None:
        self.failures.append(error)
