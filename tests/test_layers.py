"""The package has layers, not a tangle: the folders are the data flow (io -> models -> litert -> restore -> verify
-> eval / train / bench / web -> cli), no module imports from a layer above its own, and there is no import cycle,
counting the imports made inside functions too (a lazy import is still a dependency). The package's own
``__init__`` (the public facade, which imports from every layer on first use) sits on top and is left out."""

from __future__ import annotations

import ast
from pathlib import Path

import nafnet_litert

ROOT = Path(nafnet_litert.__file__).resolve().parent


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return mods


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its source (relative and absolute imports)."""
    mods = _modules()
    graph = {}
    for name, (path, is_pkg) in mods.items():
        pkg = name if is_pkg else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                deps.update(subs or ([target] if target in mods else []))
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in mods)
        graph[name] = deps - {name, "nafnet_litert"}
    graph.pop("nafnet_litert", None)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(u: str, path: list[str]) -> None:
        state[u] = 1
        path.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                found.append(path[path.index(v) :] + [v])
            elif not state.get(v):
                visit(v, path)
        path.pop()
        state[u] = 2

    for m in sorted(graph):
        if not state.get(m):
            visit(m, [])
    return found


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


#: Bottom to top. ``errors``, ``facts``, ``threads`` and ``photo`` (the in-memory photo and its pixel rules, which
#: ``io``, ``metrics`` and ``restore`` share) are the base; ``metrics`` (numpy image metrics) sits on ``io``.
LAYERS = [
    ("errors", "facts", "jsonsafe", "lazy", "photo", "threads"),
    ("io", "metrics"),
    ("models",),
    ("litert",),
    ("restore",),
    ("verify",),
    ("eval", "train", "bench", "web"),
    ("cli",),
]


def layer_of(module: str) -> int:
    top = module.split(".")[1]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer: add its folder to LAYERS")


def test_every_import_points_down_the_layers():
    graph = import_graph()
    assert "nafnet_litert.litert.static_audit" in graph["nafnet_litert.litert.convert"]  # the graph is read
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
        for m, deps in sorted(graph.items())
        for d in sorted(deps)
        if layer_of(d) > layer_of(m)
    ]
    assert upward == [], "\n".join(upward)


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "nafnet_litert.verify.audit" in graph and "nafnet_litert.litert.static_audit" in graph["nafnet_litert.litert.convert"]
    cycles = _cycles(graph)
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def test_version_needs_no_heavy_import():
    """``nafnet-litert --version`` answers from the base floor: no PyTorch, no Pillow (it took ~2 s with them)."""
    import subprocess
    import sys

    code = ("import sys; from nafnet_litert.cli import main\n"
            "try: main(['--version'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'PIL', 'ai_edge_litert') if m in sys.modules))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip().endswith("[]"), r.stdout


def test_a_tflite_restorer_needs_no_pytorch(small_exports):
    """A Restorer of a .tflite file (what every Ray worker holds) runs a photo without importing PyTorch: each
    worker starts ~2 CPU-seconds sooner."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from nafnet_litert.restore import Restorer\n"
            f"r = Restorer({str(small_exports['fp32'].model_path)!r})\n"
            "assert r(np.full((40, 56, 3), 0.5, np.float32)).shape == (40, 56, 3)\n"
            "print('torch' in sys.modules)")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip().splitlines()[-1] == "False", r.stdout


def private_imports(path: Path, pkg: str) -> list[str]:
    """``from <a package module> import _name`` (or ``import ... as`` of a private module) in one file: a reach-in
    past another module's public surface. Names of the form ``__x__`` are not private."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if not (target == "nafnet_litert" or target.startswith("nafnet_litert.")):
            continue
        parts = target.split(".")
        for a in node.names:
            private = [p for p in [*parts, a.name] if p.startswith("_") and not p.startswith("__")]
            if private:
                found.append(f"{path.name}:{node.lineno} imports {a.name} from {target}")
    return found


def test_planted_private_import_is_found(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from .batch import _reason, write_outputs\nfrom nafnet_litert.io._x import y\nfrom os import _exit\n")
    assert private_imports(f, "nafnet_litert.restore") == [
        "m.py:1 imports _reason from nafnet_litert.restore.batch",
        "m.py:2 imports y from nafnet_litert.io._x",
    ]


def test_no_private_name_is_imported_across_modules():
    """Package modules and tests use each other's public names only (a private helper another module needs is
    made public, with a docstring, in its owner)."""
    mods = _modules()
    found = []
    for name, (path, is_pkg) in sorted(mods.items()):
        found += private_imports(path, name if is_pkg else name.rsplit(".", 1)[0])
    for path in sorted(Path(__file__).parent.glob("*.py")):
        found += private_imports(path, "tests")
    assert found == [], "\n".join(found)


def private_attribute_uses(source: str) -> list[str]:
    """``obj._name`` and ``setattr/getattr(obj, "_name")`` in a test file (dunders are not private)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        name = None
        if isinstance(node, ast.Attribute):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id == "self" or (
                isinstance(owner, ast.Call) and getattr(owner.func, "id", "") == "super"
            ):
                continue  # a class's own state, or the base it extends (conftest's xdist scheduler)
            name = node.attr
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("setattr", "getattr"):
            if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                name = node.args[1].value
        if name and name.startswith("_") and not name.startswith("__"):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_test_touches_a_private_attribute():
    """Tests drive the package through its public names; a state a test must see gets a public accessor."""
    planted = "r._lite.clear()\nmonkeypatch.setattr(vk, '_LIB_DIRS', ())\nx.__name__\n"
    assert sorted(private_attribute_uses(planted)) == ["1: r._lite", "2: monkeypatch.setattr(vk, '_LIB_DIRS', ())"]
    found = [f"{p.name}:{u}" for p in sorted(Path(__file__).parent.glob("*.py")) for u in private_attribute_uses(p.read_text())]
    assert found == [], "\n".join(found)
