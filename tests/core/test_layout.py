"""The package's layout, read from its own source: layers that import only downward, no import circle,
library imports at the top of modules, and a library that speaks in its own terms (no command-line
options in the errors it raises). docs/architecture.md describes the same layers."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "fmnist"
# Bottom to top: each room (a top-level module or a folder) imports only from rooms before it.
LAYERS = ("errors", "guard", "runtime", "layers", "normalization", "config", "data", "model", "engines", "store",
          "reporting", "inputs", "inference", "training", "serve", "cli", "__main__", "__init__")
# What makes a module heavy to import: a module that imports one of these at its top may be imported
# inside the functions that need it (start-up of `fmnist --help` and `import fmnist` stays light).
HEAVY = {"keras", "jax", "jaxlib", "tensorflow", "matplotlib", "onnx", "onnxruntime", "starlette", "uvicorn",
         "sklearn", "tensorboard", "PIL", "jax2onnx"}


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


MODULES = _modules()


def _targets(node, module: str) -> list[str]:
    """The fmnist modules an import statement in ``module`` loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "fmnist"]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        package = module.split(".")[: len(module.split(".")) - node.level + (module in PACKAGES)]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if base.split(".")[0] != "fmnist":
        return []
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]


PACKAGES = {name for name in MODULES if (PACKAGE.parent / name.replace(".", "/") / "__init__.py").is_file()}


def _imports(module: str, top_only: bool) -> set[str]:
    tree = MODULES[module]
    nodes = tree.body if top_only else ast.walk(tree)
    return {target for node in nodes for target in _targets(node, module)}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _heavy(module: str, seen=frozenset()) -> bool:
    tree = MODULES[module]
    for node in tree.body:
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(name.split(".")[0] in HEAVY for name in names):
            return True
    parents = {".".join(module.split(".")[:end]) for end in range(2, len(module.split(".")))}
    below = (_imports(module, top_only=True) | parents) - seen - {module, "fmnist"}
    return any(_heavy(other, seen | {module}) for other in below if other in MODULES)


def test_every_room_is_a_layer():
    assert {_room(module) for module in MODULES} == set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_rooms_import_only_downward(module):
    room = _room(module)
    upward = {target for target in _imports(module, top_only=False)
              if LAYERS.index(_room(target)) > LAYERS.index(room)}
    assert not upward, f"{module} ({room}) imports from a layer above it: {sorted(upward)}"


def test_no_import_circle_between_modules():
    graph = {module: _imports(module, top_only=False) - {module} for module in MODULES}
    state: dict[str, str] = {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if target not in graph or target == "fmnist" and module.startswith("fmnist."):
                continue
            if state.get(target) == "open":
                raise AssertionError("import circle: " + " -> ".join(path[path.index(target):] + [target]))
            if target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", sorted(name for name in MODULES if _room(name) not in ("cli", "__init__", "__main__")))
def test_library_imports_are_at_the_top_unless_heavy(module):
    """An fmnist import inside a function hides the layering; only a heavy module may wait until needed."""
    inner = {target for function in ast.walk(MODULES[module])
             if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
             for node in ast.walk(function) for target in _targets(node, module)}
    light = sorted(target for target in inner if target in MODULES and not _heavy(target))
    assert not light, f"{module} imports {light} inside a function; import them at the top"


def _strings(node) -> list[str]:
    return [part.value for part in ast.walk(node) if isinstance(part, ast.Constant) and isinstance(part.value, str)]


def test_the_library_raises_no_command_line_options():
    """Errors name the setting as Python spells it (with ``field``); cli/ shows it as its option."""
    import re

    option = re.compile(r"(^|[\s(\"'`])--[a-z]")
    found = []
    for module, tree in MODULES.items():
        if _room(module) == "cli":
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            call = node.exc
            if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Interrupted":
                continue  # its last argument is the shell command that resumes, by design
            found += [f"{module}:{node.lineno}: {text!r}" for text in _strings(call) if option.search(text)]
    assert not found, "\n".join(found)


def test_errors_live_in_one_module():
    """Every public exception class is in fmnist.errors (private control-flow ones may live where used)."""
    elsewhere = [f"{module}.{node.name}" for module, tree in MODULES.items() if module != "fmnist.errors"
                 for node in tree.body if isinstance(node, ast.ClassDef) and not node.name.startswith("_")
                 and any(getattr(base, "id", "").endswith(("Error", "Exception")) or getattr(base, "attr", "").endswith("Error")
                         for base in node.bases)]
    assert not elsewhere, elsewhere


def test_a_setting_error_is_shown_as_its_option():
    from fmnist.cli.common import render
    from fmnist.config import TrainConfig
    from fmnist.errors import UsageError

    with pytest.raises(UsageError) as caught:
        TrainConfig(learning_rate=-1.0)
    assert caught.value.field == "learning_rate"
    assert str(caught.value) == "learning_rate -1.0: must be a positive finite number"
    assert render(caught.value) == "--learning-rate -1.0: must be a positive finite number"
    assert render(UsageError("verify: other data", "verify")) == "--skip-checksum: other data"
    assert render(UsageError("x.gz: other data; turn the check off", "verify")) == "x.gz: other data; turn the check off (--skip-checksum)"
    assert render(UsageError("runs/x: no such folder")) == "runs/x: no such folder"
