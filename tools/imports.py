"""The package's import graph by floor: circles, upward imports, every cross-package edge.

    python tools/imports.py            # the report
    python tools/imports.py --check    # exit 1 on a circle or an upward import

A floor is a top-level part of ``slsa_dist`` (``model``, ``sign``, ``collect``...).
Floors follow the flow of data (docs/architecture.md); an import may only point
down or sideways within its floor. Imports under ``if TYPE_CHECKING:`` count
too: they are the same dependency, only deferred.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "slsa_dist"

# Lowest first. Private machinery and generated code sit under everything.
FLOORS = ["_pb", "_internal", "errors", "model", "digest", "sign", "attest", "capture",
          "collect", "verify", "report", "integrations", "cli"]
# Top-level modules that are thin re-exports of a name users type (listed in docs/api.md).
FACADES = {"exec", "hf", "lightning", "ray", "torch", "__init__", "__main__"}


def floor_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: Path, known: Collection[str]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("slsa_dist"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if mod.startswith("slsa_dist"):
                # ``from pkg import _mod`` depends on the module, not on the package's names
                names = [f"{mod}.{a.name}" for a in node.names]
                out.update(n for n in names if n in known)
                if any(n not in known for n in names):
                    out.add(mod)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        for imported in imports_of(name, path, mods):
            target = imported  # resolved to the longest known module
            while target not in mods and "." in target:
                target = target.rpartition(".")[0]
            if target in mods and target not in (name, "slsa_dist"):
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    bad = []
    for src, targets in edges.items():
        fs = floor_of(src)
        if fs in FACADES or fs == "cli":
            continue
        for dst in targets:
            fd = floor_of(dst)
            if fd in FACADES or (fs in FLOORS and fd in FLOORS
                                 and FLOORS.index(fd) > FLOORS.index(fs)):
                bad.append((src, dst))
    return sorted(bad)


def main(argv: list[str]) -> int:
    edges = graph()
    circles = cycles(edges)
    up = upward(edges)
    if "--check" not in argv:
        cross: dict[tuple[str, str], list[str]] = defaultdict(list)
        for src, targets in sorted(edges.items()):
            for dst in sorted(targets):
                if floor_of(src) != floor_of(dst):
                    cross[(floor_of(src), floor_of(dst))].append(f"{src} -> {dst}")
        for (a, b), lines in sorted(cross.items()):
            print(f"{a} -> {b} ({len(lines)})")
            for line in lines:
                print("   ", line)
    print(f"circles: {len(circles)}")
    for c in circles:
        print("   ", " <-> ".join(c))
    print(f"upward imports: {len(up)}")
    for src, dst in up:
        print(f"    {src} -> {dst}")
    return 1 if (circles or up) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
