"""The shared SQL store: models, migrations and the idempotent batch sink."""

from leadflow.sinks.engine import make_engine
from leadflow.sinks.migrate import upgrade
from leadflow.sinks.store import SqlSink

__all__ = ["SqlSink", "make_engine", "upgrade"]
