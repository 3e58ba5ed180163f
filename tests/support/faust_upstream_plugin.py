"""pytest plugin for faust-streaming's own unit tests: leadflow's patches are installed first.

Loaded with ``-p`` (before faust's conftest), so every test runs against the patched
faust-streaming, as a leadflow worker does. It also runs faust's coroutine tests the way
pytest-asyncio 0.21 (which faust's tests are written for, and which needs pytest < 8) does:
each on the loop of faust's own ``event_loop`` fixture, set as the current loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable
from typing import Any

import _pytest.assertion.util as assertion_util
import pytest

from leadflow.pipeline.faust import patches
from leadflow.pipeline.settings import Settings


def _difference(left: Iterable[Any], right: Iterable[Any], verbose: int = 0) -> list[str]:
    """The two sides of a failed comparison, for a failure message only."""
    return [f"left: {left!r}", f"right: {right!r}"]


# faust's tests/conftest.py imports two helpers that pytest 8 no longer has; it uses them
# only to word the messages of its leak checks.
for _name in ("_compare_eq_dict", "_compare_eq_set"):
    if not hasattr(assertion_util, _name):
        setattr(assertion_util, _name, _difference)

patches.install(fetch_max_wait_ms=Settings.model_fields["fetch_max_wait_ms"].default)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "asyncio: a coroutine test (run by this plugin)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        coroutine = isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj)
        if coroutine and "event_loop" not in item.fixturenames:
            item.fixturenames.append("event_loop")


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any]) -> Any:
    result = yield
    if fixturedef.argname == "event_loop":
        asyncio.set_event_loop(result)
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    loop: asyncio.AbstractEventLoop = pyfuncitem.funcargs["event_loop"]  # type: ignore[assignment]
    names = pyfuncitem._fixtureinfo.argnames
    loop.run_until_complete(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
    return True
