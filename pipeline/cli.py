"""The ``leadflow`` console script (docs/contract.md, section 6)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NoReturn

from leadflow.pipeline.settings import Settings, load_settings
from leadflow.schemas.errors import LeadflowError

Handler = Callable[[argparse.Namespace, Settings], int]
_INGEST_EXAMPLE = """\
LEADFLOW_INGEST_TOKENS=tokens.txt leadflow ingest
  tokens.txt holds `name scope token` lines (scope marketing, sales or all); then:
  curl -sS http://127.0.0.1:6068/v1/events \\
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{"event_id":"e-1","event_type":"lead.created","lead_id":"L-1",
         "occurred_at":"2026-03-02T09:00:00Z","source":"paid_search"}'
  answers {"accepted": 1, "refused": []} once the broker acknowledged the event.
  JSON Lines: -H 'Content-Type: application/x-ndjson' --data-binary @events.jsonl
  Limits: LEADFLOW_INGEST_MAX_EVENTS events (default 5000) and 5 MiB decoded a request."""


def _schemas(args: argparse.Namespace, settings: Settings) -> int:
    from leadflow.schemas.export import write_schemas

    paths = write_schemas(Path(args.directory))
    print(f"wrote {len(paths)} JSON Schema files to {args.directory}")
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from leadflow.pipeline.worker import run_worker

    return run_worker(settings, loglevel=args.loglevel)


def _broker(args: argparse.Namespace, settings: Settings) -> int:
    from leadflow.pipeline.kafka.broker import run_foreground

    host, _, port = settings.bootstrap_servers[0].rpartition(":")
    print(f"leadflow: embedded broker on {host}:{port} (memory only; Ctrl-C stops it)")
    return run_foreground(host, int(port), settings.tansu_bin)


def _db(args: argparse.Namespace, settings: Settings) -> int:
    from leadflow.sinks import upgrade

    upgrade(settings.store_url)
    print(f"database at {settings.store_shown} is up to date")
    return 0


def _rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from leadflow.pipeline.rebuild import QUIET, rebuild, summary

    config = settings.fold_config()  # SLA hours or policies, recycle reasons: restated
    quiet = timedelta(seconds=args.quiet_seconds) if args.quiet_seconds is not None else QUIET
    for line in summary(rebuild(settings.store_url, config, quiet=quiet)):
        print(line)
    return 0


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from leadflow.pipeline.publish.publishing import publish_file

    summary = publish_file(settings, Path(args.file), dry_run=args.dry_run, partial=args.partial)
    refused = len(summary.refused)
    if args.dry_run:
        print(f"dry run: {summary.valid} events valid, {refused} lines refused; nothing published")
    elif refused and not args.partial:
        print(
            f"published nothing: {refused} lines refused; fix them, or publish the valid lines"
            " with --partial"
        )
    else:
        print(f"published {summary.sent} events, refused {refused} lines")
    return 1 if refused else 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from leadflow.pipeline.publish.publishing import send_simulated, simulated_traffic

    messages = simulated_traffic(args.leads, args.seed, args.key_mode)
    sent = send_simulated(settings, messages, args.rate)
    bad = sum(1 for m in messages if not m.valid)
    print(f"published {sent} messages for {args.leads} leads ({bad} deliberately bad)")
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from leadflow.pipeline.reporting import run_report
    from leadflow.pipeline.reporting.model import ReportQuery

    query = ReportQuery(
        since=args.since,
        until=args.until,
        source=args.source,
        campaign=args.campaign,
        by=args.by,
        details=True,
    )
    if args.since and args.until and args.since > args.until:
        raise LeadflowError("--since comes after --until; swap them")
    if args.output is None:
        return run_report(settings.store_url, args.format, sys.stdout, query, full=args.full)
    try:
        with open(args.output, "w", encoding="utf-8") as out:
            code = run_report(settings.store_url, args.format, out, query, full=args.full)
    except OSError as error:
        raise LeadflowError(
            f"cannot write {args.output} ({error.strerror}); choose another --output"
        ) from None
    print(f"wrote the {args.format} report to {args.output}", file=sys.stderr)
    return code


def _dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from leadflow.pipeline.dashboard.server import serve_dashboard

    return serve_dashboard(settings.store_url, args.host, args.port)


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from leadflow.pipeline.ingest.server import run_ingest

    return run_ingest(settings)


def _day(text: str) -> date:
    from leadflow.pipeline.reporting.model import check_day

    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date such as 2026-03-31, got {text!r}"
        ) from None
    try:
        return check_day("the date", day)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port {value} is out of range: use 1 to 65535")
    return value


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from leadflow.pipeline.demo import run_demo

    return run_demo(settings, args.leads, args.seed, args.keep_running, args.keep_store)


def _goals(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from sqlalchemy.exc import DBAPIError

    from leadflow.pipeline.reporting.formats import goals_table
    from leadflow.sinks import make_engine
    from leadflow.sinks.goals import goal_progress, parse_period

    if args.period is not None:
        parse_period(args.period)
    _prepare_goals_store(settings.store_url)
    engine = make_engine(settings.store_url)
    try:
        _change_goals(engine, args)
        with engine.connect() as conn:
            progress = goal_progress(conn, args.period)
    except DBAPIError as error:
        if "permission denied" in str(error.orig):
            raise LeadflowError(
                f"this database role may not {args.action} shared goals"
                " (leadflow_leadership may); connect as a role that may"
            ) from None
        raise
    finally:
        engine.dispose()
    Console(markup=False, emoji=False).print(goals_table(progress))
    return 0


def _prepare_goals_store(url: str) -> None:
    """Migrate a store without the goals table; one that has it is used as it is.

    Roles other than the migrating one (leadership) may not migrate, and need not.
    """
    from sqlalchemy import inspect

    from leadflow.sinks import make_engine, upgrade

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            present = inspect(conn).has_table("shared_goals")
    finally:
        engine.dispose()
    if not present:
        upgrade(url)


def _change_goals(engine: Any, args: argparse.Namespace) -> None:
    from leadflow.sinks.goals import delete_goals, make_goal, set_goal

    if args.action == "set":
        if args.period is None or args.metric is None or args.target is None:
            raise LeadflowError("goals set needs --period, --metric and --target")
        set_goal(engine, make_goal(args.period, args.metric, args.target, args.currency))
    elif args.action == "delete":
        if args.period is None:
            raise LeadflowError("goals delete needs --period (and optionally --metric, --currency)")
        if not delete_goals(engine, args.period, args.metric, args.currency):
            raise LeadflowError(
                f"no goal of {args.period} matches; `leadflow goals list` shows them"
            )


def _fx(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import DBAPIError

    from leadflow.sinks import make_engine, upgrade
    from leadflow.sinks.fx import load_rates, parse_rates

    rates = parse_rates(Path(args.file))  # every line checked before anything is written
    upgrade(settings.store_url)
    engine = make_engine(settings.store_url)
    try:
        count = load_rates(engine, rates, args.to)
    except DBAPIError as error:
        if "permission denied" in str(error.orig):
            raise LeadflowError(
                "this database role may not load rates (leadflow_leadership may)"
            ) from None
        raise
    finally:
        engine.dispose()
    print(f"loaded {count} rates into {args.to.upper()} from {args.file}")
    return 0


def _sla(args: argparse.Namespace, settings: Settings) -> int:
    from leadflow.agents.sla.check import check

    result = check(args.file, args.at, args.source, args.campaign, args.score)
    print("\n".join(result.lines))
    return result.exit_code


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("leadflow")
    except PackageNotFoundError:
        return "(not installed)"


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose every error is one sentence on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
        sentence = shown[:1].upper() + shown[1:].rstrip(".")
        self.exit(2, f"{self.prog}: {sentence}; see `{self.prog} --help`.\n")


# name, handler, one-line help, example -> the command's parser
AddCommand = Callable[[str, Handler, str, str], argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="leadflow",
        description="Join marketing and sales lead events into one shared SQL store.",
        epilog="Settings come from LEADFLOW_* environment variables; see README.md.",
    )
    parser.add_argument("--version", action="version", version=f"leadflow {_version()}")
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

    _add_pipeline_commands(add)
    _add_results_commands(add)
    _add_store_commands(add)
    return parser


def _add_pipeline_commands(add: AddCommand) -> None:
    """Commands of the pipeline and its inputs: workers, brokers, traffic, HTTP ingestion."""
    sub = add(
        "worker",
        _worker,
        "run a pipeline worker (all agents); creates or migrates the tables first",
        "LEADFLOW_BROKER=kafka://127.0.0.1:9092 leadflow worker",
    )
    sub.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    add(
        "broker",
        _broker,
        "run the embedded Kafka-compatible broker (Tansu, memory only) in the foreground",
        "LEADFLOW_BROKER=kafka://127.0.0.1:9092 leadflow broker",
    )
    sub = add(
        "demo",
        _demo,
        "the main job on embedded defaults: broker, worker, simulated traffic and SQLite, "
        "then the funnel report",
        "leadflow demo --leads 500",
    )
    sub.add_argument("--leads", type=_positive, default=5000, help="leads to simulate")
    sub.add_argument("--seed", type=int, default=1, help="seed of the simulated traffic")
    sub.add_argument(
        "--keep-running", action="store_true", help="keep serving /metrics until Ctrl-C"
    )
    sub.add_argument(
        "--keep-store",
        action="store_true",
        help="add to the existing store (default: a fresh one; a SQLite file is moved aside)",
    )
    sub = add(
        "simulate",
        _simulate,
        "publish realistic synthetic marketing and sales events",
        "LEADFLOW_COMPRESSION=zstd leadflow simulate --leads 1000 --rate 500 --seed 7",
    )
    sub.add_argument("--leads", type=_positive, default=1000, help="leads to simulate")
    sub.add_argument("--rate", type=float, default=0.0, help="messages per second (0: no limit)")
    sub.add_argument("--seed", type=int, default=1, help="seed: same seed, same traffic")
    sub.add_argument(
        "--key-mode",
        choices=["lead_id", "none", "random"],
        default="lead_id",
        help="message keys: the lead_id (as producers should), none, or random",
    )
    sub = add(
        "publish",
        _publish,
        "publish events from a JSON Lines file: every line is validated first, and a file with"
        " a refused line publishes nothing unless --partial (exit 1 if any line is refused)",
        "leadflow publish --dry-run events.jsonl && leadflow publish events.jsonl\n"
        "         LEADFLOW_COMPRESSION=lz4 leadflow publish events.jsonl",
    )
    sub.add_argument(
        "file", help='JSON Lines: {"topic": "marketing"|"sales", "value": {...}} or a bare event'
    )
    sub.add_argument("--dry-run", action="store_true", help="validate only; publish nothing")
    sub.add_argument(
        "--partial", action="store_true", help="publish the valid lines even if some are refused"
    )
    add(
        "ingest",
        _ingest,
        "serve the HTTP ingestion API (POST /v1/events, GET /v1/health, /metrics, preset hooks)"
        " for producers that cannot speak Kafka; put TLS termination in front of it",
        _INGEST_EXAMPLE,
    )
    sub = add(
        "schemas",
        _schemas,
        "write the JSON Schema of every event type, and one for all types",
        "leadflow schemas ./event-schemas",
    )
    sub.add_argument(
        "directory",
        help="folder for <event_type>.schema.json files and leadflow-event.schema.json",
    )


def _add_results_commands(add: AddCommand) -> None:
    """Commands of the shared results: the report, the dashboard, goals, exchange rates."""
    sub = add(
        "report",
        _report,
        "print the funnel, conversion, speed-to-lead, SLA and revenue report from the store",
        "leadflow report --since 2026-01-01 --until 2026-03-31 --by campaign\n"
        "         leadflow report --format html --output funnel.html   # to mail to a director",
    )
    sub.add_argument(
        "--format",
        choices=["table", "json", "csv", "html"],
        default="table",
        help="html: one self-contained file with the charts (default: table)",
    )
    sub.add_argument("--since", type=_day, help="first UTC day included, e.g. 2026-01-01")
    sub.add_argument("--until", type=_day, help="last UTC day included, e.g. 2026-03-31")
    sub.add_argument(
        "--by",
        choices=["source", "campaign", "owner"],
        default="source",
        help="break the funnel down by the lead's source, campaign or owner (default: source)",
    )
    sub.add_argument("--source", help="only leads of this source ('unknown' for none)")
    sub.add_argument("--campaign", help="only leads of this campaign ('unknown' for none)")
    sub.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    sub.add_argument(
        "--full",
        action="store_true",
        help="table: every row of every breakdown (default: the top rows of each)",
    )
    sub = add(
        "dashboard",
        _dashboard,
        "serve the funnel dashboard from the store, without a worker (no login: put it behind"
        " your proxy)",
        "LEADFLOW_DATABASE_URL=sqlite:///leadflow.db leadflow dashboard --port 8066",
    )
    sub.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    sub.add_argument("--port", type=_port, default=8066, help="port to listen on (default: 8066)")
    sub = add(
        "goals",
        _goals,
        "shared goals of both teams: set or delete one, or list them with their progress",
        "leadflow goals set --period 2026-Q4 --metric won_revenue --currency EUR --target 250000",
    )
    sub.add_argument("action", choices=["set", "list", "delete"])
    sub.add_argument(
        "--period", help="a year, quarter or month: 2026, 2026-Q4, 2026-11 (list: only its goals)"
    )
    sub.add_argument("--metric", choices=["won_revenue", "won_deals", "mqls", "sql"])
    sub.add_argument("--currency", help="three letters; required for won_revenue")
    sub.add_argument("--target", help="the number to reach in the period")
    sub = add(
        "fx",
        _fx,
        "exchange rates into one reporting currency: load a CSV (currency,day,rate); a bad"
        " line loads nothing",
        "leadflow fx load rates.csv --to EUR",
    )
    sub.add_argument("action", choices=["load"])
    sub.add_argument("file", help="CSV with the header currency,day,rate (rate: units of --to)")
    sub.add_argument("--to", required=True, help="the reporting currency, e.g. EUR")


def _add_store_commands(add: AddCommand) -> None:
    """Commands of the store and its settings: SLA policies, rebuild, migrations."""
    sub = add(
        "sla",
        _sla,
        "check an SLA policy file: which policy applies to an MQL, and its deadline",
        "leadflow sla check policies.yaml --at 2026-12-04T17:30:00+01:00 --source referral"
        " --score 85",
    )
    sub.add_argument("action", choices=["check"])
    sub.add_argument("file", help="the YAML (or JSON) policy file, as LEADFLOW_SLA_POLICIES names")
    sub.add_argument("--at", help="the MQL instant, RFC 3339 with offset (default: now)")
    sub.add_argument("--source", help="the lead's source")
    sub.add_argument("--campaign", help="the lead's campaign_id")
    sub.add_argument("--score", type=int, help="the lead's score at MQL")
    sub = add(
        "rebuild",
        _rebuild,
        "recompute every derived table from lead_events with the current settings "
        "(stop the workers first)",
        "LEADFLOW_SLA_HOURS=8 leadflow rebuild",
    )
    sub.add_argument(
        "--quiet-seconds",
        type=float,
        default=None,
        help="refuse if the store was written less than this ago (default 60)",
    )
    db = add("db", _db, "database commands: upgrade applies the migrations", "leadflow db upgrade")
    db.add_argument("action", choices=["upgrade"])


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
    except OSError as exc:  # a path the user gave: not found, not a directory, no permission
        where = f": {exc.filename}" if exc.filename else ""
        print(f"leadflow: {exc.strerror or exc}{where}; check the path", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(
            f"leadflow: unexpected {type(exc).__name__}"
            + (f" ({detail[:200]})" if detail else "")
            + "; please report it with the command you ran",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
