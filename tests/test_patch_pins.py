"""Each Faust patch installs only on the upstream versions it was written for."""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from leadflow.pipeline.faust.patches import drain, fetch_wait, highwaters, pins, reset_policy

ROOT = Path(__file__).resolve().parents[1]
PATCHES: list[tuple[ModuleType, tuple[type, str]]] = [
    (drain, (Consumer, "_drain_messages")),
    (fetch_wait, (AIOKafkaConsumerThread, "_create_worker_consumer")),
    (highwaters, (AIOKafkaConsumerThread, "_highwaters")),
    (reset_policy, (AIOKafkaConsumerThread, "seek_to_committed")),
]


def _install(module: ModuleType) -> None:
    if module is fetch_wait:
        module.install(100)
    else:
        module.install()


@pytest.mark.parametrize("module, target", PATCHES, ids=lambda p: getattr(p, "__name__", ""))
def test_a_patch_refuses_another_version_and_leaves_the_code_alone(
    module: ModuleType, target: tuple[type, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, name = target
    before = owner.__dict__[name]
    package = next(iter(module.WRITTEN_FOR))
    real = pins.metadata.version
    monkeypatch.setattr(module, "_installed", False)
    monkeypatch.setattr(pins.metadata, "version", lambda p: "99.0.0" if p == package else real(p))
    with pytest.raises(pins.PatchVersionError, match=rf"{package} 99\.0\.0"):
        _install(module)
    assert owner.__dict__[name] is before


def test_every_patch_names_its_versions_in_its_docstring_and_they_are_the_pins() -> None:
    pinned = {}
    for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        if "==" in line:
            package, version = line.split("==")
            pinned[package.strip()] = version.strip()
    for module, _ in PATCHES:
        for package, version in module.WRITTEN_FOR.items():
            assert pinned.get(package) == version, (module.__name__, package)
            assert f"{package} {version}" in (module.__doc__ or ""), module.__name__


def test_the_installed_versions_are_the_ones_written_for() -> None:
    for module, _ in PATCHES:
        pins.require(module.__name__, module.WRITTEN_FOR)
