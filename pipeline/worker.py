"""Running one pipeline worker: migrate the store, create the topics, run the Faust app."""

from __future__ import annotations

import logging
import sys

from leadflow.pipeline.kafka.topics import ensure_topics
from leadflow.pipeline.settings import Settings
from leadflow.schemas.errors import LeadflowError

log = logging.getLogger("leadflow")


def run_worker(settings: Settings, loglevel: str = "info") -> int:
    """Run until SIGTERM/Ctrl-C; 0 on a clean stop, 1 when a fatal error stopped the worker."""
    import faust

    from leadflow.pipeline.faust.app import create_app
    from leadflow.pipeline.faust.memory import TRIM_SECONDS, malloc_trimmer, pace_collector
    from leadflow.sinks import make_engine, upgrade
    from leadflow.sinks.process import ProcessSink

    settings.fold_config()  # a bad SLA policy file stops the worker before anything starts
    upgrade(settings.store_url)
    counts = ensure_topics(settings)
    engine = make_engine(settings.store_url)
    # Store writes run in a child process: beside the fold, not under the same GIL.
    sink = ProcessSink(settings.store_url, settings.store_retry_max_seconds)
    sink.start()
    app = create_app(settings, sink=sink, partition_counts=counts, store=engine)
    pace_collector()
    trim = malloc_trimmer()
    if trim is not None:

        @app.timer(interval=TRIM_SECONDS, on_leader=False)  # type: ignore[untyped-decorator]
        async def release_free_memory() -> None:
            trim()

    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # Faust's terminal spinner puts the root logger at DEBUG when the level is WARNING or
    # above, so every Kafka client built a debug record per message (5% of the event loop).
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass
    finally:
        app.processor.close()
        sink.close()
    fatal = app.leadflow.fatal
    if fatal:
        raise LeadflowError(f"worker stopped: {fatal}")
    return 0


if __name__ == "__main__":  # pragma: no cover - `leadflow worker` is the entry point
    from leadflow.pipeline.settings import load_settings

    sys.exit(run_worker(load_settings()))
