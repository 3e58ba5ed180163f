"""Campaign attribution of won leads: first-touch, last-touch, linear and W-shaped credit, no I/O.

Definitions (the ``attribution`` table holds what :func:`attribution_rows` returns):

- A lead is attributed only when ``won`` is true (its current stage is ``won``). Once won a
  lead stays won, so the deal.won that applied is the lead's *first* deal.won in sort order.
- Its *touches* are its distinct lead.created, lead.touch and lead.mql facts that carry a
  ``campaign_id`` and sort before that first deal.won (all of them if there is none), in the
  fold's order (``ts``, ``rank``, ``event_id``). No touch: no rows.
- first_touch: all credit to the first touch. last_touch: all credit to the last one.
  linear: 1/n to each of the n touches.
- w_shaped: 30% to the first touch; 30% to the lead-creation touch (the first lead.created if it
  carries a campaign, else the first touch); 30% to the MQL touch (the last touch sorting at or
  before the first lead.mql, which is that lead.mql itself when it carries a campaign; the last
  touch when there is no lead.mql, or none before it); the remaining 10% in equal parts to the
  other touches, or, when there is none, in equal parts to the distinct positions above.
  Positions that coincide add up (one touch only: it gets 100%).
- Credits of one campaign that appears several times add up: one row per (campaign, model),
  with ``touch_count`` = its number of touches. Exact fractions are rounded to 6 places by the
  largest-remainder method, so each model's credits sum to exactly 1.

The result is a pure function of the *set* of facts, so late and duplicate events cannot
change it: recompute it from the lead's facts after every change.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from leadflow.agents.facts import Fact
from leadflow.schemas.vocabulary import ATTRIBUTION_MODELS, TYPE_RANK

TOUCH_RANKS = frozenset({TYPE_RANK["lead.created"], TYPE_RANK["lead.touch"], TYPE_RANK["lead.mql"]})
PLACES = 6
QUANTUM = Decimal(1).scaleb(-PLACES)
_CREATED, _MQL, _WON = TYPE_RANK["lead.created"], TYPE_RANK["lead.mql"], TYPE_RANK["deal.won"]
_ROLE = Fraction(3, 10)
_REST = Fraction(1, 10)


def touches_of(facts: Sequence[Fact]) -> list[Fact]:
    """The lead's campaign touches before its first deal.won, distinct and in the fold's order."""
    distinct = sorted({fact.event_id: fact for fact in facts}.values())
    won_at = next((f for f in distinct if f.rank == _WON), None)
    return [
        f
        for f in distinct
        if f.rank in TOUCH_RANKS and f.campaign_id and (won_at is None or f < won_at)
    ]


def model_shares(facts: Sequence[Fact], touches: Sequence[Fact]) -> dict[str, list[Fraction]]:
    """Exact credit of each position of ``touches``, per model (each list sums to 1)."""
    n = len(touches)
    if n == 0:
        return {model: [] for model in ATTRIBUTION_MODELS}
    first = [Fraction(0)] * n
    first[0] = Fraction(1)
    last = [Fraction(0)] * n
    last[-1] = Fraction(1)
    created, mql = w_positions(facts, touches)
    w_shaped = [Fraction(0)] * n
    roles = (0, created, mql)
    for position in roles:
        w_shaped[position] += _ROLE
    spread = [i for i in range(n) if i not in roles] or sorted(set(roles))
    for position in spread:
        w_shaped[position] += _REST / len(spread)
    return {
        "first_touch": first,
        "last_touch": last,
        "linear": [Fraction(1, n)] * n,
        "w_shaped": w_shaped,
    }


def w_positions(facts: Sequence[Fact], touches: Sequence[Fact]) -> tuple[int, int]:
    """Indexes, in ``touches``, of the lead-creation touch and of the MQL touch."""
    distinct = sorted({fact.event_id: fact for fact in facts}.values())
    first_created = next((f for f in distinct if f.rank == _CREATED), None)
    created = 0
    if first_created is not None and first_created in touches:
        created = list(touches).index(first_created)
    first_mql = next((f for f in distinct if f.rank == _MQL), None)
    mql = len(touches) - 1
    if first_mql is not None:
        before = [i for i, t in enumerate(touches) if t <= first_mql]
        if before:
            mql = before[-1]
    return created, mql


def rounded(shares: Sequence[Fraction]) -> list[Decimal]:
    """Shares rounded to PLACES decimals by largest remainder: the sum stays exactly 1."""
    scale = 10**PLACES
    floors = [int(s * scale) for s in shares]
    missing = scale * int(sum(shares)) - sum(floors)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] * scale - floors[i]), i))
    for i in order[:missing]:
        floors[i] += 1
    return [Decimal(units).scaleb(-PLACES).quantize(QUANTUM) for units in floors]


def attribution_rows(lead_id: str, facts: Sequence[Fact], won: bool) -> list[dict[str, Any]]:
    """Rows {lead_id, campaign_id, model, credit (Decimal, 6 places), touch_count} of a won lead.

    One row per (campaign, model), models in ATTRIBUTION_MODELS order then campaigns sorted;
    no rows when the lead is not won or has no campaign touch.
    """
    if not won:
        return []
    touches = touches_of(facts)
    if not touches:
        return []
    shares = model_shares(facts, touches)
    campaigns = sorted({t.campaign_id for t in touches if t.campaign_id})
    counts = {c: sum(1 for t in touches if t.campaign_id == c) for c in campaigns}
    rows: list[dict[str, Any]] = []
    for model in ATTRIBUTION_MODELS:
        per_campaign = dict.fromkeys(campaigns, Fraction(0))
        for touch, share in zip(touches, shares[model], strict=True):
            per_campaign[str(touch.campaign_id)] += share
        credits = rounded(list(per_campaign.values()))
        rows.extend(
            {
                "lead_id": lead_id,
                "campaign_id": campaign,
                "model": model,
                "credit": credit,
                "touch_count": counts[campaign],
            }
            for campaign, credit in zip(campaigns, credits, strict=True)
        )
    return rows
