"""Ray lives only in fedray/backend and fedray/tune; importing fedray starts nothing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fedray"
ALLOWED = {"backend", "tune"}


def test_ray_is_imported_only_in_backend_and_tune():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] in ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(PACKAGE)}: {n}" for n in names if n == "ray" or n.startswith("ray.")]
    assert offenders == []


def test_importing_fedray_does_not_import_ray():
    code = "import sys, fedray, fedray.api, fedray.cli, fedray.plan; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"



def _module_imports() -> dict[str, set[str]]:
    """fedray module -> fedray modules it imports anywhere: at module level, lazily inside functions, or for type
    checking only (a lazy or type-only import still ties the two modules together). Type-only imports of
    fedray.config are left out: the config's dataclasses are the bottom layer every package annotates with."""
    modules = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(block.test) for n in ast.walk(block)}
        edges: set[str] = set()
        for node in ast.walk(tree):
            targets: set[str] = set()
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fedray"):
                for alias in node.names:  # `from pkg import submodule` imports the submodule
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                targets = {a.name for a in node.names if a.name.startswith("fedray")}
            if id(node) in typing_only:
                targets = {t for t in targets if not t.startswith("fedray.config")}
            edges |= targets
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def test_no_import_cycles_and_no_upward_imports():
    graph = _module_imports()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt])
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    upward = [(a, b) for a, bs in graph.items() for b in bs
              if (a.startswith("fedray.training") and b.startswith(("fedray.resources", "fedray.client",
                                                                     "fedray.server", "fedray.plan")))
              or (a.startswith("fedray.resources") and b.startswith(("fedray.plan", "fedray.server", "fedray.api")))]
    assert upward == []
    assert "fedray.tune.resources" not in graph  # the word belongs to the ledger package fedray/resources
