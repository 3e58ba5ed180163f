"""The `publish FILE` and `simulate` commands: validated events onto the input topics."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from leadflow.pipeline.kafka.producer import Publisher
from leadflow.pipeline.kafka.topics import ensure_topics
from leadflow.pipeline.publish.jsonl import Outgoing, Refusal, iter_jsonl
from leadflow.pipeline.publish.simulate import SimMessage, simulate
from leadflow.pipeline.settings import Settings
from leadflow.schemas.errors import LeadflowError


@dataclass(frozen=True, slots=True)
class PublishSummary:
    sent: int
    refused: list[Refusal]
    valid: int = 0  # lines that passed validation (sent unless a dry run or refusals stop it)


def _progress(console: Console, total: int | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


def publish_file(
    settings: Settings,
    path: Path,
    err: TextIO = sys.stderr,
    *,
    dry_run: bool = False,
    partial: bool = False,
) -> PublishSummary:
    """Validate every line of a JSON Lines file, then send the valid ones.

    A file with a refused line sends nothing unless ``partial``; ``dry_run`` only validates.
    Refused lines are reported with their number either way.
    """
    if not path.is_file():
        raise LeadflowError(f"no such file: {path}; give the path of a JSON Lines file")
    console = Console(file=err)
    now = datetime.now(UTC)
    refused: list[Refusal] = []
    valid = 0
    for item in iter_jsonl(path, now):
        if isinstance(item, Refusal):
            refused.append(item)
        else:
            valid += 1
    for refusal in refused:
        console.print(
            f"line {refusal.line_no}: refused ({refusal.reason}): {refusal.error}",
            markup=False,
            highlight=False,
        )
    if dry_run or (refused and not partial):
        return PublishSummary(0, refused, valid)
    return PublishSummary(_send_file(settings, path, now, console), refused, valid)


def _send_file(settings: Settings, path: Path, now: datetime, console: Console) -> int:
    """Send the valid lines of ``path`` (validated against the same ``now``); their count."""
    total = sum(1 for _ in path.open("rb"))
    ensure_topics(settings)
    sent = 0
    with Publisher(settings) as publisher, _progress(console, total) as progress:
        task = progress.add_task(f"publishing {path.name}", total=total)
        for item in iter_jsonl(path, now):
            if isinstance(item, Outgoing):
                publisher.send(item.topic_kind, item.key, item.value)
                sent += 1
            progress.update(task, completed=item.line_no)
        progress.update(task, completed=total)
    return sent


def send_simulated(
    settings: Settings, messages: list[SimMessage], rate: float, err: TextIO = sys.stderr
) -> int:
    """Publish simulated messages, at ``rate`` messages per second (0: as fast as possible)."""
    ensure_topics(settings)
    console = Console(file=err)
    started = time.monotonic()
    with Publisher(settings) as publisher, _progress(console, len(messages)) as progress:
        task = progress.add_task("simulating", total=len(messages))
        for n, message in enumerate(messages, start=1):
            publisher.send(message.topic_kind, message.key, message.value)
            if rate > 0:
                ahead = n / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            if n % 500 == 0:
                progress.update(task, completed=n)
        progress.update(task, completed=len(messages))
    return len(messages)


def simulated_traffic(leads: int, seed: int, key_mode: str = "lead_id") -> list[SimMessage]:
    """The simulator's messages for ``leads`` leads, ending now."""
    return simulate(leads, seed, datetime.now(UTC), key_mode=key_mode)
