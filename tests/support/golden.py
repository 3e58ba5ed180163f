"""Loading the golden scenarios (copied from the contract) and comparing rows with them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from leadflow.agents.facts import Fact
from leadflow.agents.fold import FoldConfig
from leadflow.schemas.classify import classify
from leadflow.schemas.events import BaseEvent

SCENARIO_DIR = Path(__file__).parent / "scenarios"
TIME_FIELDS = {
    "lead_at",
    "mql_at",
    "sal_at",
    "sql_at",
    "won_at",
    "lost_at",
    "recycled_at",
    "disqualified_at",
    "first_contact_at",
    "last_event_at",
    "entered_at",
    "deadline",
    "responded_at",
}


@dataclass(frozen=True)
class Scenario:
    name: str
    lead_id: str
    published: list[dict[str, Any]]
    config: dict[str, Any]
    expected: dict[str, Any]

    @property
    def now(self) -> datetime:
        return parse_time(self.config["now"])


def load_scenarios() -> list[Scenario]:
    scenarios = []
    for path in sorted(SCENARIO_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        lead_id = data["published"][0]["value"]["lead_id"]
        scenarios.append(
            Scenario(data["name"], lead_id, data["published"], data["config"], data["expected"])
        )
    return scenarios


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    """A row with times as aware datetimes and amounts as Decimals, for field-by-field equality."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None:
            out[key] = None
        elif key in TIME_FIELDS:
            moment = parse_time(value) if isinstance(value, str) else value
            if moment.tzinfo is None:  # SQLite gives back naive UTC
                from datetime import UTC

                moment = moment.replace(tzinfo=UTC)
            out[key] = moment
        elif key == "amount":
            out[key] = Decimal(str(value))
        elif key == "response_seconds":
            out[key] = float(value)
        else:
            out[key] = value
    return out


def assert_rows_match(actual: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    """Every expected field equals the actual one (extra actual fields are ignored)."""
    got, want = normalize(actual), normalize(expected)
    mismatches = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    assert not mismatches, f"{where}: field (actual, expected): {mismatches}"


def facts_of(scenario: Scenario) -> list[Fact]:
    facts = []
    for message in scenario.published:
        import json

        event = classify(json.dumps(message["value"]).encode(), message["topic"], scenario.now)
        assert isinstance(event, BaseEvent), event
        facts.append(Fact.from_event(event))
    return facts


def config_of(scenario: Scenario) -> FoldConfig:
    return FoldConfig(
        sla_seconds=scenario.config["sla_hours"] * 3600.0,
        recycle_reasons=frozenset(scenario.config["recycle_reasons"]),
    )
