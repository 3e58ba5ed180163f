"""The pinned faust-streaming's sdist, whose unit tests tests/test_faust_upstream.py runs.

`make test` fetches it from PyPI before pytest starts (``python -m tests.support.faust_sdist``),
checked against PyPI's sha256, so that the tests themselves touch only loopback addresses.
"""

from __future__ import annotations

import hashlib
import json
import sys
import urllib.request
from importlib import metadata
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[2] / "build" / "faust-sdist"
INDEX = "https://pypi.org/simple/faust-streaming/"  # PEP 691: the simple index as JSON
ACCEPT = "application/vnd.pypi.simple.v1+json"


def sdist_path() -> Path:
    """Where the sdist of the installed faust-streaming lies once fetched."""
    return FOLDER / f"faust_streaming-{metadata.version('faust-streaming')}.tar.gz"


def fetch() -> Path:
    """The sdist, downloaded unless it is there already."""
    target = sdist_path()
    if target.is_file():
        return target
    version = metadata.version("faust-streaming")
    request = urllib.request.Request(INDEX, headers={"Accept": ACCEPT})
    with urllib.request.urlopen(request, timeout=60) as answer:
        files = json.load(answer)["files"]
    (sdist,) = (f for f in files if f["filename"] == target.name)
    with urllib.request.urlopen(sdist["url"], timeout=120) as answer:
        data = answer.read()
    if hashlib.sha256(data).hexdigest() != sdist["hashes"]["sha256"]:
        raise SystemExit(f"the faust-streaming {version} sdist does not match PyPI's sha256")
    FOLDER.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


if __name__ == "__main__":
    try:
        print(f"faust-streaming sdist for the upstream tests: {fetch()}")
    except OSError as error:  # offline: that one test then says what is missing
        print(f"WARNING: could not fetch the faust-streaming sdist: {error}", file=sys.stderr)
