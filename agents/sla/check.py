"""``leadflow sla check FILE``: validate a policy file and show which policy an MQL gets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from leadflow.agents.sla.calendar import from_us, to_us
from leadflow.agents.sla.instants import format_utc, parse_instant
from leadflow.agents.sla.model import Policy, PolicySet
from leadflow.agents.sla.policies import PolicyError, load_policies

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class CheckResult:
    lines: list[str]
    exit_code: int


def check(
    path: str | Path,
    at: str | datetime | None = None,
    source: str | None = None,
    campaign_id: str | None = None,
    score: int | None = None,
) -> CheckResult:
    """Validate the file; for a valid one, the policy an MQL at ``at`` (default now) gets.

    Exit code 0: valid (whether a policy applies or not); 1: invalid file; 2: bad ``at``.
    """
    try:
        moment = _instant(at)
    except ValueError as error:
        return CheckResult([f"--at: {error}"], EXIT_USAGE)
    try:
        policy_set = load_policies(path)
    except PolicyError as error:
        return CheckResult([str(error)], EXIT_INVALID)
    lines = [_summary(str(path), policy_set)]
    lines.append(f"MQL at {format_utc(moment)}, {_lead(source, campaign_id, score)}")
    policy = policy_set.match(moment, source, campaign_id, score)
    lines.extend(
        ["no policy applies: this MQL gets no SLA"] if policy is None else _applied(policy, moment)
    )
    return CheckResult(lines, EXIT_OK)


def _instant(at: str | datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    moment = parse_instant(at) if isinstance(at, str) else at
    to_us(moment)  # rejects a naive datetime
    return moment


def _summary(path: str, policy_set: PolicySet) -> str:
    policies, calendars = len(policy_set.policies), len(policy_set.calendars)
    return (
        f"{path}: valid, {policies} polic{'y' if policies == 1 else 'ies'}, "
        f"{calendars} calendar{'' if calendars == 1 else 's'}, "
        f"fingerprint {policy_set.fingerprint[:12]}"
    )


def _lead(source: str | None, campaign_id: str | None, score: int | None) -> str:
    shown = ["-" if value is None else str(value) for value in (source, campaign_id, score)]
    return f"source {shown[0]}, campaign {shown[1]}, score {shown[2]}"


def _applied(policy: Policy, moment: datetime) -> list[str]:
    mql_us = to_us(moment)
    clock = from_us(policy.clock_start_us(mql_us))
    deadline = from_us(policy.deadline_us(mql_us))
    hours = f"{policy.target_hours:g} h"
    if policy.calendar is None:
        return [
            f"policy {policy.name!r} (line {policy.line}) applies: {hours} of wall-clock time",
            f"deadline {format_utc(deadline)}",
        ]
    zone = policy.calendar.timezone
    return [
        f"policy {policy.name!r} (line {policy.line}) applies: {hours} of open time on "
        f"calendar {policy.calendar_name!r} ({zone})",
        f"clock starts {format_utc(clock)} = {_local(policy, clock)}",
        f"deadline {format_utc(deadline)} = {_local(policy, deadline)}",
    ]


def _local(policy: Policy, moment: datetime) -> str:
    assert policy.calendar is not None
    local = policy.calendar.local(moment)
    return f"{local.isoformat()} {policy.calendar.timezone} ({local.tzname()})"
