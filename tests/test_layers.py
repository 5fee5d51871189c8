"""The package's layers: each folder of spin_diff imports only folders in lower layers, and no
two modules import each other, directly or round a loop.

The layer order is written here and nowhere else. A folder (``spin_diff/<folder>/``, or a
top-level module such as ``spin_diff/errors.py``) may import its own modules and the folders
of lower rows; folders of one row do not import each other. Every import counts, also those
inside functions: a late import hides a dependency, it does not remove it.
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import spin_diff

# Lowest first.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "constants"),  # below utils: utils' config machinery raises the package's input errors
    ("utils", "recipes"),  # recipes: the YAML files shipped in the package and how a name finds one
    ("geometry",),
    ("body", "render"),
    ("priors",),
    ("diffusion",),
    ("data",),
    ("models", "detect"),  # detect: 2D keypoints from photos (BlazePose), beside the regressors
    ("fitting",),
    ("evaluation",),
    ("cache",),
    ("training",),
    ("apps",),
    ("cli",),
)

# Imports that break the layers while a move is in flight (importer, imported module), each
# with the move that removes it; an entry whose import is gone fails the test below, so the
# list cannot hide a new violation. Empty: guidance and the diffusion term now live in fitting.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file of every module of ``package`` under ``root``."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import of a module of the package in ``path``,
    wherever it stands (top level, function, class), relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.append((submodule if submodule in modules else module, node.lineno))
    resolved = []
    for target, line in found:
        while target and target not in modules:  # a name inside a module -> that module
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.append((target, line))
    return resolved


def folder_of(module: str) -> str:
    """``spin_diff.body.model`` -> ``body``; ``spin_diff.errors`` -> ``errors``; the package itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def find_loops(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import loops of a module graph: one module list per strongly connected component
    of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return loops


def layer_problems(root: Path, package: str, layers=LAYERS, allowed=frozenset()) -> list[str]:
    """Every upward or same-row import between folders, every folder missing from ``layers``,
    and every import loop between modules of ``package`` under ``root``; one line each."""
    rank = {folder: i for i, row in enumerate(layers) for folder in row}
    modules = module_names(root, package)
    problems, edges = [], defaultdict(set)
    for name, path in modules.items():
        source = folder_of(name)
        if source and source not in rank:
            problems.append(f"{path}: folder {source!r} is in no layer; add it to LAYERS")
            continue
        for target, line in imports_of(name, path, modules):
            edges[name].add(target)
            destination = folder_of(target)
            if not source or not destination or source == destination or (name, target) in allowed:
                continue
            if destination not in rank:
                continue  # reported once, for the folder's own modules
            if rank[destination] >= rank[source]:
                how = "a higher" if rank[destination] > rank[source] else "the same"
                problems.append(
                    f"{path}:{line}: {name} imports {target}, a folder of {how} layer "
                    f"({destination!r} is layer {rank[destination]}, {source!r} is layer {rank[source]})"
                )
    problems.extend(f"import loop: {' -> '.join(loop)}" for loop in find_loops(edges))
    return problems


def test_the_package_is_layered_without_import_loops():
    root = Path(spin_diff.__file__).resolve().parents[1]
    problems = layer_problems(root, "spin_diff", allowed=KNOWN_VIOLATIONS)
    assert not problems, "\n".join(problems)


def test_the_allowed_violations_still_exist():
    # an entry whose import is gone must leave the allow-list, so it cannot hide a new one
    root = Path(spin_diff.__file__).resolve().parents[1]
    modules = module_names(root, "spin_diff")
    present = {(name, target) for name, path in modules.items() for target, _ in imports_of(name, path, modules)}
    assert not KNOWN_VIOLATIONS - present, sorted(KNOWN_VIOLATIONS - present)


def _write_package(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_finds_upward_imports_same_row_imports_and_loops(tmp_path):
    _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low/__init__.py": "",
        "pkg/low/a.py": "def f():\n    from pkg.high.b import g  # upward, hidden in a function\n",
        "pkg/low/c.py": "from . import d\n",
        "pkg/low/d.py": "from pkg.low import c\n",  # a loop inside one folder
        "pkg/side/__init__.py": "from pkg.low.c import *\n",
        "pkg/high/__init__.py": "",
        "pkg/high/b.py": "import pkg.low.a\nfrom pkg.side import x\n",
        "pkg/other/e.py": "",
    })  # fmt: skip
    layers = (("low",), ("side", "high"))
    problems = layer_problems(tmp_path, "pkg", layers)
    assert any("pkg.low.a imports pkg.high.b, a folder of a higher layer" in p for p in problems), problems
    assert any("pkg.high.b imports pkg.side, a folder of the same layer" in p for p in problems), problems
    assert "import loop: pkg.low.c -> pkg.low.d" in problems
    assert "import loop: pkg.high.b -> pkg.low.a" in problems
    assert any("folder 'other' is in no layer" in p for p in problems)
    assert len(problems) == 5, problems
    # an allowed import is not reported, the loop it closes still is
    allowed = layer_problems(tmp_path, "pkg", layers, allowed={("pkg.low.a", "pkg.high.b")})
    assert not any("pkg.low.a imports" in p for p in allowed) and "import loop: pkg.high.b -> pkg.low.a" in allowed


def test_a_clean_package_passes(tmp_path):
    _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low/__init__.py": "from pkg.low.a import f\n",
        "pkg/low/a.py": "import os\n\ndef f():\n    return os.sep\n",
        "pkg/high/b.py": "from pkg.low import f\nfrom pkg import low\n",
    })  # fmt: skip
    assert layer_problems(tmp_path, "pkg", (("low",), ("high",))) == []


def test_every_name_a_module_exports_exists():
    """``__all__`` is a promise to ``from x import *`` and to readers: a name left behind by a
    move (the import walk above cannot see a name listed as a string) fails here."""
    root = Path(spin_diff.__file__).resolve().parent
    missing = []
    for name in module_names(root.parent, "spin_diff"):
        module = importlib.import_module(name)
        missing += [f"{name}.{attr}" for attr in getattr(module, "__all__", ()) if not hasattr(module, attr)]
    assert missing == []
