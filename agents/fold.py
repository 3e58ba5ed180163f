"""The lifecycle fold (docs/contract.md, section 3): distinct events in, rows out, no I/O."""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from leadflow.agents.attribution import attribution_rows
from leadflow.agents.facts import (
    Fact,
    canonical,
    copy_digest,
    from_micros,
    to_decimal,
    to_micros,
)
from leadflow.agents.sla.model import PolicySet
from leadflow.schemas.records import LeadSnapshot
from leadflow.schemas.vocabulary import (
    CLOSED_FOR_REQUALIFY,
    EVENT_TYPES,
    OPEN_STAGES,
    SALES_RANK_MIN,
    STAGES,
    SUCCESS_RANK,
    SUCCESS_STAGES,
    TYPE_RANK,
)

# Event type rank -> the stage its event targets (lead.rejected's depends on its reason).
_RANK_CREATED, _RANK_TOUCH, _RANK_SCORED, _RANK_MQL = (
    TYPE_RANK[t] for t in ("lead.created", "lead.touch", "lead.scored", "lead.mql")
)
_RANK_ASSIGNED, _RANK_CONTACTED = TYPE_RANK["lead.assigned"], TYPE_RANK["lead.contacted"]
_RANK_REJECTED, _RANK_OPPORTUNITY = TYPE_RANK["lead.rejected"], TYPE_RANK["opportunity.created"]
_FIXED_TARGET = {
    _RANK_CREATED: "lead",
    _RANK_MQL: "mql",
    TYPE_RANK["lead.accepted"]: "sal",
    _RANK_OPPORTUNITY: "sql",
    TYPE_RANK["deal.won"]: "won",
    TYPE_RANK["deal.lost"]: "lost",
}
_CAMPAIGN_SLOT = {_RANK_CREATED: 0, _RANK_TOUCH: 1, _RANK_MQL: 2}
# A late event replays the fold from the last mark before it: one mark every MARK_EVERY facts.
MARK_EVERY = 128


@dataclass(frozen=True, slots=True)
class FoldConfig:
    """What the fold needs from the settings."""

    sla_seconds: float
    recycle_reasons: frozenset[str]
    # SLA policies replace the single sla_seconds clock when set (docs/contract.md, 8).
    policies: PolicySet | None = None


def sla_fingerprint(config: FoldConfig) -> str:
    """What decides the SLA rows: the policies' fingerprint, or a sha256 of the single clock."""
    if config.policies is not None:
        return config.policies.fingerprint
    canonical = json.dumps({"single_clock_sla_hours": config.sla_seconds / 3600})
    return hashlib.sha256(canonical.encode()).hexdigest()


# event_id -> the copy_digest of each copy of it the lead sent that lost to another lead's.
Lost = Mapping[str, Collection[str]]


class Header(NamedTuple):
    """What the worker's gauges and SLA clock need to know of a lead without refolding it."""

    stage: str | None
    orphan: bool
    deadline_us: int | None  # when a pending SLA turns breached, if one is pending
    statuses: str  # per cycle: m(et), B(reached, answered), b(reached, unanswered), p(ending)


@dataclass(slots=True)
class _Cycle:
    """The per-cycle part of the state."""

    number: int
    top: int = 0  # rank of the highest success stage entered in this cycle
    entries: dict[str, int] = field(default_factory=dict)
    first_contact_at: int | None = None
    rejection_reason: str | None = None
    lost_reason: str | None = None
    opportunity_id: str | None = None
    amount: str | None = None
    currency: str | None = None
    response: tuple[int, int] | None = None  # (ts, rank) of the first sales response
    owner_id: str | None = None  # the lead's owner when the cycle ended (or now)
    mql_score: int | None = None  # the lead's score once the event that entered mql applied


class _Mark(NamedTuple):
    """The fold's state before the fact at some index (the cycles before the last one and the
    transitions are append-only, so their lengths say enough of them)."""

    stage: str | None
    cycles: int
    last_cycle: _Cycle
    transitions: int
    source: str | None
    contact: Fact | None
    campaign: tuple[str | None, ...]
    owner: str | None
    score: int | None


class LeadFold:
    """The running fold of one lead: add events in any order, read its snapshot at any time.

    Events that sort after every event seen so far are applied in O(1); an event that lands
    earlier replays the fold from the last mark (taken every MARK_EVERY facts) before it,
    once per :meth:`add_many`, so adding is never slower than refolding.
    """

    __slots__ = (
        "_campaign",
        "_contact",
        "_cycles",
        "_ids",
        "_marks",
        "_owner",
        "_score",
        "_source",
        "_stage",
        "_transitions",
        "beaten",
        "config",
        "facts",
        "lead_id",
        "lost",
    )

    def __init__(
        self,
        lead_id: str,
        config: FoldConfig,
        facts: Iterable[Fact] = (),
        lost: Lost | None = None,
        beaten: Lost | None = None,
    ) -> None:
        self.lead_id = lead_id
        self.config = config
        self.facts: list[Fact] = []
        # The lead's copies that lost to another lead's (contract section 2): event_id -> the
        # copy_digest of each. Such a copy is never folded again; another copy of the same
        # event_id is folded and competes in the store as any new copy.
        self.lost: dict[str, set[str]] = {k: set(v) for k, v in (lost or {}).items()}
        # The lead's copies that lost to another copy of their event_id the lead sent (one that
        # sorts first): event_id -> the copy_digest of each. They count in the version, so that
        # the version is a function of the set of copies the lead ever saw.
        self.beaten: dict[str, set[str]] = {k: set(v) for k, v in (beaten or {}).items()}
        self._ids: dict[str, Fact] = {}  # event_id -> the copy the lead keeps
        for fact in facts:
            if self._lost_copy(fact):
                continue
            kept = self._ids.get(fact.event_id)
            if kept is None or self._wins(fact, kept):
                if kept is not None:
                    self._beat(kept)
                self._ids[fact.event_id] = fact
            elif not self._same(fact, kept):
                self._beat(fact)
        self.facts = sorted(self._ids.values())
        self._marks: list[_Mark] = []  # _marks[j]: the state before facts[(j + 1) * MARK_EVERY]
        self._replay(0)

    # -- adding events -------------------------------------------------------------------

    def _lost_copy(self, fact: Fact) -> bool:
        """Whether ``fact`` is a copy this lead sent that lost to another lead's."""
        digests = self.lost.get(fact.event_id)
        return digests is not None and copy_digest(self.lead_id, fact) in digests

    def _beat(self, fact: Fact) -> None:
        """Remember ``fact`` as a copy that lost to a copy of this lead that sorts first."""
        self.beaten.setdefault(fact.event_id, set()).add(copy_digest(self.lead_id, fact))

    def _wins(self, fact: Fact, kept: Fact) -> bool:
        """Whether ``fact`` displaces ``kept``, another copy of its event_id (contract section 2:
        the copy whose canonical JSON sorts first)."""
        return fact != kept and canonical(self.lead_id, fact) < canonical(self.lead_id, kept)

    def _same(self, fact: Fact, kept: Fact) -> bool:
        """Whether two copies of one event_id are the same event (a plain duplicate)."""
        return fact == kept or canonical(self.lead_id, fact) == canonical(self.lead_id, kept)

    def add(self, fact: Fact) -> bool:
        """Add one event; False when its ``event_id`` was seen already (nothing changes)."""
        return self.merge([fact])[0][0]

    def add_many(self, facts: Iterable[Fact]) -> list[bool]:
        """Add several events; at most one refold whatever their order (False: nothing new)."""
        return self.merge(facts)[0]

    def merge(self, facts: Iterable[Fact]) -> tuple[list[bool], list[Fact]]:
        """Add several events: per event, whether the lead now keeps it (a new event or the
        winning copy of a conflicting duplicate), and every copy that lost, stored or new.

        The copies kept are a function of the set of copies ever merged, whatever their order.
        A copy that lost to another lead's (in :attr:`lost`) is a plain duplicate: the store
        dead-lettered it when it decided.
        """
        given = list(facts)
        losers: list[Fact] = []
        fresh: dict[str, Fact] = {}
        displaced: list[Fact] = []
        for fact in given:
            if self.lost and self._lost_copy(fact):
                continue
            kept = fresh.get(fact.event_id) or self._ids.get(fact.event_id)
            if kept is None or self._wins(fact, kept):
                if kept is not None:
                    losers.append(kept)
                    if fact.event_id not in fresh:
                        displaced.append(kept)
                fresh[fact.event_id] = fact
            elif not self._same(fact, kept):
                losers.append(fact)
        for loser in losers:
            self._beat(loser)
        if fresh:
            self._insert(sorted(fresh.values()), displaced)
        seen: set[str] = set()
        added = []
        for fact in given:  # True once per event the lead now keeps from this call
            new = fresh.get(fact.event_id) is fact and fact.event_id not in seen
            seen.update([fact.event_id] if new else [])
            added.append(new)
        return added, losers

    def _insert(self, fresh: list[Fact], displaced: list[Fact]) -> None:
        """Put ``fresh`` (sorted) in, ``displaced`` (stored copies that lost) out; refold once."""
        for fact in fresh:
            self._ids[fact.event_id] = fact
        if not displaced and (not self.facts or fresh[0] > self.facts[-1]):
            start = len(self.facts)
            self.facts.extend(fresh)
            self._apply_from(start)
            return
        # Facts compare by (ts, rank, event_id) only while their event_ids differ: the copies
        # displaced go out before a fresh one (perhaps of the same event_id) is placed.
        at = len(self.facts)
        if displaced:
            gone = set(displaced)
            at = min(bisect.bisect_left(self.facts, fact) for fact in displaced)
            self.facts = [fact for fact in self.facts if fact not in gone]
        at = min(at, bisect.bisect_left(self.facts, fresh[0]))
        self.facts = sorted(self.facts + fresh)  # two sorted runs: a linear merge
        self._replay(at)

    def retract(self, losses: Iterable[tuple[str, str]]) -> bool:
        """Another lead keeps these event_ids: each (event_id, copy_digest of this lead's copy
        that lost) joins :attr:`lost`, and the fact held, if it is that copy, leaves the fold
        (one refold); False when every one was known already."""
        gone: list[Fact] = []
        grew = False
        for event_id, digest in losses:
            digests = self.lost.setdefault(event_id, set())
            if digest in digests:
                continue
            digests.add(digest)
            grew = True
            held = self._ids.get(event_id)
            if held is not None and copy_digest(self.lead_id, held) == digest:
                gone.append(self._ids.pop(event_id))
        if gone:
            at = min(bisect.bisect_left(self.facts, fact) for fact in gone)
            dropped = set(gone)
            self.facts = [fact for fact in self.facts if fact not in dropped]
            self._replay(at)
        return grew

    @property
    def lost_count(self) -> int:
        """How many of the lead's copies lost to another lead's."""
        return sum(map(len, self.lost.values()))

    @property
    def beaten_count(self) -> int:
        """How many of the lead's copies lost to another copy of the lead's. Each counts in
        the version whatever became of it since (kept again once the copy that beat it left,
        lost to another lead's), so that no change of the lead leaves the version as it was."""
        return sum(map(len, self.beaten.values()))

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    @property
    def event_count(self) -> int:
        return len(self.facts)

    # -- the rules of docs/contract.md, section 3 ----------------------------------------

    def _reset(self) -> None:
        self._stage: str | None = None
        self._cycles: list[_Cycle] = [_Cycle(1)]
        self._transitions: list[tuple[int, str, int, bool]] = []
        self._source: str | None = None
        self._contact: Fact | None = None
        self._campaign: list[str | None] = [None, None, None]  # created, touch, mql
        self._owner: str | None = None
        self._score: int | None = None

    def _mark(self) -> _Mark:
        last = self._cycles[-1]
        return _Mark(
            self._stage,
            len(self._cycles),
            replace(last, entries=dict(last.entries)),
            len(self._transitions),
            self._source,
            self._contact,
            tuple(self._campaign),
            self._owner,
            self._score,
        )

    def _restore(self, mark: _Mark) -> None:
        self._stage = mark.stage
        del self._cycles[mark.cycles :]
        self._cycles[-1] = replace(mark.last_cycle, entries=dict(mark.last_cycle.entries))
        del self._transitions[mark.transitions :]
        self._source, self._contact = mark.source, mark.contact
        self._campaign = list(mark.campaign)
        self._owner, self._score = mark.owner, mark.score

    def _replay(self, index: int) -> None:
        """Refold from ``facts[index]`` on; the facts before it must be unchanged."""
        kept = min(index // MARK_EVERY, len(self._marks))
        if kept == 0:
            self._reset()
        else:
            self._restore(self._marks[kept - 1])
        del self._marks[kept:]
        self._apply_from(kept * MARK_EVERY)

    def _apply_from(self, start: int) -> None:
        """Apply ``facts[start:]``, ``start`` being the number of facts applied so far."""
        facts, apply, end = self.facts, self._apply, len(self.facts)
        while start < end:
            if start % MARK_EVERY == 0 and start // MARK_EVERY > len(self._marks):
                self._marks.append(self._mark())
            stop = min(end, (start // MARK_EVERY + 1) * MARK_EVERY)
            for index in range(start, stop):
                apply(facts[index])
            start = stop

    def _apply(self, fact: Fact) -> None:
        rank, ts = fact.rank, fact.ts
        sales = rank >= SALES_RANK_MIN
        cycle = self._cycles[-1]
        self._apply_attributes(fact, sales)
        target = _FIXED_TARGET.get(rank)
        if target is None and rank == _RANK_REJECTED:
            target = "recycled" if fact.reason in self.config.recycle_reasons else "disqualified"
        if target is not None:
            self._apply_stage(target, fact, ts)
            cycle = self._cycles[-1]
        if sales:
            if rank != _RANK_ASSIGNED and cycle.response is None:
                cycle.response = (ts, rank)
            if rank == _RANK_CONTACTED and cycle.first_contact_at is None:
                cycle.first_contact_at = ts
            if rank == _RANK_OPPORTUNITY and self._stage in OPEN_STAGES:
                cycle.opportunity_id, cycle.amount = fact.opportunity_id, fact.amount
                cycle.currency = fact.currency
        cycle.owner_id = self._owner

    def _apply_attributes(self, fact: Fact, sales: bool) -> None:
        rank = fact.rank
        if rank == _RANK_CREATED and self._source is None:
            self._source = fact.source
            self._contact = fact
        slot = _CAMPAIGN_SLOT.get(rank)
        if slot is not None and fact.campaign_id is not None and self._campaign[slot] is None:
            self._campaign[slot] = fact.campaign_id
        if sales and fact.owner_id is not None:
            self._owner = fact.owner_id
        if rank in (_RANK_SCORED, _RANK_MQL) and fact.score is not None:
            self._score = fact.score

    def _apply_stage(self, target: str, fact: Fact, ts: int) -> None:
        stage = self._stage
        cycle = self._cycles[-1]
        if target == "mql" and stage in CLOSED_FOR_REQUALIFY:
            cycle = _Cycle(cycle.number + 1, owner_id=self._owner)
            self._cycles.append(cycle)
            self._enter(cycle, "mql", ts, inferred=False)
            return
        if target in SUCCESS_RANK:
            if stage in OPEN_STAGES and SUCCESS_RANK[target] > cycle.top:
                self._infer_up_to(cycle, SUCCESS_RANK[target] - 1, ts)
                self._enter(cycle, target, ts, inferred=False)
            return
        if target == "won":
            if stage == "won":
                return
            self._infer_up_to(cycle, SUCCESS_RANK["sql"], ts)
            self._enter(cycle, "won", ts, inferred=False)
            cycle.opportunity_id, cycle.amount = fact.opportunity_id, fact.amount
            cycle.currency = fact.currency
            return
        if stage not in OPEN_STAGES:
            return
        if target == "lost":
            self._infer_up_to(cycle, SUCCESS_RANK["sql"], ts)
            self._enter(cycle, "lost", ts, inferred=False)
            cycle.lost_reason = fact.reason
            cycle.opportunity_id = fact.opportunity_id
        else:  # recycled or disqualified: no inference
            self._enter(cycle, target, ts, inferred=False)
            cycle.rejection_reason = fact.reason

    def _infer_up_to(self, cycle: _Cycle, rank: int, ts: int) -> None:
        for stage_rank in range(cycle.top + 1, rank + 1):
            self._enter(cycle, SUCCESS_STAGES[stage_rank - 1], ts, inferred=True)

    def _enter(self, cycle: _Cycle, stage: str, ts: int, *, inferred: bool) -> None:
        cycle.entries[stage] = ts
        if stage == "mql":
            cycle.mql_score = self._score
        if stage in SUCCESS_RANK:
            cycle.top = SUCCESS_RANK[stage]
        self._stage = stage
        self._transitions.append((cycle.number, stage, ts, inferred))

    # -- reading the result --------------------------------------------------------------

    def _sla_rows(self, now_us: int) -> list[dict[str, Any]]:
        rows = []
        for cycle in self._cycles:
            mql_at = cycle.entries.get("mql")
            if mql_at is None:
                continue
            row = self._sla_row(cycle, mql_at, now_us)
            if row is not None:
                rows.append(row)
        return rows

    def _sla_row(self, cycle: _Cycle, mql_at: int, now_us: int) -> dict[str, Any] | None:
        """The cycle's handoff_sla row; None when SLA policies are set and none matches."""
        responded_at = None if cycle.response is None else cycle.response[0]
        policies = self.config.policies
        if policies is None:
            name = None
            deadline = mql_at + round(self.config.sla_seconds * 1_000_000)
            status = _wall_clock_status(responded_at, mql_at, deadline, self.config, now_us)
            business_us = None if responded_at is None else max(0, responded_at - mql_at)
        else:
            campaign = next((c for c in self._campaign if c is not None), None)
            policy = policies.match_us(mql_at, self._source, campaign, cycle.mql_score)
            if policy is None:
                return None
            name, deadline = policy.name, policy.deadline_us(mql_at)
            status = policy.status_us(mql_at, responded_at, now_us)
            business_us = None if responded_at is None else policy.business_us(mql_at, responded_at)
        return {
            "lead_id": self.lead_id,
            "cycle_no": cycle.number,
            "mql_at": from_micros(mql_at),
            "deadline": from_micros(deadline),
            "responded_at": None if responded_at is None else from_micros(responded_at),
            "response_type": None if cycle.response is None else EVENT_TYPES[cycle.response[1]],
            "response_seconds": None
            if responded_at is None
            else max(0, responded_at - mql_at) / 1_000_000,
            "status": status,
            "owner_id": cycle.owner_id,
            "policy": name,
            "response_business_seconds": None if business_us is None else business_us / 1_000_000,
        }

    def progress(self) -> tuple[frozenset[tuple[int, str]], frozenset[int]]:
        """The (cycle, stage) entries so far and the cycles that got a sales response."""
        entries = frozenset((number, stage) for number, stage, _, _ in self._transitions)
        responded = frozenset(c.number for c in self._cycles if c.response is not None)
        return entries, responded

    def snapshot(self, now: datetime) -> LeadSnapshot:
        """The lead's rows as of wall-clock ``now`` (which only decides pending vs breached)."""
        now_us = to_micros(now)
        cycle = self._cycles[-1]
        sla_rows = self._sla_rows(now_us)
        current_sla = (
            sla_rows[-1] if sla_rows and sla_rows[-1]["cycle_no"] == cycle.number else None
        )
        clock_breach = (
            current_sla is not None
            and current_sla["responded_at"] is None
            and current_sla["status"] == "breached"
        )
        first_lead = self._cycles[0].entries.get("lead")
        entries = cycle.entries
        campaign = next((c for c in self._campaign if c is not None), None)
        lifecycle: dict[str, Any] = {
            "lead_id": self.lead_id,
            "stage": self._stage,
            "cycle_no": cycle.number,
            "source": self._source,
            "campaign_id": campaign,
            "owner_id": self._owner,
            "score": self._score,
            "lead_at": None if first_lead is None else from_micros(first_lead),
        }
        for stage in STAGES[1:]:
            at = entries.get(stage)
            lifecycle[f"{stage}_at"] = None if at is None else from_micros(at)
        lifecycle.update(
            {
                "first_contact_at": None
                if cycle.first_contact_at is None
                else from_micros(cycle.first_contact_at),
                "rejection_reason": cycle.rejection_reason,
                "lost_reason": cycle.lost_reason,
                "opportunity_id": cycle.opportunity_id,
                "amount": to_decimal(cycle.amount),
                "currency": cycle.currency,
                "sla_status": None if current_sla is None else current_sla["status"],
                "response_seconds": None
                if current_sla is None
                else current_sla["response_seconds"],
                "event_count": len(self.facts),
                "is_orphan": self._source is None,
                "last_event_at": from_micros(self.facts[-1].ts) if self.facts else None,
            }
        )
        transitions = [
            {
                "lead_id": self.lead_id,
                "cycle_no": number,
                "stage": stage,
                "entered_at": from_micros(ts),
                "inferred": inferred,
            }
            for number, stage, ts, inferred in self._transitions
        ]
        version = lead_version(len(self.facts) + self.beaten_count, self.lost_count, clock_breach)
        lifecycle["version"] = version
        contact = self._contact
        contact_row = None
        if contact is not None and (contact.email or contact.company or contact.country):
            contact_row = {
                "lead_id": self.lead_id,
                "email": contact.email,
                "company": contact.company,
                "country": contact.country,
            }
        attribution = attribution_rows(self.lead_id, self.facts, self._stage == "won")
        beaten = sorted((e, d) for e, digests in self.beaten.items() for d in digests)
        return LeadSnapshot(
            self.lead_id,
            version,
            lifecycle,
            transitions,
            sla_rows,
            contact_row,
            attribution,
            beaten=beaten,
        )


def lead_version(copies: int, lost: int, breach: bool = False) -> int:
    """A snapshot's version: 2 per copy kept or lost to a copy of the lead that sorts first
    (``copies``), 4 per copy lost to another lead, 1 for a clock breach. A function of the set
    of copies seen: a new event, a new copy of an event_id and losing the copy held raise it
    by 2, every other change by at least 1 (contract section 5)."""
    return 2 * copies + 4 * lost + (1 if breach else 0)


def _wall_clock_status(
    responded_at: int | None, mql_at: int, deadline: int, config: FoldConfig, now_us: int
) -> str:
    """Version 1's single clock: met within sla_seconds of the MQL, breached after it."""
    if responded_at is not None:
        seconds = max(0, responded_at - mql_at) / 1_000_000
        return "met" if seconds <= config.sla_seconds else "breached"
    return "breached" if now_us > deadline else "pending"


def _status_letter(row: dict[str, Any]) -> str:
    letter: str = row["status"][0]
    return "B" if letter == "b" and row["responded_at"] is not None else letter


def header_of(snapshot: LeadSnapshot) -> Header:
    """The header of a snapshot (see :class:`Header`)."""
    deadline = None
    for row in snapshot.sla:
        if row["status"] == "pending":
            deadline = to_micros(row["deadline"])
    statuses = "".join(_status_letter(row) for row in snapshot.sla)
    # A lead left with no event (its only copies lost to other leads) is no orphan: no lead.
    orphan = snapshot.lifecycle["is_orphan"] and snapshot.lifecycle["event_count"] > 0
    return Header(snapshot.lifecycle["stage"], orphan, deadline, statuses)


def fold(
    lead_id: str,
    facts: Iterable[Fact],
    config: FoldConfig,
    now: datetime,
    lost: Lost | None = None,
    beaten: Lost | None = None,
) -> LeadSnapshot:
    """The pure fold: a lead's events (any order, duplicates allowed) to its rows at ``now``;
    ``lost``: the lead's copies that lost to another lead's (event_id -> copy digests);
    ``beaten``: its copies that lost to another of its copies, beyond those in ``facts``."""
    return LeadFold(lead_id, config, facts, lost, beaten).snapshot(now)
