"""Every CLI mistake is one sentence, never a traceback (issue 20, item 5)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.pipeline.cli import build_parser
from leadflow.pipeline.settings import redact_url

REPO = Path(__file__).resolve().parents[1]
WORDS = st.sampled_from(
    [
        "report", "goals", "set", "list", "delete", "dashboard", "demo", "publish", "db",
        "upgrade", "simulate", "--since", "--until", "--port", "--target", "--period",
        "--metric", "--format", "--by", "--leads", "--rate", "--seed", "--full", "-o",
        "9999-12-31", "0001-01-01", "2026-02-30", "99999", "-1", "1e30", "nan", "[/bold]",
        "=1+1", "html", "mqls", "2026-Q5", "", "--", "-", "\x00", "é",
    ]
)  # fmt: skip


def _parse(argv: list[str]) -> tuple[int | None, str]:
    err = io.StringIO()
    code: int | None = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(argv)
        except SystemExit as stop:
            code = int(stop.code or 0)
    return code, err.getvalue()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(WORDS, st.text(max_size=12)), max_size=8))
def test_the_parser_answers_in_one_sentence(argv: list[str]) -> None:
    code, err = _parse(argv)
    if code not in (None, 0):  # --help prints more, and exits 0
        assert code == 2
        assert err.count("\n") == 1 and err.startswith("leadflow"), err
        assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--until", "9999-12-31"],
        ["report", "--since", "0001-01-01"],
        ["dashboard", "--port", "99999"],
        ["dashboard", "--port", "http"],
        ["demo", "--leads", "many"],
    ],
)
def test_bad_values_are_named(argv: list[str]) -> None:
    code, err = _parse(argv)
    assert code == 2 and err.count("\n") == 1
    assert argv[-1] in err


def _leadflow(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadflow", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=REPO,
        timeout=60,
    )


def test_commands_answer_one_sentence(tmp_path: Path) -> None:
    store = {"LEADFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    cases = [
        (("report", "--until", "9999-12-31"), store, "out of range"),
        (("dashboard", "--port", "99999"), store, "out of range"),
        (("goals", "set", "--period", "2026", "--metric", "mqls", "--target", "1e30"), store,
         "at most"),
        (("report",), {"LEADFLOW_DATABASE_URL": "postgresql+psycopg://u:pw@h:abc/db"}, "port"),
        (("report",), {"LEADFLOW_DATABASE_URL": "postgresql+psycopg://u:pw@h:70000/db"}, "port"),
    ]  # fmt: skip
    for args, env, needle in cases:
        done = _leadflow(*args, **env)
        assert done.returncode in (1, 2), (args, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        assert needle in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "password", ["p@ss", "a@b@c", "x:y", "sl/ash", "q?uery", "h#ash", "%40", "@", "white space"]
)
def test_a_password_is_masked_whatever_it_holds(password: str) -> None:
    shown = redact_url(f"postgresql+psycopg://bob:{password}@db.example:5432/leads")
    assert shown == "postgresql+psycopg://bob:***@db.example:5432/leads"
    assert redact_url(f"postgresql://bob@h/db?password={password}&sslmode=require") == (
        "postgresql://bob@h/db?password=***&sslmode=require"
    )


def test_a_password_is_never_printed(tmp_path: Path) -> None:
    url = "postgresql+psycopg://bob:s3cr@t@127.0.0.1:1/leads?connect_timeout=1"
    done = _leadflow("report", LEADFLOW_DATABASE_URL=url)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "s3cr" not in done.stderr + done.stdout and "t@127" not in done.stderr
    assert "%40" in done.stderr
