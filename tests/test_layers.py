"""The import graph of convcov_core and convcov_app, read from the source with ast (imports inside
functions included, relative imports resolved, a package's __init__ counted as run by every import
of a module inside it): no import cycle, convcov_core never imports streamlit or convcov_app, every
module in a declared layer and none importing one from a layer above its own, and no module importing
a private name of another package."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("convcov_core", "convcov_app")


def _core(*names: str) -> list[str]:
    return [f"convcov_core.{name}" for name in names]


#: From the bottom up: a module may import from its own layer and those below. A name covers the
#: module it names and every module inside it (the root package convcov_core only its own __init__).
LAYERS = [
    ("base", ["convcov_core", *_core("validation", "text", "paths", "settings", "json_safe", "sqlite_file",
                                     "stats")]),
    ("math", _core("covariance", "sampling", "allpass", "mimetic", "init", "spectra", "agop", "analysis",
                   "scheme_sample", "family_fits", "matrix_files")),
    ("figures", _core("plots")),
    ("models and data", _core("models", "timm_adapt", "checkpoints", "niff", "data", "datasets_embedded",
                              "datasets_torchvision", "step", "depthwise", "batchnorm")),
    ("train", _core("train", "work")),
    ("ensemble", _core("ensemble")),
    ("compare", _core("compare", "comparison_table")),
    ("store and jobs", _core("runs", "run_codec", "run_export", "job_records", "comparison_jobs", "jobs",
                             "throughput")),
    ("analyses", _core("regime", "reach", "attention", "examples", "learned_sets", "model_pairs", "cnfa", "frequency",
                       "pretrained", "rfm")),
    ("sweep", _core("sweep")),
    ("reproduce", _core("reproduce")),
    ("cli", _core("cli", "__main__")),
    ("app", ["convcov_app"]),
]


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of PACKAGES by dotted name (a package by its own name): (its file, whether it is
    a package's __init__)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _above(name: str) -> list[str]:
    """The packages that hold module `name`, outermost first."""
    parts = name.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def _imports(name: str) -> list[tuple[str, list[str]]]:
    """(module, names taken from it) for every import statement of module `name`, anywhere in it: a
    `from X import y` of a submodule y is an import of X.y; relative imports resolved."""
    path, is_package = MODULES[name]
    package = name.split(".") if is_package else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.append((submodule, []) if submodule in MODULES else (module, [alias.name]))
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> the modules of PACKAGES it imports, with the packages above them whose __init__ runs
    first (not the importer's own: they are already being imported)."""
    graph = {}
    for name in MODULES:
        own = {name, *_above(name)}
        graph[name] = {target for module, _ in _imports(name) for target in (*_above(module), module)
                       if target in MODULES and target not in own}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (its modules in import order, the first again at the end), or None."""
    done, path = set(), []

    def visit(node: str) -> list[str] | None:
        path.append(node)
        for target in sorted(graph[node]):
            if target in path:
                return path[path.index(target):] + [target]
            if target not in done:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = None if node in done else visit(node)
        if cycle:
            return cycle
    return None


def _layer(name: str) -> int | None:
    """The index in LAYERS of the longest declared name that covers module `name`."""
    declared = {n: i for i, (_, names) in enumerate(LAYERS) for n in names}
    candidates = [name] + [p for p in reversed(_above(name)) if p != "convcov_core"]
    return next((declared[c] for c in candidates if c in declared), None)


def _unit(name: str) -> str:
    """The package a module belongs to for privacy: its top-level module or package under the root."""
    return ".".join(name.split(".")[:2])


def test_the_graph_is_read_from_every_module():
    graph = _graph()
    assert {"convcov_core.compare", "convcov_core.train.loop", "convcov_app.lab"} <= set(graph)
    assert "convcov_core.train" in graph["convcov_core.ensemble.loop"]  # the package's __init__ runs first
    assert "convcov_core.train.config" in graph["convcov_core.train.loop"]  # relative import resolved


def test_there_is_no_import_cycle():
    assert _cycle(_graph()) is None, "import cycle: " + " -> ".join(_cycle(_graph()))


def test_a_cycle_is_reported_with_its_modules():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_library_never_imports_streamlit_or_the_app():
    found = [f"{name} imports {module}" for name in MODULES if name.startswith("convcov_core")
             for module, _ in _imports(name) if module.split(".")[0] in ("streamlit", "convcov_app")]
    assert not found, "\n".join(found)


def test_every_module_has_a_layer_and_every_declared_name_a_module():
    assert [name for name in MODULES if _layer(name) is None] == []
    declared = [n for _, names in LAYERS for n in names]
    assert [n for n in declared if n not in MODULES] == []
    assert len(declared) == len(set(declared))


def test_no_module_imports_one_from_a_layer_above_its_own():
    graph, layer = _graph(), {name: _layer(name) or 0 for name in MODULES}  # no layer: the test above fails
    upward = [f"{name} ({LAYERS[layer[name]][0]}) imports {target} ({LAYERS[layer[target]][0]})"
              for name in sorted(graph) for target in sorted(graph[name]) if layer[target] > layer[name]]
    assert not upward, "\n".join(upward)


def test_no_module_imports_a_private_name_of_another_package():
    found = [f"{name} imports {taken} from {module}" for name in MODULES for module, names in _imports(name)
             if module in MODULES and _unit(module) != _unit(name)
             for taken in names if taken.startswith("_") and not taken.startswith("__")]
    assert not found, "\n".join(found)
