"""Deterministic synthetic marketing and sales traffic: realistic lead journeys as raw messages."""

from __future__ import annotations

import bisect
import json
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from itertools import accumulate
from typing import Any

from leadflow.schemas.vocabulary import DEFAULT_RECYCLE_REASONS, topic_kind_of

KEY_MODES = ("lead_id", "none", "random")

# Proportions derived from the Olist marketing-funnel data set (8,000 MQLs, 842 won deals);
# blank origins are folded into "unknown", "other_publicities" into "other".
CHANNEL_SHARES: dict[str, float] = {
    "organic_search": 0.287,
    "paid_search": 0.198,
    "social": 0.169,
    "unknown": 0.145,
    "direct_traffic": 0.062,
    "email": 0.062,
    "referral": 0.036,
    "other": 0.027,
    "display": 0.015,
}
# Olist won deals / MQLs per origin (overall 842 / 8000 = 10.5%).
WON_PER_MQL: dict[str, float] = {
    "organic_search": 0.118,
    "paid_search": 0.123,
    "social": 0.056,
    "unknown": 0.167,
    "direct_traffic": 0.112,
    "email": 0.030,
    "referral": 0.085,
    "other": 0.033,
    "display": 0.051,
}
# Olist days from first contact to won: quantiles 0, 10, 25, 50, 75, 90, 95, 100 %.
DAYS_TO_WON_QUANTILES = (0.1, 2.6, 5.9, 14.6, 54.6, 161.8, 210.5, 427.0)
_QUANTILE_PROBS = (0.0, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 1.0)
# Olist MQLs per weekday (Mon..Sun), relative: weekends carry about a third of a weekday.
WEEKDAY_WEIGHTS = (1.0, 0.97, 1.0, 0.91, 0.77, 0.35, 0.36)
SDR_COUNT, AE_COUNT = 32, 22  # distinct sdr_id / sr_id in the Olist closed deals

# Assumptions (no source data): lead-to-MQL share, SLA behaviour, stage conversions.
MQL_SHARE = 0.40
ORPHAN_SHARE = 0.01  # MQL leads whose lead.created never reaches the pipeline
ASSIGN_SHARE = 0.95
CONTACT_SHARES = (0.62, 0.25)  # within the 24 h SLA, late; the rest are never contacted
DECISION_SHARES = (0.55, 0.35)  # accepted, rejected; the rest stay undecided
OPPORTUNITY_SHARE = 0.75  # of accepted leads
SKIP_ACCEPT_SHARE = 0.10  # opportunities created without a lead.accepted (sal inferred)
OPEN_OPPORTUNITY_SHARE = 0.12
RECYCLE_SHARE = 0.6  # of rejections
REQUALIFY_SHARE = {"recycled": 0.35, "lost": 0.10, "disqualified": 0.03}
SPAN_DAYS = 365
_REACH_OPPORTUNITY = sum(CONTACT_SHARES) * DECISION_SHARES[0] * OPPORTUNITY_SHARE
WIN_CALIBRATION = 1.1  # offsets leads still in flight at `start` and never-assigned leads

RECYCLE_REASONS = DEFAULT_RECYCLE_REASONS
DISQUALIFY_REASONS = ("bad_fit", "no_fit", "duplicate", "spam", "student")
LOST_REASONS = ("price", "competitor", "no_decision", "timing", "product_fit", None)
COUNTRY_CURRENCY = (
    ("BR", "BRL", 0.30),
    ("US", "USD", 0.22),
    ("DE", "EUR", 0.10),
    ("FR", "EUR", 0.07),
    ("GB", "GBP", 0.10),
    ("ES", "EUR", 0.05),
    ("PT", "EUR", 0.04),
    ("NL", "EUR", 0.04),
    ("CA", "USD", 0.04),
    ("MX", "USD", 0.04),
)
CAMPAIGNS_PER_CHANNEL = {"paid_search": 12, "social": 8, "email": 10, "display": 5, "referral": 4}
MARKETING_SYSTEMS, SALES_SYSTEMS = ("hubspot", "marketo"), ("salesforce", "pipedrive")
_OFFSETS = (
    (timezone(timedelta(hours=2)), 0.4),
    (timezone(timedelta(hours=-3)), 0.4),
    (timezone(timedelta(hours=5, minutes=30)), 0.2),
)
_WORDS = ("Blue", "North", "Green", "Silver", "Bright", "Iron", "Cedar", "Nova", "Delta", "Summit")
_NOUNS = ("Harbor", "Labs", "Foods", "Logistics", "Textiles", "Motors", "Works", "Retail", "Pet")
_SUFFIXES = ("Ltda", "Inc", "GmbH", "SA", "Ltd", "BV")


@dataclass(frozen=True)
class SimMessage:
    """One message as a producer would send it; ``valid`` says whether the pipeline must accept it.

    ``lead_id`` is the lead the message was generated for (also for invalid ones).
    """

    topic_kind: str
    key: bytes | None
    value: bytes
    lead_id: str | None
    valid: bool


@dataclass(slots=True)
class _Draft:
    """A valid event before serialization."""

    at: datetime
    lead_id: str
    body: dict[str, Any]


@dataclass(slots=True)
class _Lead:
    """The journey of one lead being written."""

    lead_id: str
    channel: str
    campaign_id: str | None
    currency: str
    end: datetime
    drafts: list[_Draft] = field(default_factory=list)
    owner: str | None = None


class _Weighted:
    """A weighted choice by bisection over cumulative weights (faster than random.choices)."""

    def __init__(self, items: Sequence[Any], weights: Sequence[float]) -> None:
        self.items = list(items)
        self.cum = list(accumulate(weights))

    def pick(self, rng: random.Random) -> Any:
        return self.items[bisect.bisect(self.cum, rng.random() * self.cum[-1])]


_CHANNELS = _Weighted(list(CHANNEL_SHARES), list(CHANNEL_SHARES.values()))
_TOUCHES = {k: v for k, v in CHANNEL_SHARES.items() if k not in ("unknown", "other")}
_TOUCH_CHANNELS = _Weighted(list(_TOUCHES), list(_TOUCHES.values()))
_COUNTRIES = _Weighted([c[:2] for c in COUNTRY_CURRENCY], [c[2] for c in COUNTRY_CURRENCY])
_WEEKDAYS = _Weighted(range(7), WEEKDAY_WEIGHTS)
_OFFSET_PICK = _Weighted([o[0] for o in _OFFSETS], [o[1] for o in _OFFSETS])
# Hours of the day (UTC), weighted towards business hours.
_HOUR_WEIGHTS = [0.2] * 7 + [1, 2, 3, 3, 3, 2, 3, 3, 3, 2, 1.5, 1, 0.6, 0.4] + [0.2] * 3
_HOURS = _Weighted(range(24), _HOUR_WEIGHTS)


def simulate(
    leads: int,
    seed: int,
    start: datetime,
    bad_share: float = 0.01,
    duplicate_share: float = 0.03,
    shuffle_window: int = 50,
    key_mode: str = "lead_id",
) -> list[SimMessage]:
    """The messages of ``leads`` lead journeys, all before ``start``, in a realistic arrival order.

    Same arguments, same bytes. Valid events arrive roughly chronologically, locally shuffled
    within ``shuffle_window`` positions; ``duplicate_share`` of them are re-sent later and
    ``bad_share`` extra invalid messages are mixed in.
    """
    _check_arguments(leads, start, bad_share, duplicate_share, shuffle_window, key_mode)
    rng = random.Random(seed)
    start = start.astimezone(UTC)
    drafts = [d for i in range(leads) for d in _journey(rng, f"sim{seed}-{i:06d}", start)]
    drafts.sort(key=lambda d: (d.at, d.body["event_id"]))
    keyer = _keyer(seed, key_mode)
    valid = [_serialize(rng, d, keyer) for d in drafts]
    arrival = _shuffle_locally(rng, valid, shuffle_window)
    return _mix_in(rng, arrival, duplicate_share, _bad_messages(rng, drafts, bad_share, keyer))


def valid_events(messages: Iterable[SimMessage]) -> list[SimMessage]:
    """The distinct valid messages (duplicates dropped), in first-arrival order."""
    seen: set[bytes] = set()
    out = []
    for message in messages:
        if message.valid and message.value not in seen:
            seen.add(message.value)
            out.append(message)
    return out


def _check_arguments(
    leads: int, start: datetime, bad: float, dup: float, window: int, key_mode: str
) -> None:
    if leads < 0 or window < 0:
        raise ValueError("leads and shuffle_window must be >= 0")
    if not (0.0 <= bad <= 1.0 and 0.0 <= dup <= 1.0):
        raise ValueError("bad_share and duplicate_share must be between 0 and 1")
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    if key_mode not in KEY_MODES:
        raise ValueError(f"key_mode must be one of {', '.join(KEY_MODES)}, got {key_mode!r}")


# -- one lead's journey ------------------------------------------------------------------


def _journey(rng: random.Random, lead_id: str, start: datetime) -> list[_Draft]:
    channel = _CHANNELS.pick(rng)
    country, currency = _COUNTRIES.pick(rng)
    lead = _Lead(lead_id, channel, _campaign(rng, channel), currency, start)
    created_at = _created_at(rng, start)
    is_mql = rng.random() < MQL_SHARE
    if not (is_mql and rng.random() < ORPHAN_SHARE):
        _emit_created(rng, lead, created_at, country)
    mql_at = _nurture(rng, lead, created_at, is_mql)
    if mql_at is not None:
        _cycles(rng, lead, mql_at)
    return lead.drafts


def _emit(rng: random.Random, lead: _Lead, event_type: str, at: datetime, **fields: Any) -> bool:
    """Add one event; False (and nothing added) when it would happen after ``start``."""
    if at > lead.end:
        return False
    # Whole seconds mostly, milliseconds sometimes: the text then carries the exact instant.
    at = at.replace(microsecond=at.microsecond // 1000 * 1000 if rng.random() < 0.2 else 0)
    systems = MARKETING_SYSTEMS if topic_kind_of(event_type) == "marketing" else SALES_SYSTEMS
    body: dict[str, Any] = {
        "event_id": f"{lead.lead_id}-e{len(lead.drafts) + 1}",
        "event_type": event_type,
        "lead_id": lead.lead_id,
        "occurred_at": "",  # filled at serialization, where the offset is drawn
        "source_system": systems[int(rng.random() < 0.3)],
    }
    if rng.random() < 0.05:
        body["schema_version"] = 1
    body.update(fields)
    lead.drafts.append(_Draft(at, lead.lead_id, body))
    return True


def _emit_created(rng: random.Random, lead: _Lead, at: datetime, country: str) -> None:
    has_email, has_company = rng.random() < 0.9, rng.random() < 0.7
    _emit(
        rng,
        lead,
        "lead.created",
        at,
        source=lead.channel,
        campaign_id=lead.campaign_id,
        email=f"{lead.lead_id}@example.com" if has_email else None,
        company=_company(rng) if has_company else None,
        country=country if rng.random() < 0.8 else None,
    )


def _nurture(
    rng: random.Random, lead: _Lead, created_at: datetime, is_mql: bool
) -> datetime | None:
    """Touches and scores after creation; the MQL time when the lead qualifies."""
    at = created_at
    mql_at = created_at + _lognormal_hours(rng, 48.0, 1.2) if is_mql else None
    horizon = mql_at or created_at + timedelta(days=rng.uniform(1, 60))
    for _ in range(_touch_count(rng)):
        at = min(at + (horizon - at) * rng.random(), horizon)
        own = lead.campaign_id is not None and rng.random() < 0.6
        campaign = lead.campaign_id if own else _any_campaign(rng)
        _emit(rng, lead, "lead.touch", at, campaign_id=campaign, channel=_touch_channel(rng))
    score = rng.randint(60, 95) if is_mql else rng.randint(5, 59)
    for _ in range(1 + (rng.random() < 0.35)):
        at = min(at + timedelta(minutes=rng.uniform(1, 600)), horizon)
        _emit(rng, lead, "lead.scored", at, score=score)
    return mql_at


def _cycles(rng: random.Random, lead: _Lead, mql_at: datetime) -> None:
    cycle_no = 1
    while True:
        score = rng.randint(60, 99)
        if not _emit(rng, lead, "lead.mql", mql_at, score=score, campaign_id=lead.campaign_id):
            return
        outcome, ended_at = _handoff(rng, lead, mql_at)
        if cycle_no >= 2 or ended_at is None or rng.random() >= REQUALIFY_SHARE.get(outcome, 0.0):
            return
        cycle_no += 1
        mql_at = ended_at + timedelta(days=rng.uniform(20, 150))


def _handoff(rng: random.Random, lead: _Lead, mql_at: datetime) -> tuple[str, datetime | None]:
    """Assignment, contact and the sales decision of one cycle: (outcome, when it ended)."""
    at = mql_at
    if rng.random() < ASSIGN_SHARE:
        at = mql_at + _lognormal_hours(rng, 0.25, 1.0)
        lead.owner = f"sdr-{rng.randint(1, SDR_COUNT):02d}"
        if not _emit(rng, lead, "lead.assigned", at, owner_id=lead.owner):
            return "open", None
    contacted_at = _contact_time(rng, mql_at)
    if contacted_at is None or not _emit(
        rng,
        lead,
        "lead.contacted",
        max(contacted_at, at),
        owner_id=lead.owner,
        channel=rng.choice(("phone", "email", "phone", "linkedin")),
    ):
        return "open", None
    return _decide(rng, lead, mql_at, max(contacted_at, at))


def _decide(
    rng: random.Random, lead: _Lead, mql_at: datetime, at: datetime
) -> tuple[str, datetime | None]:
    at += _lognormal_hours(rng, 20.0, 1.0)
    draw = rng.random()
    if draw < DECISION_SHARES[0]:
        return _opportunity(rng, lead, mql_at, at)
    if draw >= sum(DECISION_SHARES):
        return "open", None
    recycle = rng.random() < RECYCLE_SHARE
    reason = rng.choice(RECYCLE_REASONS if recycle else DISQUALIFY_REASONS)
    if not _emit(rng, lead, "lead.rejected", at, reason=reason, owner_id=lead.owner):
        return "open", None
    return ("recycled" if recycle else "disqualified"), at


def _opportunity(
    rng: random.Random, lead: _Lead, mql_at: datetime, at: datetime
) -> tuple[str, datetime | None]:
    if rng.random() >= SKIP_ACCEPT_SHARE and not _emit(
        rng, lead, "lead.accepted", at, owner_id=lead.owner
    ):
        return "open", None
    if rng.random() >= OPPORTUNITY_SHARE:
        return "open", None
    at += _lognormal_hours(rng, 72.0, 0.8)
    owner = f"ae-{rng.randint(1, AE_COUNT):02d}"
    opp_id, amount = f"opp-{lead.lead_id}-{len(lead.drafts)}", _amount(rng)
    money = {"opportunity_id": opp_id, "amount": amount, "currency": lead.currency}
    if not _emit(rng, lead, "opportunity.created", at, owner_id=owner, **money):
        return "open", None
    closed_at = max(mql_at + timedelta(days=_days_to_close(rng)), at + timedelta(hours=1))
    draw = rng.random()
    if draw < _win_rate(lead.channel):
        won = {**money, "amount": _negotiated(rng, amount)}
        _emit(rng, lead, "deal.won", closed_at, owner_id=owner, **won)
        return "won", None
    if draw < 1.0 - OPEN_OPPORTUNITY_SHARE:
        reason = rng.choice(LOST_REASONS)
        ok = _emit(rng, lead, "deal.lost", closed_at, opportunity_id=opp_id, reason=reason)
        return ("lost", closed_at) if ok else ("open", None)
    return "open", None


# -- draws -------------------------------------------------------------------------------


def _created_at(rng: random.Random, start: datetime) -> datetime:
    day0 = (start - timedelta(days=SPAN_DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    weekday = _WEEKDAYS.pick(rng)
    week = rng.randrange(SPAN_DAYS // 7 + 1)
    day = day0 + timedelta(days=week * 7 + (weekday - day0.weekday()) % 7)
    moment = day + timedelta(hours=_HOURS.pick(rng), seconds=rng.randrange(3600))
    # Leads that would fall after `start` are moved back one year: created times stay uniform.
    return moment if moment < start else moment - timedelta(days=SPAN_DAYS)


def _contact_time(rng: random.Random, mql_at: datetime) -> datetime | None:
    draw = rng.random()
    if draw < CONTACT_SHARES[0]:
        return mql_at + timedelta(hours=min(_lognormal(rng, 3.0, 1.1), 23.9))
    if draw < sum(CONTACT_SHARES):
        return mql_at + timedelta(hours=24.1 + _lognormal(rng, 30.0, 0.9))
    return None


def _days_to_close(rng: random.Random) -> float:
    """A draw from the Olist time-to-won distribution (piecewise-linear quantile function)."""
    p = rng.random()
    i = min(bisect.bisect(_QUANTILE_PROBS, p), len(_QUANTILE_PROBS) - 1)
    lo, hi = _QUANTILE_PROBS[i - 1], _QUANTILE_PROBS[i]
    q0, q1 = DAYS_TO_WON_QUANTILES[i - 1], DAYS_TO_WON_QUANTILES[i]
    return q0 + (q1 - q0) * (p - lo) / (hi - lo)


def _win_rate(channel: str) -> float:
    return min(0.9, WON_PER_MQL[channel] / _REACH_OPPORTUNITY * WIN_CALIBRATION)


def _amount(rng: random.Random) -> str:
    return f"{min(_lognormal(rng, 4000.0, 1.0), 2_000_000.0):.2f}"


def _negotiated(rng: random.Random, amount: str) -> str:
    if rng.random() < 0.7:
        return amount
    return f"{float(amount) * rng.uniform(0.8, 1.0):.2f}"


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _lognormal_hours(rng: random.Random, median: float, sigma: float) -> timedelta:
    return timedelta(hours=_lognormal(rng, median, sigma))


def _touch_count(rng: random.Random) -> int:
    return min(int(rng.expovariate(1 / 4.0)), 15)


def _campaign(rng: random.Random, channel: str) -> str | None:
    count = CAMPAIGNS_PER_CHANNEL.get(channel)
    if count is None:  # organic, direct, unknown: mostly no campaign attached
        return None if rng.random() < 0.7 else _any_campaign(rng)
    return f"cmp-{channel}-{rng.randint(1, count):02d}"


def _any_campaign(rng: random.Random) -> str:
    channel = rng.choice(list(CAMPAIGNS_PER_CHANNEL))
    return f"cmp-{channel}-{rng.randint(1, CAMPAIGNS_PER_CHANNEL[channel]):02d}"


def _touch_channel(rng: random.Random) -> str | None:
    return None if rng.random() < 0.2 else _TOUCH_CHANNELS.pick(rng)


def _company(rng: random.Random) -> str:
    return f"{rng.choice(_WORDS)} {rng.choice(_NOUNS)} {rng.choice(_SUFFIXES)}"


# -- bytes and arrival order -------------------------------------------------------------


def _stamp(rng: random.Random, at: datetime) -> str:
    """RFC 3339: mostly 'Z', some '+00:00', some non-UTC offsets."""
    spec = "milliseconds" if at.microsecond else "seconds"
    draw = rng.random()
    if draw < 0.08:
        return at.astimezone(_OFFSET_PICK.pick(rng)).isoformat(timespec=spec)
    text = at.isoformat(timespec=spec)
    return text if draw < 0.15 else text[:-6] + "Z"


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _keyer(seed: int, key_mode: str) -> Callable[[str], bytes | None]:
    if key_mode == "lead_id":
        return str.encode
    if key_mode == "none":
        return lambda _lead_id: None
    # A generator of its own: the key mode must not change the events a seed produces.
    keys = random.Random(f"keys-{seed}")
    return lambda _lead_id: keys.randbytes(8).hex().encode()


def _serialize(
    rng: random.Random, draft: _Draft, keyer: Callable[[str], bytes | None]
) -> SimMessage:
    body = draft.body
    body["occurred_at"] = _stamp(rng, draft.at)
    if rng.random() < 0.5:  # absent and JSON null are both legal for optional fields
        body = {k: v for k, v in body.items() if v is not None}
    topic = topic_kind_of(body["event_type"])
    key = keyer(draft.lead_id)
    return SimMessage(topic, key, _dumps(body), draft.lead_id, True)


def _shuffle_locally(
    rng: random.Random, messages: list[SimMessage], window: int
) -> list[SimMessage]:
    """Each message moves up to ``window`` positions from its chronological place."""
    keyed = [(i + rng.random() * window, i) for i in range(len(messages))]
    keyed.sort()
    return [messages[i] for _, i in keyed]


def _mix_in(
    rng: random.Random, arrival: list[SimMessage], dup_share: float, bad: list[SimMessage]
) -> list[SimMessage]:
    """Re-send ``dup_share`` of the messages later and scatter the bad ones."""
    n = len(arrival)
    keyed: list[tuple[float, int, SimMessage]] = [(float(i), 0, m) for i, m in enumerate(arrival)]
    for j, i in enumerate(rng.sample(range(n), round(n * dup_share)) if n else []):
        later = i + 1 + int(rng.expovariate(1 / 300))
        keyed.append((min(later, n) + 0.5, j + 1, arrival[i]))
    for message in bad:
        keyed.append((rng.uniform(0, n), 0, message))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [m for _, _, m in keyed]


# -- invalid messages --------------------------------------------------------------------


def _bad_messages(
    rng: random.Random, drafts: list[_Draft], share: float, keyer: Callable[[str], bytes | None]
) -> list[SimMessage]:
    if not drafts:
        return []
    count = round(len(drafts) * share)
    out = []
    for n in range(count):
        draft = drafts[rng.randrange(len(drafts))]
        body = {**draft.body, "event_id": f"{draft.lead_id}-x{n}"}
        kind = _BAD_KINDS[n % len(_BAD_KINDS)]
        topic, value = kind(rng, body)
        key = keyer(draft.lead_id)
        out.append(SimMessage(topic, key, value, draft.lead_id, False))
    return out


def _topic(body: dict[str, Any]) -> str:
    return topic_kind_of(body["event_type"])


def _truncated(rng: random.Random, body: dict[str, Any]) -> tuple[str, bytes]:
    raw = _dumps(body)
    return _topic(body), raw[: rng.randint(1, len(raw) - 2)]


def _unknown_type(rng: random.Random, body: dict[str, Any]) -> tuple[str, bytes]:
    kind = rng.choice(("marketing", "sales"))
    return kind, _dumps({**body, "event_type": rng.choice(("lead.teleported", "deal.maybe"))})


def _wrong_topic(rng: random.Random, body: dict[str, Any]) -> tuple[str, bytes]:
    return ("sales" if _topic(body) == "marketing" else "marketing"), _dumps(body)


def _naive_timestamp(rng: random.Random, body: dict[str, Any]) -> tuple[str, bytes]:
    naive = f"20{rng.randint(10, 24)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T10:00:00"
    return _topic(body), _dumps({**body, "occurred_at": naive})


def _negative_amount(rng: random.Random, body: dict[str, Any]) -> tuple[str, bytes]:
    fields = {"opportunity_id": f"opp-{body['lead_id']}-neg", "currency": "EUR"}
    amount = f"-{rng.uniform(1, 5000):.2f}"
    value = {**body, "event_type": "opportunity.created", "amount": amount, **fields}
    return "sales", _dumps(value)


def _schema_v2(rng: random.Random, body: dict[str, Any]) -> tuple[str, bytes]:
    return _topic(body), _dumps({**body, "schema_version": 2})


def _not_utf8(rng: random.Random, body: dict[str, Any]) -> tuple[str, bytes]:
    raw = _dumps(body)
    cut = raw.index(b'"lead_id":"') + 11
    return _topic(body), raw[:cut] + b"\xff\xfe" + raw[cut:]


def _missing_field(rng: random.Random, body: dict[str, Any]) -> tuple[str, bytes]:
    drop = rng.choice(("event_id", "lead_id", "occurred_at"))
    return _topic(body), _dumps({k: v for k, v in body.items() if k != drop})


def _ancient(rng: random.Random, body: dict[str, Any]) -> tuple[str, bytes]:
    return _topic(body), _dumps({**body, "occurred_at": "1999-12-31T23:00:00Z"})


def _not_an_object(rng: random.Random, body: dict[str, Any]) -> tuple[str, bytes]:
    return _topic(body), rng.choice((b"[]", b'"lead.created"', b"null", b""))


_BAD_KINDS = (
    _truncated,
    _unknown_type,
    _wrong_topic,
    _naive_timestamp,
    _negative_amount,
    _schema_v2,
    _not_utf8,
    _missing_field,
    _ancient,
    _not_an_object,
)
