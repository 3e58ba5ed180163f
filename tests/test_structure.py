"""The layout's promises: one import root, layers that point one way, no import cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from importlib.metadata import distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Lower layers first; a module may import its own layer and the ones before it.
LAYERS = ("schemas", "sinks", "agents", "pipeline")


def modules() -> dict[str, Path]:
    """Every product module by its installed dotted name."""
    found = {"leadflow": ROOT / "leadflow" / "__init__.py"}
    for path in (ROOT / "leadflow").glob("*.py"):
        if path.name != "__init__.py":
            found[f"leadflow.{path.stem}"] = path
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(("leadflow", *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def imports_of(path: Path, name: str) -> set[str]:
    """Every leadflow module ``path`` imports, lazily or not, at any depth of the code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in out if m == "leadflow" or m.startswith("leadflow.")}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {
        name: {m for m in imports_of(path, name) if m in found and m != name}
        for name, path in found.items()
    }


def layer_of(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_no_module_imports_a_higher_layer() -> None:
    wrong = []
    for name, targets in graph().items():
        mine = layer_of(name)
        if mine is None:
            continue
        for target in targets:
            theirs = layer_of(target)
            if theirs is not None and theirs > mine:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_there_is_no_import_cycle() -> None:
    edges = graph()
    # A package's __init__ is imported with each of its modules; only real edges count.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_structure_check_sees_a_wrong_import(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("from leadflow.pipeline.settings import Settings\nfrom . import vocabulary\n")
    assert imports_of(source, "leadflow.schemas.probe") == {
        "leadflow.pipeline.settings",
        "leadflow.pipeline.settings.Settings",
        "leadflow.schemas",
        "leadflow.schemas.vocabulary",
    }
    assert layer_of("leadflow.pipeline.settings") > layer_of("leadflow.schemas.probe")  # type: ignore[operator]


def test_every_package_folder_is_installed() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    packages = {name for name, path in modules().items() if path.name == "__init__.py"}
    assert packages - listed == set()


def test_the_distribution_installs_one_top_level_package() -> None:
    top_level = distribution("leadflow").read_text("top_level.txt")
    assert top_level is not None
    assert top_level.split() == ["leadflow"]


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "import leadflow, leadflow.pipeline.cli; print(leadflow.__name__)"],
        [sys.executable, "-m", "leadflow", "--help"],
    ],
    ids=["import", "python-m"],
)
def test_leadflow_imports_and_runs_from_anywhere(command: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "leadflow" in done.stdout


def test_bare_layer_imports_are_refused_by_the_linter(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from pipeline.settings import Settings\n\nprint(Settings)\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--config",
            str(ROOT / "pyproject.toml"),
            str(probe),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "TID251" in done.stdout


def test_no_file_holds_a_merge_conflict_marker() -> None:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    markers = ("<<<<<<< ", ">>>>>>> ")
    found = []
    for name in listed:
        path = ROOT / name
        if path.suffix in {".png", ".gz"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [
            f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if line.startswith(markers)
        ]
    assert found == []


def test_no_test_module_imports_another() -> None:
    wrong = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests.test_"):
                wrong.append(f"{path.name} imports {node.module}")
    assert wrong == [], "shared test helpers belong in tests/support"
