"""SLA policies once loaded: which one applies to an MQL, its deadline, business time and status."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from leadflow.agents.sla.calendar import Calendar, from_us, to_us

Status = Literal["met", "breached", "pending"]


@dataclass(frozen=True, slots=True)
class When:
    """A policy's condition on the lead; a test left None always holds."""

    source: frozenset[str] | None = None
    campaign_id: frozenset[str] | None = None
    min_score: int | None = None

    def holds(self, source: str | None, campaign_id: str | None, score: int | None) -> bool:
        if self.source is not None and source not in self.source:
            return False
        if self.campaign_id is not None and campaign_id not in self.campaign_id:
            return False
        return self.min_score is None or (score is not None and score >= self.min_score)


@dataclass(frozen=True, slots=True)
class Policy:
    """One policy; without a calendar its clock is the wall clock, 24 x 7."""

    name: str
    target_us: int
    when: When = When()
    calendar: Calendar | None = None
    calendar_name: str | None = None
    effective_from_us: int | None = None  # inclusive
    effective_until_us: int | None = None  # exclusive
    line: int = 0  # where the policy starts in its file

    @property
    def target_hours(self) -> float:
        return self.target_us / 3_600_000_000

    def in_effect_us(self, mql_us: int) -> bool:
        after_start = self.effective_from_us is None or self.effective_from_us <= mql_us
        return after_start and (self.effective_until_us is None or mql_us < self.effective_until_us)

    def applies_us(
        self, mql_us: int, source: str | None, campaign_id: str | None, score: int | None
    ) -> bool:
        return self.in_effect_us(mql_us) and self.when.holds(source, campaign_id, score)

    def clock_start_us(self, mql_us: int) -> int:
        """When the clock starts: mql_at, or the next opening when mql_at is closed."""
        return mql_us if self.calendar is None else self.calendar.next_opening_us(mql_us)

    def deadline_us(self, mql_us: int) -> int:
        if self.calendar is None:
            return mql_us + self.target_us
        return self.calendar.add_business_us(mql_us, self.target_us)

    def business_us(self, mql_us: int, responded_us: int) -> int:
        """Open time from mql_at to the response; wall time without a calendar; 0 if before."""
        if self.calendar is None:
            return max(0, responded_us - mql_us)
        return self.calendar.business_us(mql_us, responded_us)

    def status_us(self, mql_us: int, responded_us: int | None, now_us: int) -> Status:
        """Met when the response is at or before the deadline; breached after it, or when
        there is none and ``now`` is past the deadline; else pending."""
        deadline = self.deadline_us(mql_us)
        if responded_us is not None:
            return "met" if responded_us <= deadline else "breached"
        return "breached" if now_us > deadline else "pending"

    def deadline(self, mql_at: datetime) -> datetime:
        return from_us(self.deadline_us(to_us(mql_at)))

    def business_seconds(self, mql_at: datetime, responded_at: datetime) -> float:
        return self.business_us(to_us(mql_at), to_us(responded_at)) / 1_000_000

    def status(self, mql_at: datetime, responded_at: datetime | None, now: datetime) -> Status:
        responded = None if responded_at is None else to_us(responded_at)
        return self.status_us(to_us(mql_at), responded, to_us(now))

    def applies(
        self, mql_at: datetime, source: str | None, campaign_id: str | None, score: int | None
    ) -> bool:
        return self.applies_us(to_us(mql_at), source, campaign_id, score)


@dataclass(frozen=True, slots=True)
class PolicySet:
    """The policies of one file in order (the first that applies wins) and their calendars."""

    policies: tuple[Policy, ...]
    calendars: Mapping[str, Calendar] = field(default_factory=dict)

    def match_us(
        self, mql_us: int, source: str | None, campaign_id: str | None, score: int | None
    ) -> Policy | None:
        for policy in self.policies:
            if policy.applies_us(mql_us, source, campaign_id, score):
                return policy
        return None

    def match(
        self, mql_at: datetime, source: str | None, campaign_id: str | None, score: int | None
    ) -> Policy | None:
        return self.match_us(to_us(mql_at), source, campaign_id, score)

    @property
    def fingerprint(self) -> str:
        """sha256 of what decides results: equal for files that compute the same SLA rows."""
        canonical = json.dumps([_policy_content(p) for p in self.policies], sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _policy_content(policy: Policy) -> dict[str, Any]:
    """A policy as plain data; calendars inline (their names decide nothing), lists sorted."""
    when = policy.when
    return {
        "name": policy.name,
        "target_us": policy.target_us,
        "source": None if when.source is None else sorted(when.source),
        "campaign_id": None if when.campaign_id is None else sorted(when.campaign_id),
        "min_score": when.min_score,
        "from": policy.effective_from_us,
        "until": policy.effective_until_us,
        "calendar": None if policy.calendar is None else _calendar_content(policy.calendar),
    }


def _calendar_content(calendar: Calendar) -> dict[str, Any]:
    return {
        "timezone": calendar.timezone,
        "week": [list(map(list, day)) for day in calendar.week],
        "holidays": sorted(d.isoformat() for d in calendar.holidays),
    }
