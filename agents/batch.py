"""Folding one batch of facts into the leads they touch: the broker-free core of the agents."""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from leadflow.agents.codec import (
    STATE_LIMIT,
    decode_copies,
    encode_row,
    encode_state,
    event_row,
)
from leadflow.agents.facts import Fact, canonical
from leadflow.agents.fold import (
    FoldConfig,
    Header,
    LeadFold,
    Lost,
    header_of,
    lead_version,
)
from leadflow.schemas.records import LeadSnapshot, Loss
from leadflow.sinks.conflicts import CANONICAL

DEFAULT_MAX_EVENTS = 10_000


@dataclass(frozen=True, slots=True)
class Limits:
    """How much one lead may hold; events past either limit are refused (dead-lettered).

    ``max_events``: distinct accepted events (LEADFLOW_MAX_EVENTS_PER_LEAD), which bounds the
    time and memory one lead's batch takes. ``max_state_bytes``: its encoded table value, which
    must fit one changelog record whatever the length of its ids and names.
    """

    max_events: int = DEFAULT_MAX_EVENTS
    max_state_bytes: int = STATE_LIMIT


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class LeadUpdate:
    """A lead that changed: its new table value, its new rows, and what changed (for metrics)."""

    lead_id: str
    state: bytes
    snapshot: LeadSnapshot
    old: Header | None
    new: Header
    entries: frozenset[tuple[int, str]]  # (cycle, stage) entered by this change
    dropped: frozenset[tuple[int, str]]  # (cycle, stage) a late event restated away
    responded: frozenset[int]  # cycles whose first sales response came with this change


@dataclass(slots=True)
class BatchResult:
    """The changed leads, how many events of each type were new or duplicates, the events
    refused by the :class:`Limits` (their index in the batch, and why), and the losing copies
    of conflicting duplicates (the index of the event that met them, and the copy)."""

    updates: list[LeadUpdate] = field(default_factory=list)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    refused: list[tuple[int, str]] = field(default_factory=list)
    conflicts: list[tuple[int, Fact]] = field(default_factory=list)


@dataclass(slots=True)
class _Entry:
    """A lead's decoded fold, valid for exactly the table value ``state`` (same object)."""

    state: bytes
    header: Header
    fold: LeadFold
    rows: dict[str, bytes]  # event_id -> encode_row(fact)


class FoldCache:
    """The decoded folds of the leads with the most events, so that a batch adding a few events
    to a big lead neither decodes its table value nor refolds it, nor re-encodes each fact.

    An entry is used only when the table value read is the very ``bytes`` object it was made
    with; any other value (a recovered changelog record, a rebalance) is decoded afresh. Entries
    are taken out while a batch folds, so a failure midway never leaves a half-updated one.
    """

    def __init__(self, max_facts: int = 100_000, min_events: int = 256) -> None:
        self.max_facts = max_facts  # about 10 leads at the default cap: 20 to 80 MiB
        self.min_events = min_events
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._facts = 0

    def take(self, lead_id: str, state: bytes | None) -> _Entry | None:
        entry = self._entries.pop(lead_id, None)
        if entry is None:
            return None
        self._facts -= entry.fold.event_count
        return entry if entry.state is state else None

    def put(self, lead_id: str, entry: _Entry) -> None:
        """Keep ``entry`` (the least recently used go first); small leads are not worth it."""
        self.take(lead_id, None)
        if not self.min_events <= entry.fold.event_count <= self.max_facts:
            return
        self._entries[lead_id] = entry
        self._facts += entry.fold.event_count
        while self._facts > self.max_facts:
            _, gone = self._entries.popitem(last=False)
            self._facts -= gone.fold.event_count

    def __len__(self) -> int:
        return len(self._entries)


def fold_batch(
    facts: Sequence[tuple[str, Fact]],
    load: Callable[[str], bytes | None],
    config: FoldConfig,
    now: datetime,
    *,
    limits: Limits = DEFAULT_LIMITS,
    cache: FoldCache | None = None,
    retractions: Sequence[Loss] = (),
) -> BatchResult:
    """Add each (lead_id, fact) to its lead's stored state, and each retraction (lead_id,
    event_id, copy digest: another lead keeps it); one update per changed lead. A lead's
    retractions apply before its facts: the state is a function of both sets, whatever their
    order.

    A new event that would take its lead past ``limits`` is refused, in the batch's order: the
    events a lead keeps are then the first ones to arrive, and only those of that lead.
    """
    by_lead: dict[str, list[tuple[int, Fact]]] = {}
    for index, (lead_id, fact) in enumerate(facts):
        by_lead.setdefault(lead_id, []).append((index, fact))
    lost_by_lead: dict[str, list[tuple[str, str]]] = {}
    for lead_id, event_id, copy in retractions:
        lost_by_lead.setdefault(lead_id, []).append((event_id, copy))
        by_lead.setdefault(lead_id, [])
    result = BatchResult()
    for lead_id, items in by_lead.items():
        raw = load(lead_id)
        entry = cache.take(lead_id, raw) if cache is not None else None
        if entry is None:
            old, stored, lost, beaten = decode_copies(raw)
            running = LeadFold(lead_id, config, stored, lost, beaten)
            rows: dict[str, bytes] = {}
        else:
            old, running, rows = entry.header, entry.fold, entry.rows
        before = running.progress()
        retracted = running.retract(lost_by_lead.get(lead_id, ()))
        admitted = _admit(running, items, limits.max_events, result)
        known = running.beaten_count
        flags, losers = running.merge([fact for _, fact in admitted])
        retracted |= running.beaten_count != known  # a new losing copy: a new version
        result.conflicts.extend(_conflicts(admitted, losers))
        fresh = [item for item, new in zip(admitted, flags, strict=True) if new]
        repeated = [item for item, new in zip(admitted, flags, strict=True) if not new]
        update = None
        if fresh or retracted:
            update = _update(running, old, before, now, rows)
            if fresh and len(update.state) > limits.max_state_bytes:
                kept = _shrink(running, fresh, old, before, now, rows, limits.max_state_bytes)
                running, update = kept if kept is not None else (_without(running, fresh), None)
                refused = sorted(
                    item for item in fresh + repeated if item[1].event_id not in running
                )
                fresh = [item for item in fresh if item[1].event_id in running]
                repeated = [item for item in repeated if item[1].event_id in running]
                error = (
                    f"lead {lead_id!r} would pass {limits.max_state_bytes} bytes of state with "
                    "this new event, the most one changelog record holds: it is refused"
                )
                result.refused.extend((index, error) for index, _ in refused)
                for event_id in {fact.event_id for _, fact in refused}:
                    rows.pop(event_id, None)
        for _, fact in fresh:
            result.outcomes[fact.event_type, "accepted"] += 1
        for _, fact in repeated:
            result.outcomes[fact.event_type, "duplicate"] += 1
        if update is not None:
            update = _with_events(update, [fact for _, fact in fresh], losers)
            result.updates.append(update)
        if cache is not None:
            if update is not None:
                cache.put(lead_id, _Entry(update.state, update.new, running, rows))
            elif raw is not None and old is not None:
                cache.put(lead_id, _Entry(raw, old, running, rows))
    return result


def _admit(
    running: LeadFold, items: list[tuple[int, Fact]], max_events: int, result: BatchResult
) -> list[tuple[int, Fact]]:
    """The items within the event limit (duplicates always are); refuses the others."""
    room = max_events - running.event_count
    new: set[str] = set()
    admitted = []
    for index, fact in items:
        if fact.event_id in running or fact.event_id in new:
            admitted.append((index, fact))
        elif len(new) < room:
            new.add(fact.event_id)
            admitted.append((index, fact))
        else:
            result.refused.append(
                (
                    index,
                    f"lead {running.lead_id!r} already has {max_events} events, the most one "
                    "lead may have (LEADFLOW_MAX_EVENTS_PER_LEAD): this new event is refused",
                )
            )
    return admitted


def _without(running: LeadFold, fresh: list[tuple[int, Fact]]) -> LeadFold:
    ids = {fact.event_id for _, fact in fresh}
    kept = [fact for fact in running.facts if fact.event_id not in ids]
    return LeadFold(running.lead_id, running.config, kept, running.lost, running.beaten)


def _shrink(
    running: LeadFold,
    fresh: list[tuple[int, Fact]],
    old: Header | None,
    before: tuple[frozenset[tuple[int, str]], frozenset[int]],
    now: datetime,
    rows: dict[str, bytes],
    limit: int,
) -> tuple[LeadFold, LeadUpdate] | None:
    """The lead with the longest prefix (in arrival order) of ``fresh`` whose state fits
    ``limit`` bytes, and its update; None when not even one of them fits."""
    base = _without(running, fresh)
    best: tuple[LeadFold, LeadUpdate] | None = None
    low, high = 1, len(fresh) - 1  # all of fresh is known not to fit
    middle = 1  # first try one: a lead already at the limit costs one probe a batch
    while low <= high:
        candidate = LeadFold(running.lead_id, running.config, base.facts, base.lost, base.beaten)
        candidate.add_many([fact for _, fact in fresh[:middle]])
        update = _update(candidate, old, before, now, rows)
        if len(update.state) <= limit:
            best, low = (candidate, update), middle + 1
        else:
            high = middle - 1
        middle = (low + high) // 2
    return best


def _conflicts(admitted: list[tuple[int, Fact]], losers: list[Fact]) -> list[tuple[int, Fact]]:
    """Each losing copy with the index of its own message if it came in this batch, else of
    the copy that displaced it."""
    if not losers:
        return []
    index_of = {id(fact): index for index, fact in admitted}
    winner_of = {fact.event_id: index for index, fact in admitted}
    return [(index_of.get(id(loser), winner_of[loser.event_id]), loser) for loser in losers]


def _with_events(update: LeadUpdate, fresh: list[Fact], losers: list[Fact]) -> LeadUpdate:
    """``update`` whose snapshot carries the lead_events rows of its new events, and names
    those that restate a stored copy."""
    events = [event_row(update.lead_id, fact) for fact in sorted(fresh)]
    for row, fact in zip(events, sorted(fresh), strict=True):
        if fact.email or fact.company or fact.country:  # lead_events keeps none of them
            row[CANONICAL] = canonical(update.lead_id, fact)
    lost = {loser.event_id for loser in losers}
    restated = sorted(fact.event_id for fact in fresh if fact.event_id in lost)
    snapshot = replace(update.snapshot, events=events, restated=restated)
    return replace(update, snapshot=snapshot)


def state_version(raw: bytes | None) -> int:
    """The lowest version a snapshot of this table value can have (no clock breach)."""
    _, facts, lost, beaten = decode_copies(raw)
    copies = len(facts) + sum(map(len, beaten.values()))
    return lead_version(copies, sum(map(len, lost.values())))


def lost_of(raw: bytes | None) -> set[tuple[str, str]]:
    """The (event_id, copy digest) of each copy of its lead the table value says lost."""
    return {(event_id, d) for event_id, digests in decode_copies(raw)[2].items() for d in digests}


def recovered(
    lead_id: str,
    raw: bytes | None,
    history: Sequence[Fact],
    config: FoldConfig,
    now: datetime,
    lost: Lost | None = None,
    beaten: Lost | None = None,
) -> LeadUpdate:
    """The lead refolded from its stored ``history``, ``lost`` (its recorded losses) and
    ``beaten`` (its recorded copies that lost to another of its copies) and
    whatever its table value holds; the table value's copy of an event wins (lead_events holds
    no personal data). The snapshot carries the lead_events rows of the table's events that
    ``history`` lacks."""
    old, stored, held, seen = decode_copies(raw)
    for event_id, digests in (beaten or {}).items():
        seen[event_id] = sorted({*seen.get(event_id, ()), *digests})
    known = {fact.event_id for fact in stored}
    running = LeadFold(
        lead_id, config, [*stored, *(f for f in history if f.event_id not in known)], held, seen
    )
    running.retract((e, d) for e, digests in (lost or {}).items() for d in digests)
    update = _update(running, old, running.progress(), now, {})
    recorded = {fact.event_id for fact in history}
    return _with_events(update, [f for f in running.facts if f.event_id not in recorded], [])


def refresh(
    lead_id: str, raw: bytes | None, config: FoldConfig, now: datetime
) -> LeadUpdate | None:
    """Re-read a lead at ``now`` with no new event: the update if the clock changed it."""
    old, stored, lost, beaten = decode_copies(raw)
    if old is None:
        return None
    running = LeadFold(lead_id, config, stored, lost, beaten)
    update = _update(running, old, running.progress(), now, {})
    return update if update.new != old else None


def _update(
    running: LeadFold,
    old: Header | None,
    before: tuple[frozenset[tuple[int, str]], frozenset[int]],
    now: datetime,
    rows: dict[str, bytes],
) -> LeadUpdate:
    snapshot = running.snapshot(now)
    header = header_of(snapshot)
    entries, responded = running.progress()
    try:
        state = encode_state(header, running.facts, rows, running.lost, running.beaten)
    except KeyError:  # rows of facts new to ``rows``: encode them once, keep them
        for fact in running.facts:
            if fact.event_id not in rows:
                rows[fact.event_id] = encode_row(fact)
        state = encode_state(header, running.facts, rows, running.lost, running.beaten)
    return LeadUpdate(
        running.lead_id,
        state,
        snapshot,
        old,
        header,
        entries - before[0],
        before[0] - entries,
        responded - before[1],
    )
