"""The upstream versions a patch was written for, checked before it is installed."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata


class PatchVersionError(RuntimeError):
    """An installed upstream package is not the version a patch was written for."""


def require(patch: str, written_for: Mapping[str, str]) -> None:
    """Raise ``PatchVersionError`` unless every package in ``written_for`` has that version."""
    wrong = {
        package: installed
        for package, wanted in written_for.items()
        if (installed := _installed(package)) != wanted
    }
    if wrong:
        found = ", ".join(f"{p} {v or 'not installed'}" for p, v in wrong.items())
        wanted = ", ".join(f"{p}=={v}" for p, v in written_for.items())
        raise PatchVersionError(
            f"the {patch} patch was written for {wanted} and refuses to install on {found}: "
            "check the patch against the new version's code, then update its pins"
        )


def _installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
