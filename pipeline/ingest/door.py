"""Each event judged exactly as the pipeline judges it, on the topic the token may write to."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from leadflow.pipeline.ingest.bodies import Item, LineError
from leadflow.pipeline.ingest.producer import Outgoing
from leadflow.schemas.classify import classify
from leadflow.schemas.events import BaseEvent
from leadflow.schemas.vocabulary import topic_kind_of


@dataclass(slots=True)
class Verdicts:
    """What a request's events come to: messages to publish and refusals by index."""

    outgoing: list[Outgoing] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, index: int, reason: str, error: str) -> None:
        self.refused.append({"index": index, "reason": reason, "error": error})


def _own_kind(raw: bytes) -> str:
    """The topic kind an event's type belongs to (unknown types fall to classify's verdict)."""
    try:
        value = json.loads(raw, parse_int=str, parse_float=str)
    except (ValueError, RecursionError):
        return "marketing"
    event_type = value.get("event_type") if isinstance(value, dict) else None
    return topic_kind_of(event_type) if isinstance(event_type, str) else "marketing"


def judge(items: list[Item], scope: str, now: datetime | None = None) -> Verdicts:
    """A token of scope marketing or sales writes to that topic only; `all` to each type's own."""
    verdicts = Verdicts()
    moment = now or datetime.now(UTC)
    for index, item in enumerate(items):
        if isinstance(item, LineError):
            verdicts.refuse(index, "invalid_json", item.error)
            continue
        kind = scope if scope != "all" else _own_kind(item)
        verdict = classify(item, kind, moment)
        if isinstance(verdict, BaseEvent):
            verdicts.outgoing.append((kind, verdict.lead_id.encode("utf-8"), item))
        elif verdict.reason == "wrong_topic" and scope != "all":
            verdicts.refuse(index, "wrong_topic", f"{verdict.error}; the token's scope is {scope}")
        else:
            verdicts.refuse(index, verdict.reason, verdict.error)
    return verdicts
