"""Loading an SLA policy file (YAML or JSON): every mistake is one sentence naming its line."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml  # type: ignore[import-untyped]

from leadflow.agents.sla.calendar import Calendar, to_us
from leadflow.agents.sla.instants import parse_date, parse_instant
from leadflow.agents.sla.model import Policy, PolicySet, Status, When
from leadflow.agents.sla.spans import WEEKDAYS, Span, parse_span

__all__ = [
    "Policy",
    "PolicyError",
    "PolicySet",
    "Status",
    "When",
    "load_policies",
    "parse_policies",
]

_TAG = "tag:yaml.org,2002:"
_TOP_KEYS = ("calendars", "policies")
_CALENDAR_KEYS = ("timezone", "hours", "holidays")
_POLICY_KEYS = ("name", "when", "target_hours", "calendar", "effective_from", "effective_until")
_WHEN_KEYS = ("source", "campaign_id", "min_score")
_MAX_TARGET_US = 8760 * 3_600_000_000  # a year: a deadline stays a bounded computation

Node = Any  # a yaml.Node (PyYAML ships no type hints)
Pairs = dict[str, tuple[Node, Node]]  # key -> (key node, value node)
T = TypeVar("T")


class PolicyError(ValueError):
    """A mistake in a policy file, with the file name and the 1-based line it is on."""

    def __init__(self, filename: str, line: int, what: str) -> None:
        super().__init__(f"{filename}, line {line}: {what}")
        self.filename, self.line, self.what = filename, line, what


def load_policies(path: str | Path) -> PolicySet:
    """The policies of the file at ``path``; PolicyError names the line of any mistake."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyError(str(source), 1, f"cannot read the file ({error})") from None
    return parse_policies(text, str(source))


def parse_policies(text: str, filename: str = "<policies>") -> PolicySet:
    """The policies of a policy file's text; PolicyError names the line of any mistake."""
    return _Reader(text, filename).policy_set()


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Reader:
    """Walks the composed YAML nodes, so every value keeps the line it came from."""

    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        try:
            self.loader = yaml.SafeLoader(text)
            self.root: Node = self.loader.get_single_node()
        except yaml.YAMLError as error:
            self.fail(*_yaml_mistake(error, text))

    def fail(self, node: Node | int, what: str) -> NoReturn:
        line = node if isinstance(node, int) else line_of(node)
        raise PolicyError(self.filename, line, what)

    def policy_set(self) -> PolicySet:
        root = self.root
        if root is None:
            self.fail(1, "the file is empty; it needs a 'policies' list")
        pairs = self.mapping(root, "the file", _TOP_KEYS)
        calendars: dict[str, Calendar] = {}
        if "calendars" in pairs:
            for name_node, value in self.mapping(pairs["calendars"][1], "'calendars'").values():
                calendars[name_node.value] = self.calendar(name_node, value)
        if "policies" not in pairs:
            self.fail(root, "the file has no 'policies' list")
        policies = self.policies(pairs["policies"][1], calendars)
        return PolicySet(policies, calendars)

    # -- structure ------------------------------------------------------------------------

    def mapping(self, node: Node, what: str, allowed: tuple[str, ...] | None = None) -> Pairs:
        """The keys of a mapping node; duplicate keys and keys not in ``allowed`` are mistakes."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping of 'key: value' lines")
        pairs: Pairs = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag != _TAG + "str":
                self.fail(key, f"a key of {what} is not a plain name")
            if allowed is not None and key.value not in allowed:
                known = ", ".join(allowed)
                self.fail(key, f"unknown key {key.value!r} in {what} (known keys: {known})")
            if key.value in pairs:
                first = line_of(pairs[key.value][0])
                self.fail(
                    key, f"key {key.value!r} of {what} is given twice (first on line {first})"
                )
            pairs[key.value] = (key, value)
        return pairs

    def sequence(self, node: Node, what: str, example: str) -> list[Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, f"{what} must be a list, such as {example}")
        return list(node.value)

    def string(self, node: Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _TAG + "str":
            self.fail(node, f"{what} must be a text in quotes")
        return str(node.value)

    def value(self, node: Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def parsed(self, node: Node, what: str, parse: Callable[[str], T]) -> T:
        """``parse`` of a quoted text; its ValueError becomes this node's mistake."""
        text = self.string(node, what)
        try:
            return parse(text)
        except ValueError as error:
            self.fail(node, f"{what}: {error}")

    # -- calendars ------------------------------------------------------------------------

    def calendar(self, name_node: Node, node: Node) -> Calendar:
        what = f"calendar {name_node.value!r}"
        pairs = self.mapping(node, what, _CALENDAR_KEYS)
        for required in ("timezone", "hours"):
            if required not in pairs:
                self.fail(name_node, f"{what} has no {required!r}")
        zone_node = pairs["timezone"][1]
        timezone = self.string(zone_node, f"the timezone of {what}")
        self.check_zone(zone_node, timezone, what)
        hours = self.hours(pairs["hours"][1], what)
        holidays = self.holidays(pairs["holidays"][1], what) if "holidays" in pairs else []
        try:
            return Calendar(timezone, hours, holidays)
        except ValueError as error:
            self.fail(pairs["hours"][0], f"{what}: {error}")

    def check_zone(self, node: Node, timezone: str, what: str) -> None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.fail(
                node,
                f"unknown time zone {timezone!r} in {what} (use an IANA name such as Europe/Paris)",
            )

    def hours(self, node: Node, what: str) -> dict[str, list[Span]]:
        hours: dict[str, list[Span]] = {}
        for day, (_, value) in self.mapping(node, f"the hours of {what}", WEEKDAYS).items():
            items = self.sequence(value, f"{day} of {what}", '["09:00-12:30", "13:30-18:00"]')
            hours[day] = [self.parsed(item, f"{day} of {what}", parse_span) for item in items]
        return hours

    def holidays(self, node: Node, what: str) -> list[date]:
        items = self.sequence(node, f"the holidays of {what}", '["2026-12-25", "2027-01-01"]')
        return [self.parsed(item, f"a holiday of {what}", parse_date) for item in items]

    # -- policies -------------------------------------------------------------------------

    def policies(self, node: Node, calendars: dict[str, Calendar]) -> tuple[Policy, ...]:
        items = self.sequence(node, "'policies'", "'- name: default' entries")
        if not items:
            self.fail(node, "'policies' is empty; list at least one policy")
        seen: dict[str, int] = {}
        return tuple(self.policy(item, calendars, seen) for item in items)

    def policy(self, node: Node, calendars: dict[str, Calendar], seen: dict[str, int]) -> Policy:
        """One policy; ``seen`` maps the names read so far to their lines."""
        pairs = self.mapping(node, "a policy", _POLICY_KEYS)
        name = self.name(node, pairs, seen)
        what = f"policy {name!r}"
        if "target_hours" not in pairs:
            self.fail(node, f"{what} has no 'target_hours'")
        calendar_name = self.calendar_name(pairs, calendars, what)
        effective_from, effective_until = self.window(pairs, what)
        return Policy(
            name=name,
            target_us=self.target_us(pairs["target_hours"][1], what),
            when=self.when(pairs["when"][1], what) if "when" in pairs else When(),
            calendar=None if calendar_name is None else calendars[calendar_name],
            calendar_name=calendar_name,
            effective_from_us=effective_from,
            effective_until_us=effective_until,
            line=line_of(node),
        )

    def name(self, node: Node, pairs: Pairs, seen: dict[str, int]) -> str:
        if "name" not in pairs:
            self.fail(node, "a policy has no 'name'")
        name_node = pairs["name"][1]
        name = self.string(name_node, "a policy's name")
        if not name:
            self.fail(name_node, "a policy's name is empty")
        if name in seen:
            self.fail(name_node, f"policy name {name!r} is used twice (first on line {seen[name]})")
        seen[name] = line_of(name_node)
        return name

    def target_us(self, node: Node, what: str) -> int:
        number = self.value(node) if node.tag in (_TAG + "int", _TAG + "float") else None
        target = (
            round(number * 3_600_000_000) if number is not None and math.isfinite(number) else 0
        )
        if not 0 < target <= _MAX_TARGET_US:
            self.fail(
                node, f"target_hours of {what} must be a number of hours above 0 and at most 8760"
            )
        return target

    def calendar_name(self, pairs: Pairs, calendars: dict[str, Calendar], what: str) -> str | None:
        if "calendar" not in pairs or pairs["calendar"][1].tag == _TAG + "null":
            return None
        node = pairs["calendar"][1]
        name = self.string(node, f"the calendar of {what}")
        if name not in calendars:
            known = ", ".join(sorted(calendars)) or "none"
            self.fail(node, f"{what} names unknown calendar {name!r} (defined: {known})")
        return name

    def instant(self, pairs: Pairs, key: str, what: str) -> int | None:
        if key not in pairs or pairs[key][1].tag == _TAG + "null":
            return None
        return to_us(self.parsed(pairs[key][1], f"{key} of {what}", parse_instant))

    def window(self, pairs: Pairs, what: str) -> tuple[int | None, int | None]:
        """(effective_from, effective_until) in µs; a bound left out or null is open."""
        start = self.instant(pairs, "effective_from", what)
        end = self.instant(pairs, "effective_until", what)
        if start is not None and end is not None and end <= start:
            until = pairs["effective_until"][1]
            self.fail(until, f"effective_until of {what} is not after its effective_from")
        return start, end

    def when(self, node: Node, what: str) -> When:
        pairs = self.mapping(node, f"'when' of {what}", _WHEN_KEYS)
        min_score = None
        if "min_score" in pairs:
            score_node = pairs["min_score"][1]
            if score_node.tag != _TAG + "int":
                self.fail(score_node, f"min_score of {what} must be a whole number")
            min_score = int(self.value(score_node))
        return When(
            source=self.allowed(pairs, "source", what),
            campaign_id=self.allowed(pairs, "campaign_id", what),
            min_score=min_score,
        )

    def allowed(self, pairs: Pairs, key: str, what: str) -> frozenset[str] | None:
        if key not in pairs:
            return None
        node = pairs[key][1]
        items = self.sequence(node, f"when.{key} of {what}", _list_example(key, node))
        if not items:
            self.fail(node, f"when.{key} of {what} is empty, so no lead would match")
        return frozenset(self.string(item, f"a value of when.{key} of {what}") for item in items)


def _list_example(key: str, node: Node) -> str:
    """How a list of the value given would be written: ``source: [paid_search]``."""
    shown = node.value if isinstance(node, yaml.ScalarNode) and node.value else "a, b"
    return f"{key}: [{shown}]"


def _yaml_mistake(error: Any, text: str) -> tuple[int, str]:
    """(line, what) of a YAML syntax error."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or getattr(error, "context", None) or str(error)
    if mark is not None:
        line = int(mark.line) + 1
    else:  # a reader error knows the character's position only
        line = text.count("\n", 0, int(getattr(error, "position", 0))) + 1
    return line, f"this is not valid YAML ({problem})"
