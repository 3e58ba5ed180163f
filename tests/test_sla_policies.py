"""SLA policy files: loading, line-precise mistakes, matching, golden-style scenarios, check."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml  # type: ignore[import-untyped]

from leadflow.agents.sla.calendar import from_us, to_us
from leadflow.agents.sla.check import check
from leadflow.agents.sla.policies import (
    Policy,
    PolicyError,
    PolicySet,
    load_policies,
    parse_policies,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deploy" / "sla-policies.example.yaml"
PARIS = ZoneInfo("Europe/Paris")
HOUR = 3600.0

# The policy file of the contract's section 8, with a 24 x 7 calendar added for the DST cases.
POLICIES = """\
calendars:
  paris:
    timezone: Europe/Paris
    hours:
      mon: ["09:00-12:30", "13:30-18:00"]
      tue: ["09:00-18:00"]
      wed: ["09:00-18:00"]
      thu: ["09:00-18:00"]
      fri: ["09:00-17:00"]
    holidays: ["2026-12-25", "2027-01-01"]
  paris_always:
    timezone: Europe/Paris
    hours: {mon: ["00:00-24:00"], tue: ["00:00-24:00"], wed: ["00:00-24:00"],
            thu: ["00:00-24:00"], fri: ["00:00-24:00"], sat: ["00:00-24:00"],
            sun: ["00:00-24:00"]}
policies:
  - name: hot
    when: {source: [paid_search, referral], min_score: 80}
    target_hours: 1
    calendar: paris
  - name: q1-push
    when: {campaign_id: [spring]}
    target_hours: 2
    calendar: paris
    effective_from: "2026-01-01T00:00:00+01:00"
    effective_until: "2026-02-15T00:00:00+01:00"
  - name: night-desk
    when: {source: [night]}
    target_hours: 1
    calendar: paris_always
  - name: default
    target_hours: 24
    effective_from: "2026-01-01T00:00:00Z"
    effective_until: null
"""


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return parse_policies(POLICIES, "policies.yaml")


def paris(*parts: int, fold: int = 0) -> datetime:
    year, month, day, hour, minute, second, micro = (*parts, 0, 0, 0, 0)[:7]
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=PARIS, fold=fold)


def utc(*parts: int) -> datetime:
    year, month, day, hour, minute, second, micro = (*parts, 0, 0, 0, 0)[:7]
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def hot_lead(policies: PolicySet, mql_at: datetime) -> Policy:
    policy = policies.match(mql_at, "paid_search", None, 90)
    assert policy is not None and policy.name == "hot"
    return policy


# -- loading and matching ---------------------------------------------------------------------


def test_the_file_loads_in_order_with_its_calendars(policies: PolicySet) -> None:
    assert [p.name for p in policies.policies] == ["hot", "q1-push", "night-desk", "default"]
    assert [p.line for p in policies.policies] == [17, 21, 27, 31]
    assert sorted(policies.calendars) == ["paris", "paris_always"]
    assert policies.policies[0].calendar is policies.calendars["paris"]
    assert policies.policies[3].calendar is None


def test_the_shipped_example_is_valid() -> None:
    example = load_policies(EXAMPLE)
    assert example.policies[-1].name == "default"
    assert example.match(utc(2026, 3, 6, 12), "paid_search", None, 80) is example.policies[0]


def test_first_match_wins_and_every_test_must_hold(policies: PolicySet) -> None:
    monday = paris(2026, 1, 12, 10)
    assert _name(policies.match(monday, "referral", "spring", 80)) == "hot"
    assert _name(policies.match(monday, "referral", "spring", 79)) == "q1-push"
    assert _name(policies.match(monday, "web", "spring", 95)) == "q1-push"
    assert _name(policies.match(monday, "web", "autumn", 95)) == "default"
    assert _name(policies.match(monday, None, None, None)) == "default"


def test_min_score_fails_without_a_score(policies: PolicySet) -> None:
    assert _name(policies.match(paris(2026, 3, 9, 10), "paid_search", None, None)) == "default"


def test_no_policy_in_effect_means_none(policies: PolicySet) -> None:
    before = utc(2025, 12, 31, 23, 59, 59, 999_999)
    assert policies.match(before, "web", None, None) is None
    assert _name(policies.match(utc(2026, 1, 1), "web", None, None)) == "default"


def test_json_is_valid_yaml() -> None:
    document = yaml.safe_load(POLICIES)
    as_json = parse_policies(json.dumps(document, indent=2), "policies.json")
    assert as_json.fingerprint == parse_policies(POLICIES).fingerprint


def test_overlapping_spans_are_read_as_their_union() -> None:
    text = POLICIES.replace('tue: ["09:00-18:00"]', 'tue: ["13:00-18:00", "09:00-14:00"]')
    paris_calendar = parse_policies(text).calendars["paris"]
    tuesday = paris(2026, 3, 10)
    assert paris_calendar.business_seconds(tuesday, tuesday + timedelta(days=1)) == 9 * HOUR


def _name(policy: Policy | None) -> str | None:
    return None if policy is None else policy.name


# -- golden-style scenarios --------------------------------------------------------------------


def test_friday_evening_mql_in_paris(policies: PolicySet) -> None:
    mql_at = paris(2026, 3, 6, 17, 30)  # Friday, after the 17:00 close
    policy = hot_lead(policies, mql_at)
    deadline = paris(2026, 3, 9, 10)
    assert policy.deadline(mql_at) == deadline
    assert policy.business_seconds(mql_at, paris(2026, 3, 9, 9, 45)) == 45 * 60
    assert policy.status(mql_at, paris(2026, 3, 9, 9, 45), now=deadline) == "met"
    assert policy.status(mql_at, deadline, now=deadline) == "met"
    late = deadline + timedelta(microseconds=1)
    assert policy.status(mql_at, late, now=late) == "breached"
    assert policy.status(mql_at, None, now=paris(2026, 3, 8, 20)) == "pending"
    assert policy.status(mql_at, None, now=deadline) == "pending"
    assert policy.status(mql_at, None, now=late) == "breached"
    # The wall clock would have breached the same lead all weekend long.
    assert mql_at + timedelta(hours=1) < paris(2026, 3, 7)


def test_mql_on_a_holiday(policies: PolicySet) -> None:
    mql_at = paris(2026, 12, 25, 11)  # Christmas, a Friday
    policy = hot_lead(policies, mql_at)
    assert from_us(policy.clock_start_us(to_us(mql_at))) == paris(2026, 12, 28, 9)
    assert policy.deadline(mql_at) == paris(2026, 12, 28, 10)
    assert policy.business_seconds(mql_at, paris(2026, 12, 28, 9, 30)) == 30 * 60


def test_mql_just_before_the_spring_change(policies: PolicySet) -> None:
    mql_at = paris(2026, 3, 29, 1, 30)  # 02:00 jumps to 03:00 that night
    night = policies.match(mql_at, "night", None, None)
    assert night is not None and night.name == "night-desk"
    assert night.deadline(mql_at) == paris(2026, 3, 29, 3, 30)
    assert night.deadline(mql_at) == utc(2026, 3, 29, 1, 30)
    wall = policies.match(mql_at, "web", None, None)
    assert wall is not None and wall.name == "default"
    assert wall.deadline(mql_at) == paris(2026, 3, 30, 2, 30)  # 24 real hours, 1 h later locally


def test_mql_just_before_the_autumn_change(policies: PolicySet) -> None:
    mql_at = paris(2026, 10, 25, 2, 30)  # summer time; 02:00-03:00 comes again in winter time
    night = policies.match(mql_at, "night", None, None)
    assert night is not None
    deadline = night.deadline(mql_at)
    assert deadline == paris(2026, 10, 25, 2, 30, fold=1).astimezone(UTC)
    assert night.business_seconds(mql_at, paris(2026, 10, 25, 3, 30)) == 2 * HOUR


def test_a_segment_switch_by_score(policies: PolicySet) -> None:
    mql_at = paris(2026, 3, 9, 16)  # Monday
    hot = policies.match(mql_at, "paid_search", None, 80)
    cold = policies.match(mql_at, "paid_search", None, 79)
    assert hot is not None and hot.name == "hot"
    assert cold is not None and cold.name == "default"
    assert hot.deadline(mql_at) == paris(2026, 3, 9, 17)
    assert cold.deadline(mql_at) == paris(2026, 3, 10, 16)
    response = paris(2026, 3, 9, 18, 30)
    assert hot.status(mql_at, response, now=response) == "breached"
    assert cold.status(mql_at, response, now=response) == "met"
    assert cold.business_seconds(mql_at, response) == 2.5 * HOUR  # wall clock, no calendar
    assert hot.business_seconds(mql_at, response) == 2 * HOUR


def test_a_policy_expiring_mid_quarter(policies: PolicySet) -> None:
    last = paris(2026, 2, 14, 23, 59, 59, 999_999)
    expired = paris(2026, 2, 15)
    assert _name(policies.match(last, "web", "spring", None)) == "q1-push"
    assert _name(policies.match(expired, "web", "spring", None)) == "default"
    push = policies.match(last, "web", "spring", None)
    assert push is not None  # the policy of mql_at holds for the whole cycle, past its expiry
    assert push.deadline(last) == paris(2026, 2, 16, 11)
    assert _name(policies.match(paris(2026, 1, 1), "web", "spring", None)) == "q1-push"


def test_business_seconds_can_equal_the_target_and_still_breach(policies: PolicySet) -> None:
    mql_at = paris(2026, 3, 10, 17)  # Tuesday, one open hour left
    policy = hot_lead(policies, mql_at)
    response = paris(2026, 3, 10, 19)  # after the close
    assert policy.deadline(mql_at) == paris(2026, 3, 10, 18)
    assert policy.business_seconds(mql_at, response) == policy.target_hours * HOUR
    assert policy.status(mql_at, response, now=response) == "breached"


def test_a_response_before_the_mql_has_no_business_time(policies: PolicySet) -> None:
    mql_at = paris(2026, 3, 10, 11)
    policy = hot_lead(policies, mql_at)
    before = paris(2026, 3, 10, 10)
    assert policy.business_seconds(mql_at, before) == 0
    assert policy.status(mql_at, before, now=mql_at) == "met"
    wall = policies.match(mql_at, "web", None, None)
    assert wall is not None and wall.business_seconds(mql_at, before) == 0


def test_without_a_calendar_business_time_is_wall_time(policies: PolicySet) -> None:
    mql_at = paris(2026, 3, 7, 23, 0, 0, 1)
    wall = policies.match(mql_at, "web", None, None)
    assert wall is not None and wall.calendar is None
    response = mql_at + timedelta(hours=30, microseconds=7)
    assert wall.business_seconds(mql_at, response) == (response - mql_at).total_seconds()
    assert wall.deadline(mql_at) == mql_at + timedelta(hours=24)


# -- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_ignores_layout_comments_list_order_and_calendar_names() -> None:
    base = parse_policies(POLICIES).fingerprint
    reworded = (
        POLICIES.replace(
            "    when: {source: [paid_search, referral], min_score: 80}",
            "    when:  # two sources\n      min_score: 80\n      source: [referral, paid_search]",
        )
        .replace("paris_always", "everywhen")
        .replace('tue: ["09:00-18:00"]', 'tue: ["13:00-18:00", "09:00-13:00"]')
    )
    assert parse_policies(reworded).fingerprint == base
    unused = POLICIES.replace(
        "policies:\n", "  spare:\n    timezone: UTC\n    hours: {mon: ['09:00-10:00']}\npolicies:\n"
    )
    assert parse_policies(unused).fingerprint == base


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("target_hours: 24", "target_hours: 25"),
        ("min_score: 80", "min_score: 81"),
        ("name: default", "name: fallback"),
        ('"2027-01-01"', '"2027-01-02"'),
        ("timezone: Europe/Paris", "timezone: Europe/Berlin"),
        ('fri: ["09:00-17:00"]', 'fri: ["09:00-17:30"]'),
        ('"2026-02-15T00:00:00+01:00"', '"2026-02-15T00:00:00Z"'),
    ],
)
def test_fingerprint_changes_with_what_decides_results(old: str, new: str) -> None:
    assert old in POLICIES
    changed = parse_policies(POLICIES.replace(old, new, 1)).fingerprint
    assert changed != parse_policies(POLICIES).fingerprint


def test_fingerprint_changes_with_policy_order() -> None:
    document = yaml.safe_load(POLICIES)
    document["policies"][0], document["policies"][1] = (
        document["policies"][1],
        document["policies"][0],
    )
    swapped = parse_policies(json.dumps(document)).fingerprint
    assert swapped != parse_policies(POLICIES).fingerprint


# -- mistakes: one sentence naming the line, marked "# <-" in each case --------------------------

CALENDAR = """\
calendars:
  paris:
    timezone: Europe/Paris
    hours: {mon: ["09:00-18:00"]}
"""
POLICY = """\
policies:
  - name: default
    target_hours: 24
"""

MISTAKES = {
    "unknown top-level key": POLICY + "extra: 1  # <-\n",
    "unknown calendar key": CALENDAR + "    colour: blue  # <-\n" + POLICY,
    "unknown policy key": POLICY + "    target_minutes: 5  # <-\n",
    "unknown when key": POLICY + "    when: {source: [web],\n      score: 80}  # <-\n",
    "unknown weekday": CALENDAR.replace("{mon:", "{monday:  # <-\n       ") + POLICY,
    "unknown time zone": CALENDAR.replace("Europe/Paris", "Europe/Pariss  # <-") + POLICY,
    "bad span": CALENDAR.replace('{mon: ["09:00-18:00"]}', '\n      mon: ["9-18"]  # <-') + POLICY,
    "span closing before it opens": CALENDAR.replace(
        '{mon: ["09:00-18:00"]}',
        '\n      mon:\n        - "09:00-12:00"\n        - "22:00-02:00"  # <-',
    )
    + POLICY,
    "day not a list": CALENDAR.replace('{mon: ["09:00-18:00"]}', '\n      mon: "09:00-18:00"  # <-')
    + POLICY,
    "calendar never open": CALENDAR.replace(
        'hours: {mon: ["09:00-18:00"]}', "hours: {mon: []}  # <-"
    )
    + POLICY,
    "calendar without hours": "calendars:\n  paris:  # <-\n    timezone: UTC\n" + POLICY,
    "unknown calendar": POLICY + "    calendar: pariss  # <-\n",
    "target zero": POLICY.replace("target_hours: 24", "target_hours: 0  # <-"),
    "target negative": POLICY.replace("target_hours: 24", "target_hours: -1.5  # <-"),
    "target quoted": POLICY.replace("target_hours: 24", 'target_hours: "24"  # <-'),
    "target boolean": POLICY.replace("target_hours: 24", "target_hours: true  # <-"),
    "target infinite": POLICY.replace("target_hours: 24", "target_hours: .inf  # <-"),
    "target beyond a year": POLICY.replace("target_hours: 24", "target_hours: 9000  # <-"),
    "target missing": "policies:\n  - name: default  # <-\n    calendar: null\n",
    "when source not a list": POLICY + "    when:\n      source: paid_search  # <-\n",
    "when campaign not a list": POLICY + "    when: {campaign_id: spring}  # <-\n",
    "when list empty": POLICY + "    when: {source: []}  # <-\n",
    "when value not a text": POLICY + "    when: {campaign_id: [\n      2026]}  # <-\n",
    "min_score not a whole number": POLICY + "    when: {min_score: 80.5}  # <-\n",
    "min_score quoted": POLICY + '    when: {min_score: "80"}  # <-\n',
    "when not a mapping": POLICY + "    when: [web]  # <-\n",
    "duplicate policy name": POLICY + "  - target_hours: 1\n    name: default  # <-\n",
    "policy without a name": POLICY + "  - target_hours: 1  # <-\n",
    "policy name not a text": POLICY + "  - name: 2026  # <-\n    target_hours: 1\n",
    "holiday not quoted": CALENDAR + "    holidays: [2026-12-25]  # <-\n" + POLICY,
    "holiday not a date": CALENDAR
    + '    holidays:\n      - "2026-12-25"\n      - "2026-02-30"  # <-\n'
    + POLICY,
    "holiday in another format": CALENDAR + '    holidays: ["25/12/2026"]  # <-\n' + POLICY,
    "holidays not a list": CALENDAR + '    holidays: "2026-12-25"  # <-\n' + POLICY,
    "effective_from not quoted": POLICY + "    effective_from: 2026-01-01T00:00:00Z  # <-\n",
    "effective_from without offset": POLICY + '    effective_from: "2026-01-01T00:00:00"  # <-\n',
    "effective_until a date only": POLICY + '    effective_until: "2026-04-01"  # <-\n',
    "effective_until before effective_from": POLICY
    + '    effective_from: "2026-04-01T00:00:00Z"\n'
    + '    effective_until: "2026-04-01T00:00:00Z"  # <-\n',
    "duplicate key": POLICY + "    target_hours: 2  # <-\n",
    "duplicate calendar": CALENDAR + "  paris:  # <-\n    timezone: UTC\n" + POLICY,
    "not YAML": POLICY + "    calendar: paris: x  # <-\n",
    "no policies": CALENDAR.replace("calendars:", "calendars:  # <-"),
    "policies empty": "policies: []  # <-\n",
    "policies not a list": "policies:\n  name: default  # <-\n",
    "file not a mapping": "- name: default  # <-\n",
    "calendar not a mapping": "calendars:\n  paris: Europe/Paris  # <-\n" + POLICY,
}


@pytest.mark.parametrize("text", MISTAKES.values(), ids=MISTAKES.keys())
def test_each_mistake_is_one_sentence_naming_its_line(text: str) -> None:
    expected = next(n for n, line in enumerate(text.splitlines(), 1) if "# <-" in line)
    with pytest.raises(PolicyError) as caught:
        parse_policies(text, "sla.yaml")
    message = str(caught.value)
    assert caught.value.line == expected, message
    assert message.startswith(f"sla.yaml, line {expected}: "), message
    assert "\n" not in message


def test_mistake_messages_say_what_is_wrong() -> None:
    def message(name: str) -> str:
        with pytest.raises(PolicyError) as caught:
            parse_policies(MISTAKES[name], "sla.yaml")
        return caught.value.what

    assert "unknown key 'target_minutes'" in message("unknown policy key")
    assert "unknown time zone 'Europe/Pariss'" in message("unknown time zone")
    assert "less than one minute a week" in message("calendar never open")
    assert "unknown calendar 'pariss'" in message("unknown calendar")
    assert "must be a list, such as source: [paid_search]" in message("when source not a list")
    assert "used twice" in message("duplicate policy name")
    assert "in quotes" in message("holiday not quoted")
    assert "above 0" in message("target zero")


def test_an_empty_file_is_refused_at_line_1() -> None:
    with pytest.raises(PolicyError, match="line 1: the file is empty"):
        parse_policies("# nothing yet\n", "sla.yaml")


def test_a_second_document_or_a_control_character_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="line 4: this is not valid YAML"):
        parse_policies(POLICY + "---\n" + POLICY, "sla.yaml")
    with pytest.raises(PolicyError, match="line 2: this is not valid YAML"):
        parse_policies(POLICY.replace("default", "de\x07fault"), "sla.yaml")


def test_a_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policies(tmp_path / "absent.yaml")


# -- leadflow sla check -------------------------------------------------------------------------


def test_check_shows_the_policy_and_the_deadline_in_utc_and_local_time(tmp_path: Path) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text(POLICIES)
    result = check(path, "2026-03-06T16:30:00Z", source="paid_search", score=85)
    assert result.exit_code == 0
    text = "\n".join(result.lines)
    assert "valid, 4 policies, 2 calendars" in text
    assert "policy 'hot' (line 17) applies" in text
    assert "deadline 2026-03-09T09:00:00Z = 2026-03-09T10:00:00+01:00 Europe/Paris (CET)" in text
    assert "clock starts 2026-03-09T08:00:00Z" in text


def test_check_says_when_no_policy_applies(tmp_path: Path) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text(POLICIES)
    result = check(path, "2025-06-01T00:00:00+02:00")
    assert result.exit_code == 0
    assert result.lines[-1] == "no policy applies: this MQL gets no SLA"
    wall = check(path, datetime(2026, 6, 1, tzinfo=UTC), source="web")
    assert wall.lines[-1] == "deadline 2026-06-02T00:00:00Z"


def test_check_reports_the_mistake_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text(MISTAKES["unknown time zone"])
    result = check(path, "2026-03-06T16:30:00Z")
    assert result.exit_code == 1
    assert result.lines == [
        f"{path}, line 3: unknown time zone 'Europe/Pariss' in calendar "
        "'paris' (use an IANA name such as Europe/Paris)"
    ]


def test_check_refuses_a_bad_instant(tmp_path: Path) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text(POLICIES)
    result = check(path, "next friday")
    assert result.exit_code == 2
    assert "RFC 3339" in result.lines[0]
