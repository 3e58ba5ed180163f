"""faust-streaming's own unit tests of the consumer and the aiokafka driver, patches installed.

The tests come from the sdist of the pinned faust-streaming on PyPI, which `make test` fetches
before pytest starts (tests/support/faust_sdist.py; none of faust's code is in this
repository). They run in a subprocess with tests/support/faust_upstream_plugin.py, which
installs leadflow's patches before faust's conftest is loaded. Every test passes except the
expected differences below, each a test that asserts the very call a patch replaces; an
expected difference that starts passing fails this test too, so the list stays true. After
an upgrade of the pin, this shows at once what the patches break.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

import pytest

from tests.support.faust_sdist import sdist_path
from tests.support.fixtures import unavailable

pytestmark = [pytest.mark.slow]

FILES = ["tests/unit/transport/test_consumer.py", "tests/unit/transport/drivers/test_aiokafka.py"]
PLUGIN = Path(__file__).parent / "support" / "faust_upstream_plugin.py"
EXPECTED_DIFFERENCES = {
    "tests.unit.transport.drivers.test_aiokafka.Test_AIOKafkaConsumerThread"
    "::test_seek_to_committed": (
        "asserts the thread calls aiokafka's seek_to_committed itself; the reset_policy "
        "patch calls it from _seek_to_committed_or_reset, then positions the partitions "
        "without a commit by consumer_auto_offset_reset"
    ),
}
MIN_PASSED = 250  # the two files hold 274 tests; fewer passing means they did not all run


def fetch_tests(into: Path) -> Path:
    """faust's test folder from the pinned version's sdist (fetched by `make test`), extracted
    under ``into``."""
    sdist = sdist_path()
    if not sdist.is_file():
        unavailable(f"NO faust-streaming SDIST at {sdist} (make test fetches it)")
    version = metadata.version("faust-streaming")
    root = into / "upstream"
    with tarfile.open(sdist) as archive:
        prefix = f"faust_streaming-{version}/"
        members = [m for m in archive.getmembers() if m.name.startswith(prefix + "tests/")]
        for member in members:
            member.name = member.name.removeprefix(prefix)
        archive.extractall(root, members=members, filter="data")
    missing = [f for f in FILES if not (root / f).is_file()]
    assert not missing, f"the faust-streaming {version} sdist lacks {missing}"
    return root


def outcomes(junit: Path) -> dict[str, str]:
    """Each test's id (module.Class::name) and outcome, from a JUnit XML report."""
    result = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        outcome = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
        result[test_id] = outcome
    return result


@pytest.mark.timeout(1100)
def test_faust_consumer_and_driver_tests_pass_with_the_patches(tmp_path: Path) -> None:
    root = fetch_tests(tmp_path)
    shutil.copy(PLUGIN, root / "leadflow_faust_plugin.py")
    (root / "pytest.ini").write_text("[pytest]\nxfail_strict = true\n")
    junit = tmp_path / "junit.xml"
    command = [sys.executable, "-m", "pytest", "-c", "pytest.ini", "-p", "leadflow_faust_plugin"]
    command += ["-p", "no:cacheprovider", "-q", "--timeout=30", f"--junitxml={junit}", *FILES]
    done = subprocess.run(
        command, cwd=root, env=_env(root), capture_output=True, text=True, timeout=400
    )
    assert junit.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    results = outcomes(junit)
    failed = {t for t, o in results.items() if o in ("failure", "error")}
    passed = sum(1 for o in results.values() if o == "passed")
    skipped = sum(1 for o in results.values() if o == "skipped")
    print(f"\nfaust upstream: {passed} passed, {skipped} skipped, {len(failed)} failed")
    assert failed - EXPECTED_DIFFERENCES.keys() == set(), done.stdout[-6000:]
    assert EXPECTED_DIFFERENCES.keys() - failed == set(), "an expected difference now passes"
    assert passed >= MIN_PASSED, done.stdout[-3000:]


def _env(root: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(root)
    return env
