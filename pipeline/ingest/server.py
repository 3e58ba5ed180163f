"""`leadflow ingest`: load the tokens and presets, then serve until SIGINT or SIGTERM."""

from __future__ import annotations

import logging

from aiohttp import web

from leadflow.pipeline.ingest.app import build_app
from leadflow.pipeline.ingest.tokens import load_tokens
from leadflow.pipeline.settings import Settings


def run_ingest(settings: Settings) -> int:
    """Serve the ingestion API; refuses to start without LEADFLOW_INGEST_TOKENS."""
    tokens = load_tokens(settings.ingest_tokens)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for chatty in ("kafka", "aiokafka"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    app = build_app(settings, tokens)
    scopes = ", ".join(sorted({f"{t.name} ({t.scope})" for t in tokens}))
    print(
        f"leadflow ingest on http://{settings.ingest_host}:{settings.ingest_port} "
        f"for {scopes}; broker {settings.broker}",
        flush=True,
    )
    web.run_app(
        app,
        host=settings.ingest_host,
        port=settings.ingest_port,
        auto_decompress=False,
        access_log=None,
        shutdown_timeout=10.0,
        print=None,
    )
    return 0
