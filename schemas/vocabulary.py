"""Every word the product shares: event types, topics, stages, reasons, models, placeholders.

Each vocabulary is defined here once; every other module imports it from here.
"""

from __future__ import annotations

from typing import Final

# Event types in the fold's tie-break order: the index is the type rank.
MARKETING_TYPES: Final = ("lead.created", "lead.touch", "lead.scored", "lead.mql")
SALES_TYPES: Final = (
    "lead.assigned",
    "lead.contacted",
    "lead.accepted",
    "lead.rejected",
    "opportunity.created",
    "deal.won",
    "deal.lost",
)
EVENT_TYPES: Final = MARKETING_TYPES + SALES_TYPES
TYPE_RANK: Final[dict[str, int]] = {name: rank for rank, name in enumerate(EVENT_TYPES)}
SALES_RANK_MIN: Final = TYPE_RANK["lead.assigned"]
TOPIC_KINDS: Final = ("marketing", "sales")

# Stages: the success path, the outcomes, the detours.
SUCCESS_STAGES: Final = ("lead", "mql", "sal", "sql")
SUCCESS_RANK: Final[dict[str, int]] = {s: rank for rank, s in enumerate(SUCCESS_STAGES, 1)}
STAGES: Final = (*SUCCESS_STAGES, "won", "lost", "recycled", "disqualified")
OPEN_STAGES: Final = frozenset({None, *SUCCESS_STAGES})
CLOSED_FOR_REQUALIFY: Final = frozenset({"lost", "recycled", "disqualified"})
# The path a funnel report shows: the success stages and the win they lead to.
FUNNEL_PATH: Final = (*SUCCESS_STAGES, "won")
NO_STAGE: Final = "none"  # the label of a lead that has entered no stage yet
STAGE_LABELS: Final = (NO_STAGE, *STAGES)

SLA_STATUSES: Final = ("met", "breached", "pending")

# Dead-letter reasons of messages the pipeline cannot accept.
REJECTION_REASONS: Final = (
    "invalid_json",
    "invalid_event",
    "unknown_event_type",
    "wrong_topic",
    "unsupported_schema_version",
    "timestamp_out_of_range",
)
# A copy of an event_id whose content differs from the copy the lead keeps (the pipeline's own
# verdict: no message on its own is one).
CONFLICTING_DUPLICATE: Final = "conflicting_duplicate"
DEAD_LETTER_REASONS: Final = (*REJECTION_REASONS, CONFLICTING_DUPLICATE)
DEFAULT_RECYCLE_REASONS: Final = ("not_now", "nurture", "no_budget", "timing")

ATTRIBUTION_MODELS: Final = ("first_touch", "last_touch", "linear", "w_shaped")

# What a missing source, campaign, owner or currency is grouped under.
UNKNOWN: Final = "unknown"
# The policy of an SLA row computed by the single LEADFLOW_SLA_HOURS clock (policy column null).
SINGLE_CLOCK: Final = "single_clock"


def topic_kind_of(event_type: str) -> str:
    """``marketing`` or ``sales``: the input topic an event type belongs to."""
    return "marketing" if event_type in MARKETING_TYPES else "sales"
