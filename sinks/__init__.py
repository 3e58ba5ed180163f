"""The shared SQL store: models, migrations and the idempotent batch sink."""

from sinks.engine import make_engine
from sinks.migrate import upgrade
from sinks.store import SqlSink

__all__ = ["SqlSink", "make_engine", "upgrade"]
