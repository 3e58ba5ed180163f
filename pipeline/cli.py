"""The ``leadflow`` console script (contract section 6)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.errors import LeadflowError
from pipeline.settings import Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _schemas(args: argparse.Namespace, settings: Settings) -> int:
    from schemas.export import write_schemas

    paths = write_schemas(Path(args.directory))
    print(f"wrote {len(paths)} JSON Schema files to {args.directory}")
    return 0


def _not_yet(name: str) -> Handler:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        raise LeadflowError(f"'leadflow {name}' is not available yet in this version")

    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadflow",
        description="Join marketing and sales lead events into one shared SQL store.",
        epilog="Settings come from LEADFLOW_* environment variables; see README.md.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: Handler, help_text: str, example: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"example: {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handler)
        return sub

    sub = add(
        "schemas",
        _schemas,
        "write the JSON Schema of every event type",
        "leadflow schemas ./event-schemas",
    )
    sub.add_argument("directory", help="folder to write <event_type>.schema.json files into")
    for name, help_text in (
        ("worker", "run a pipeline worker (all agents); migrates the tables first"),
        ("broker", "run the embedded Kafka-compatible broker in the foreground"),
        ("demo", "the main job on embedded defaults, then a funnel report"),
        ("simulate", "publish realistic synthetic marketing and sales events"),
        ("report", "print the funnel, conversion, speed-to-lead and SLA report"),
    ):
        add(name, _not_yet(name), help_text, f"leadflow {name}")
    sub = add(
        "publish",
        _not_yet("publish"),
        "publish events from a JSON Lines file",
        "leadflow publish events.jsonl",
    )
    sub.add_argument("file")
    db = add("db", _not_yet("db"), "database commands", "leadflow db upgrade")
    db.add_argument("action", choices=["upgrade"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, and turn every expected failure into one line on stderr."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        handler: Handler = args.handler
        return handler(args, settings)
    except LeadflowError as exc:
        print(f"leadflow: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
